"""cw_grpo reaches verl's registries through the `verl.plugins` entry point (in Ray workers: tests/test_trainer_e2e.py)."""

import os
import subprocess
import sys

import pytest

PROBE = (
    "import verl\n"
    "from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY\n"
    "print('cw_grpo' in POLICY_LOSS_REGISTRY, 'cw_grpo' in ADV_ESTIMATOR_REGISTRY)\n"
)


def _fresh_python(env_extra):
    env = {**os.environ, **env_extra}
    env.pop("PYTHONPATH", None)  # the installed package only, not this checkout on sys.path
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd="/", capture_output=True, text=True, timeout=300, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def test_plain_import_verl_registers_the_plugin():
    assert _fresh_python({}) == "True True"


def test_registration_comes_from_the_entry_point():
    """With verl's plugin discovery off, nothing registers it: the entry point is what does."""
    assert _fresh_python({"VERL_USE_EXTERNAL_PLUGINS": "none"}) == "False False"


def test_check_registered_is_loud_when_the_registry_lacks_the_loss(monkeypatch):
    from verl.trainer.ppo import core_algos

    from cwgrpo_verl.plugin import check_registered

    check_registered()
    monkeypatch.delitem(core_algos.POLICY_LOSS_REGISTRY, "cw_grpo")
    with pytest.raises(RuntimeError, match="policy loss 'cw_grpo'"):
        check_registered()


def test_the_package_imports_neither_verl_nor_torch():
    """A light root: the reward, the data sets, data preparation and the evaluation's options import without verl or
    torch (a tool or a reward worker does not pay verl's 7 s import); the plugin module is what loads verl."""
    code = ("import sys, cwgrpo_verl, cwgrpo_verl.data_sets, cwgrpo_verl.reward, data_prep.eval_sets, "
            "cwgrpo_verl.reward.scoring; print(sorted(m for m in ('verl', 'torch', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
