"""Faults of the reward's worker pool: each test checks what happens and that no process is left behind.

SLOW is a big-integer power (9^387420489) that sympy computes in C: the worker never returns to Python, so
only a signal the kernel delivers (SIGKILL) can stop it.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from cwgrpo_verl import data_sets
from cwgrpo_verl import reward as R
from cwgrpo_verl.processes import alive as process_alive
from cwgrpo_verl.reward import compute_score
from cwgrpo_verl.reward.pool import Lost, Pool

MATH = data_sets.get("math500").data_source
SLOW = "The final answer is $\\boxed{9^{9^{9}}}$"


def _resp(answer: str) -> str:
    return f"<think>\nok\n</think>\nTherefore, the final answer is: $\\boxed{{{answer}}}$. I hope it is correct."


def _still_alive(pids, within: float = 5.0) -> list[int]:
    """The pids among ``pids`` still running after ``within`` seconds (zombies count as gone)."""
    end = time.monotonic() + within
    alive = [p for p in pids if p is not None and process_alive(p)]
    while alive and time.monotonic() < end:
        time.sleep(0.02)
        alive = [p for p in alive if process_alive(p)]
    return alive


def _strays() -> list[int]:
    """Children of this process's zygote that the pool does not know about (a leftover would be one)."""
    pids = R.worker_pids()
    if pids["zygote"] is None:
        return []
    try:
        children = {c.pid for c in psutil.Process(pids["zygote"]).children() if c.status() != psutil.STATUS_ZOMBIE}
    except psutil.NoSuchProcess:
        return []
    return sorted(children - set(pids["workers"]))


