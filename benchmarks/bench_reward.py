"""Throughput of ``cwgrpo_verl.reward.compute_score`` beside verl's built-in math-verify scorer, in one run.

The same responses go to verl's scorer and to ours (one worker; two workers from two threads), in rounds of rotating
order, then again beside adversarial inputs on a third worker (docs/reward.md, "Throughput"). Targets on 2 cores:
ours/verl >= 1.0 with one worker and >= 1.6 with two, the same verdicts, no normal sample waiting for a stuck one.

    python benchmarks/bench_reward.py [--quick] [-n 300] [--data ../shared/data/math500.jsonl] [--timeout 2]
    python benchmarks/bench_reward.py --pool-libraries   # the pebble / loky measurements of docs/reward.md
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cwgrpo_verl import argtypes, data_sets  # noqa: E402
from cwgrpo_verl import reward as R  # noqa: E402
from cwgrpo_verl.reward.pool import Pool  # noqa: E402
from data_prep.common import ground_truth_for  # noqa: E402

MATH = data_sets.get("math500").data_source
WORDS = (
    "so we need to compute the value first note that the equation gives us a relation between the terms "
    "let me check this again carefully if we substitute back we get the same expression hence the sum is "
    "consistent wait maybe I should consider the other case as well then the product simplifies nicely"
).split()
ADVERSARIAL = {
    "tower 9^{9^{9}} (C bigint)": "The final answer is $\\boxed{9^{9^{9}}}$",
    "tower 10^{10^{10^{10}}}": "The answer is $\\boxed{10^{10^{10^{10}}}}$",
    "factorial (10^8)!": "\\boxed{(10^{8})!}",
    "5000-deep braces": "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
    "1 MB of braces": "{" * 500_000 + "}" * 500_000,
    "unclosed \\[ x 40000": "\\[ a " * 40_000,
    "1 MB of $...$": "$1+1$ " * 170_000,
    "unclosed boxes in one \\[": "\\[\n\\boxed{x\n" * 10_000 + "\\]",
}
FALLBACK_ROWS = [  # without the data file
    {"solution": "So $x = \\boxed{12}$.", "answer": "12"},
    {"solution": "Hence $\\boxed{\\frac{3}{4}}$.", "answer": "\\frac{3}{4}"},
    {"solution": "We get $\\boxed{(1,2)}$.", "answer": "(1,2)"},
    {"solution": "Thus $\\boxed{2\\sqrt{3}}$.", "answer": "2\\sqrt{3}"},
]


def make_mix(rows: list[dict], n: int, seed: int = 0) -> list[tuple[str, str, str, bool]]:
    """(response, our ground truth, verl's ground truth, right?) for ``n`` responses of 200-400 words."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        row, right = rows[i % len(rows)], i % 2 == 0
        answer = row["answer"] if right else rows[(i * 7 + 3) % len(rows)]["answer"]
        if not right and answer == row["answer"]:
            answer += "+1"
        words = [rng.choice(WORDS) for _ in range(rng.randint(200, 400))]
        for k in range(0, len(words), 40):
            words.insert(k, f"$x_{{{k}}} = {rng.randint(1, 99)}$")
        closing = f"Therefore, the final answer is: $\\boxed{{{answer}}}$. I hope it is correct."
        resp = " ".join(words) + "\n</think>\n\n" + closing
        out.append((resp, ground_truth_for("math500", row)[0], row["answer"], right))
    return out


_POOLS: dict[int, Pool] = {}


def score(resp: str, gold: str, workers: int, **options) -> dict:
    """Ours on a pool of ``workers`` processes of its own: worker caches (parsed golds) are not shared."""
    if workers not in _POOLS:
        _POOLS[workers] = Pool(workers)
    R._POOL = _POOLS[workers]
    return R.compute_score(MATH, resp, gold, workers=workers, **options)


def throughput(mix, verl_fn, timeout_s: float, rounds: int = 10) -> dict:
    """Rounds of verl (sequential), ours x1 (sequential) and ours x2 (two threads) on the same chunk, in an order
    that rotates (a worker's parse caches then favour no one)."""
    names, step = ("verl", "ours1", "ours2"), max(1, len(mix) // rounds)
    secs, acc = dict.fromkeys(names, 0.0), {name: [] for name in names}
    with ThreadPoolExecutor(max_workers=2) as two:
        ours = lambda workers: lambda item: score(item[0], item[1], workers, timeout_s=timeout_s)["acc"]  # noqa: E731
        scorers = {
            "verl": lambda chunk: [verl_fn(resp, gold) for resp, _, gold, _ in chunk],
            "ours1": lambda chunk: list(map(ours(1), chunk)),
            "ours2": lambda chunk: list(two.map(ours(2), chunk)),
        }
        for r, k in enumerate(range(0, len(mix), step)):
            for name in names[r % 3 :] + names[: r % 3]:
                t0 = time.perf_counter()
                acc[name] += scorers[name](mix[k : k + step])
                secs[name] += time.perf_counter() - t0
    return {"rps": {k: len(mix) / v for k, v in secs.items()},
            "as_built": {k: as_built(v, mix) for k, v in acc.items()},
            "agree": sum((a == 1.0) == (b == 1.0) == (c == 1.0) for a, b, c in zip(*acc.values()))}


def as_built(accs, mix) -> int:
    """How many verdicts match how ``mix`` was built (right or wrong)."""
    return sum((a == 1.0) == right for a, (*_, right) in zip(accs, mix))


def mixed_with_adversarial(mix, timeout_s: float) -> dict:
    """Two threads score the normal mix on 3 workers while a third thread feeds adversarial inputs."""
    latencies: list[float] = []
    adversarial: list[tuple[str, float, str]] = []  # (kind, seconds, reason)
    stop = threading.Event()

    def feed():  # whole passes until the normal mix is done: every input is scored at least once
        while True:
            for name, text in ADVERSARIAL.items():
                t0 = time.perf_counter()
                reason = score(text, "$3$", 3, timeout_s=timeout_s)["reason"]
                adversarial.append((name, time.perf_counter() - t0, reason))
            if stop.is_set():
                return

    def one(item):
        t0 = time.perf_counter()
        acc = score(item[0], item[1], 3, timeout_s=timeout_s)["acc"]
        latencies.append(time.perf_counter() - t0)
        return acc

    feeder = threading.Thread(target=feed)
    feeder.start()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as two:
        accs = list(two.map(one, mix))
    elapsed = time.perf_counter() - t0
    stop.set()
    feeder.join()
    return {"rps": len(mix) / elapsed, "p50": statistics.median(latencies), "max": max(latencies),
            "as_built": as_built(accs, mix), "adversarial": adversarial}


def pool_libraries() -> int:
    """The measurements behind the choice of a hand-written pool (pebble and loky, if installed)."""
    import multiprocessing as mp
    import signal
    from concurrent.futures import TimeoutError as FutureTimeout

    def outcome(call):  # "ok", or the exception it raised
        try:
            call()
            return "ok"
        except Exception as exc:  # noqa: BLE001
            return exc

    print("pool libraries: a task stuck in C (9**9**9), limit 1 s, 2 workers, 4 such tasks")
    try:
        import pebble

        pool = pebble.ProcessPool(max_workers=2, context=mp.get_context("forkserver"))
        pool.schedule(os.getpid).result()
        t0 = time.monotonic()
        futs = [pool.schedule(pow, (9, 9**9), timeout=1.0) for _ in range(4)]
        done = [time.monotonic() - t0 for f in futs if isinstance(outcome(f.result), FutureTimeout)]
        print(f"  pebble {pebble.__version__}: timed out after " + ", ".join(f"{d:.1f}" for d in done) + " s")
        os.kill(pool.schedule(os.getpid).result(), signal.SIGKILL)
        time.sleep(0.5)
        exc = outcome(lambda: pool.schedule(os.getpid).result(timeout=10))
        print("  pebble: after an idle worker was killed" + (", the pool still works" if exc == "ok" else
                                                              f": {type(exc).__name__}: {exc}"))
        pool.stop()
        pool.join(10)
    except ImportError:
        print("  pebble: not installed (pip install pebble)")
    try:
        import loky

        ex = loky.get_reusable_executor(max_workers=2)
        ex.submit(os.getpid).result()
        futs = [ex.submit(time.sleep, 2), ex.submit(time.sleep, 0.5)]
        time.sleep(0.2)
        os.kill(next(iter(ex._processes)), signal.SIGKILL)  # what a per-task limit would have to do
        errors = [r if r == "ok" else type(r).__name__ for r in (outcome(f.result) for f in futs)]
        print(f"  loky {loky.__version__}: no per-task limit; killing one worker -> the 2 tasks in flight: {errors}")
    except ImportError:
        print("  loky: not installed (pip install loky)")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="60 responses, 1 s limit (smoke test)")
    ap.add_argument("-n", type=argtypes.integer(), help="responses (default 300; quick 60)")
    ap.add_argument("--data", type=Path, default=os.environ.get("CWGRPO_SHARED_DATA", REPO.parent / "shared" / "data"))
    ap.add_argument("--timeout", type=argtypes.real(), help="limit per sample (default 2 s; quick 1 s)")
    ap.add_argument("--pool-libraries", action="store_true", help="only measure pebble and loky (if installed)")
    args = ap.parse_args(argv)
    if args.pool_libraries:
        return pool_libraries()
    n = args.n or (60 if args.quick else 300)
    timeout_s = args.timeout or (1.0 if args.quick else 2.0)
    data = args.data / "math500.jsonl" if args.data.is_dir() else args.data
    rows = [json.loads(x) for x in data.read_text().splitlines() if x.strip()] if data.exists() else FALLBACK_ROWS
    from verl.utils.reward_score.math_verify import compute_score as verl_fn

    half = len(rows) // 2 if len(rows) > 8 else 0
    warm, mix = make_mix(rows[half:] or rows, 30, seed=1), make_mix(rows[:half] or rows, n)
    print(f"== reward benchmark: {n} responses, limit {timeout_s} s, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}; data: {data if data.exists() else 'built-in rows'}")
    for resp, ours, verl_gold, _ in warm:  # all warm (processes started, imports done), on other problems
        verl_fn(resp, verl_gold)
        for workers in (1, 2, 3):
            score(resp, ours, workers)
    tp = throughput(mix, verl_fn, timeout_s)
    rps, built = tp["rps"], tp["as_built"]
    r1, r2 = rps["ours1"] / rps["verl"], rps["ours2"] / rps["verl"]
    print(f"  verl math_verify.compute_score (sequential) : {rps['verl']:7.1f} responses/s")
    print(f"  ours, 1 worker (sequential)                 : {rps['ours1']:7.1f} responses/s   {r1:5.2f}x verl")
    print(f"  ours, 2 workers (2 threads)                 : {rps['ours2']:7.1f} responses/s   {r2:5.2f}x verl")
    print(f"  verdicts as built: verl {built['verl']}/{n}, ours x1 {built['ours1']}/{n}, ours x2 {built['ours2']}/{n}; "
          f"all three agree on {tp['agree']}/{n}")
    mixed = mixed_with_adversarial(mix, timeout_s)
    worst = max((d for _, d, _ in mixed["adversarial"]), default=0.0)
    print(f"  ours, 2 workers + adversarial feeder (3rd worker): {mixed['rps']:7.1f} responses/s; normal latency "
          f"median {mixed['p50'] * 1000:.0f} ms, max {mixed['max'] * 1000:.0f} ms; verdicts as built "
          f"{mixed['as_built']}/{n}")
    reasons = dict(Counter(reason for *_, reason in mixed["adversarial"]))
    kinds = len({name for name, *_ in mixed["adversarial"]})
    print(f"  adversarial inputs scored meanwhile: {len(mixed['adversarial'])}, all {kinds} kinds at least once "
          f"({reasons}), worst {worst:.2f} s for a {timeout_s} s limit")
    for pool in _POOLS.values():
        pool.close()
    R._POOL = None
    stall = mixed["max"] >= timeout_s
    ok = (r1 >= 1.0 and r2 >= 1.6 and tp["agree"] == n and not stall and worst <= timeout_s + 1.0
          and mixed["as_built"] == built["ours1"])
    print(f"RATIOS: 1 worker {r1:.2f}x (target >= 1.0), 2 workers {r2:.2f}x (target >= 1.6); "
          f"same verdicts: {'yes' if tp['agree'] == n else 'NO'}; adversarial stall: "
          f"{'YES' if stall else 'none'} -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
