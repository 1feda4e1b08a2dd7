"""The smoke command's options and its token-log check, without starting a run (tools/smoke.py)."""

from pathlib import Path

import pytest

from tools import smoke


def test_token_log_every_takes_a_list_of_rates_to_compare():
    assert smoke.parse_args(["--token-log-every", "0,1"]).token_log_every == [0, 1]
    assert smoke.parse_args([]).token_log_every == [None]  # the recipe's default
    with pytest.raises(SystemExit):
        smoke.parse_args(["--token-log-every", "1,1"])


def logged(every, records):
    return smoke.Run(method="cwgrpo", scope="group", module=smoke.RECIPE, returncode=0, seconds=1.0, work=Path("."),
                     log="", metrics={1: {"actor/grad_norm": 1.0}}, tokens=records, token_log_every=every)


RECORDS = [{"step": 1, "selection": s, "token": " 7", "cov": 0.5} for s in ("abs_cov", "low_weight")]


def test_a_run_with_the_token_log_off_must_log_no_token():
    assert smoke._token_log_check(logged(0, [])).ok
    assert not smoke._token_log_check(logged(0, RECORDS)).ok


def test_a_run_with_the_token_log_on_must_log_its_first_step():
    assert smoke._token_log_check(logged(None, RECORDS)).ok
    assert not smoke._token_log_check(logged(None, [])).ok
    assert not smoke._token_log_check(logged(1, RECORDS[:1])).ok  # CW-GRPO logs its down-weighted tokens too