def _busy_worker_pids(n: int, within: float = 60.0) -> dict:
    """Wait until ``n`` workers are busy; return worker_pids()."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        pids = R.worker_pids()
        if len(pids["workers"]) - len(pids["idle"]) >= n:
            return pids
        time.sleep(0.02)
    raise AssertionError(f"{n} workers never became busy: {R.worker_pids()}")


def _read_json(fd: int, within: float) -> dict:
    """One JSON message from a child process, or fail after ``within`` seconds (a deadlocked child)."""
    ready, _, _ = select.select([fd], [], [], within)
    assert ready, f"no answer from the child process within {within} s"
    data = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        if data.endswith(b"\n"):
            break
    assert data, "the child process exited without answering"
    return json.loads(data)


@pytest.fixture
def own_pool():
    """Afterwards: no stray process, and the pool back to its default size (its extra workers gone)."""
    yield
    assert _strays() == []
    before = set(R.worker_pids()["workers"])
    R._pool(R.default_workers())
    after = R.worker_pids()["workers"]
    assert len(after) <= R.default_workers() and _still_alive(sorted(before - set(after))) == []


# ---------------------------------------------------------------------------------------------- limits


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0, 0, 0.0, 1e7, "abc", None, True])
def test_invalid_time_limits_are_rejected_before_any_process_starts(bad):
    R.shutdown()
    with pytest.raises(ValueError, match="timeout_s"):
        compute_score(MATH, _resp("3"), "$3$", timeout_s=bad)
    assert R.worker_pids() == {"workers": [], "idle": [], "zygote": None, "last_killed": None}


@pytest.mark.parametrize("bad", [0, -2, 1.5, "two", True])
def test_invalid_pool_sizes_are_rejected(bad):
    with pytest.raises(ValueError, match="workers"):
        compute_score(MATH, _resp("3"), "$3$", workers=bad)


def test_invalid_options_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        compute_score(MATH, _resp("3"), "$3$", mode="test")
    with pytest.raises(ValueError, match="gold_kind"):
        compute_score(MATH, _resp("3"), "$3$", gold_kind="text")
    with pytest.raises(ValueError, match="format_weight"):
        compute_score(data_sets.get("open_rs").data_source, _resp("3"), "$3$", format_weight=math.nan)
    with pytest.raises(ValueError, match="max_chars"):
        compute_score(MATH, _resp("3"), "$3$", max_chars=-1)


def test_pool_size_from_the_environment(monkeypatch):
    monkeypatch.setenv("CWGRPO_REWARD_WORKERS", "3")
    assert R.default_workers() == 3
    monkeypatch.setenv("CWGRPO_REWARD_WORKERS", "0")
    with pytest.raises(ValueError, match="CWGRPO_REWARD_WORKERS"):
        R.default_workers()
    monkeypatch.delenv("CWGRPO_REWARD_WORKERS")
    assert 1 <= R.default_workers() <= min(R.DEFAULT_MAX_WORKERS, len(os.sched_getaffinity(0)))


# ---------------------------------------------------------------------------------------------- faults


@pytest.mark.slow
def test_concurrent_slow_samples_each_get_their_own_limit(own_pool):
    """8 samples stuck in C at once finish after about one limit (not eight), and the others run beside them."""
    n_slow, limit = 8, 2.0
    compute_score(MATH, _resp("1"), "$1$", workers=n_slow + 2)  # zygote up
    fast_times, fast_accs = [], []

    def fast(i):
        t0 = time.monotonic()
        res = compute_score(MATH, _resp(str(i)), f"${i if i % 2 else i + 1}$", workers=n_slow + 2)
        fast_times.append(time.monotonic() - t0)
        fast_accs.append((i, res["acc"]))

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=n_slow + 2) as ex:
        slow = [ex.submit(compute_score, MATH, SLOW, "$3$", timeout_s=limit, workers=n_slow + 2) for _ in range(n_slow)]
        _busy_worker_pids(n_slow)
        t_busy = time.monotonic()
        for i in range(6):
            fast(i)
        results = [f.result() for f in slow]
    elapsed = time.monotonic() - t0
    assert [r["reason"] for r in results] == ["timeout"] * n_slow
    assert elapsed < limit * 2.5, f"{n_slow} slow samples took {elapsed:.1f} s for a {limit} s limit each"
    assert t_busy - t0 < limit  # all eight ran at once
    assert sorted(fast_accs) == [(i, 1.0 if i % 2 else 0.0) for i in range(6)]
    assert max(fast_times) < limit, fast_times  # the stuck samples did not hold them up
    assert _strays() == []  # every stuck worker was killed and is gone


def test_idle_worker_killed_is_replaced_and_the_sample_retried(own_pool):
    """A worker that died while idle (OOM killer, kill -9) costs a retry, never a silent 0."""
    assert compute_score(MATH, _resp("5"), "$5$", workers=1)["acc"] == 1.0
    (victim,) = R.worker_pids()["idle"]
    os.kill(victim, signal.SIGKILL)
    assert _still_alive([victim]) == []
    res = compute_score(MATH, _resp("5"), "$5$", workers=1)
    assert res["acc"] == 1.0 and res["reason"] == "ok"
    pids = R.worker_pids()
    assert victim not in pids["workers"] and len(pids["workers"]) == 1 and process_alive(pids["workers"][0])
    # the zygote dies too: it is restarted, the sample still scores
    zygote = pids["zygote"]
    os.kill(zygote, signal.SIGKILL)
    assert _still_alive([zygote] + pids["workers"]) == []  # its worker follows it (PR_SET_PDEATHSIG)
    res = compute_score(MATH, _resp("6"), "$6$", workers=1)
    assert res["acc"] == 1.0 and res["reason"] == "ok"
    assert R.worker_pids()["zygote"] not in (None, zygote)
    assert _strays() == []


def test_worker_killed_during_a_sample_gets_it_once_more(own_pool):
    """Killed mid-sample (not by its own fault): the sample is sent once more to a fresh worker."""
    long_text = "so we keep going and check again " * 300_000 + _resp("8")  # about 10 MB: a second or more
    compute_score(MATH, _resp("1"), "$1$", workers=1)
    result = {}
    th = threading.Thread(target=lambda: result.update(compute_score(MATH, long_text, "$8$", timeout_s=60, workers=1)))
    th.start()
    (victim,) = _busy_worker_pids(1)["workers"]
    os.kill(victim, signal.SIGKILL)
    th.join(120)
    assert result["acc"] == 1.0 and result["reason"] == "ok"
    assert _still_alive([victim]) == [] and victim not in R.worker_pids()["workers"]
    assert _strays() == []


def test_worker_killed_with_the_sample_unread_is_dead():
    """A worker killed before it read the sample closes its socket with unread data: the caller gets ECONNRESET,
    not EOF, and must still count the worker dead, so that its pid (someone else's by then) is never signalled."""
    pool = Pool(1)
    worker = pool._acquire()
    lost = None
    try:
        os.kill(worker.pid, signal.SIGSTOP)  # alive, but it reads nothing
        threading.Timer(0.3, os.kill, (worker.pid, signal.SIGKILL)).start()
        with pytest.raises(Lost) as lost:
            worker.call(json.dumps({"mode": "eval", "gold": "$1$", "text": _resp("1")}).encode(), timeout=30)
        assert (lost.value.started, lost.value.dead) == (True, True)
    finally:
        pool._release(worker, keep=False, dead=lost is not None)
        pool.close()


@pytest.mark.slow
def test_caller_killed_mid_computation_takes_its_workers_along():
    """The caller dies (kill -9) while its worker is deep in C arithmetic: worker and zygote die with it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the caller
        try:
            os.close(r)
            threading.Thread(target=compute_score, args=(MATH, SLOW, "$3$"), kwargs={"timeout_s": 600, "workers": 1},
                             daemon=True).start()
            os.write(w, (json.dumps(_busy_worker_pids(1)) + "\n").encode())
            time.sleep(600)
        finally:
            os._exit(0)
    os.close(w)
    try:
        pids = _read_json(r, within=120)
        (worker,) = pids["workers"]
        cpu0 = psutil.Process(worker).cpu_times().user
        time.sleep(0.5)
        assert psutil.Process(worker).cpu_times().user > cpu0  # it is computing
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
    assert _still_alive([worker, pids["zygote"]], within=5.0) == []


@pytest.mark.slow
def test_scoring_after_fork_while_other_threads_score_or_hold_the_lock(own_pool):
    """os.fork() while another thread is inside compute_score (and one holds the pool's lock): the child
    scores with processes of its own and leaves the parent's alone."""
    assert compute_score(MATH, _resp("1"), "$1$", workers=2)["acc"] == 1.0
    slow_result = {}
    slow = threading.Thread(target=lambda: slow_result.update(compute_score(MATH, SLOW, "$3$", timeout_s=4, workers=2)))
    slow.start()
    parent = _busy_worker_pids(1)
    held, release = threading.Event(), threading.Event()

    def hold_lock():
        pool = R._pool(R.default_workers())
        with R._POOL_LOCK, pool._cond:  # the module's lock (held while a pool resizes) and the pool's own
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert held.wait(10)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: both locks it inherited are held by threads that do not exist here
        try:
            os.close(r)
            res = compute_score(MATH, _resp("7"), "$7$", timeout_s=30)
            mine = R.worker_pids()
            R.shutdown()
            os.write(w, (json.dumps({"acc": res["acc"], "pids": mine}) + "\n").encode())
        finally:
            os._exit(0)
    os.close(w)
    release.set()
    try:
        child = _read_json(r, within=120)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    holder.join()
    assert child["acc"] == 1.0
    mine = set(child["pids"]["workers"]) | {child["pids"]["zygote"]}
    assert not mine & (set(parent["workers"]) | {parent["zygote"]})
    assert _still_alive(list(mine)) == []  # the child shut its own down
    assert all(process_alive(p) for p in [parent["zygote"]])  # and did not touch the parent's
    slow.join(30)
    assert slow_result["reason"] == "timeout"
    assert compute_score(MATH, _resp("2"), "$2$", workers=2)["acc"] == 1.0
    assert _strays() == []
