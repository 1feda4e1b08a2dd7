"""Benchmark ``cwgrpo_verl.reward.compute_score`` against verl's built-in math-verify scorer.

Part 1, throughput: sequential calls over a realistic mix (a ``<think>`` block of a few hundred words, then a
boxed answer; MATH-500 golds, half right and half wrong), ours and verl's
``verl.utils.reward_score.math_verify.compute_score`` side by side, in the same process.

Part 2, adversarial inputs: exponent towers, huge factorials, 5000-deep braces, megabyte strings, null
bytes. Every call must return within ``timeout + 1 s``; after a timeout the killed child must be gone and the
remaining children idle (no CPU time accumulating). For contrast, verl's scorer is given one tower with a short
timeout and its pool process is shown still computing afterwards (then killed by pid).

    python benchmarks/bench_reward.py [--quick] [--data ../shared/data/math500.jsonl] [--timeout 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cwgrpo_verl import reward as R  # noqa: E402

WORDS = (
    "so we need to compute the value first note that the equation gives us a relation between the terms "
    "let me check this again carefully if we substitute back we get the same expression hence the sum is "
    "consistent wait maybe I should consider the other case as well then the product simplifies nicely"
).split()


def _cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def make_mix(rows: list[dict], n: int, group: int = 1, seed: int = 0) -> list[tuple[str, str, str, bool]]:
    """(response, our ground truth, verl ground truth, expected correct) tuples; ``group`` responses per problem."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        row = rows[(i // group) % len(rows)]
        right = i % 2 == 0
        answer = row["answer"] if right else rows[(i * 7 + 3) % len(rows)]["answer"]
        if not right and answer == row["answer"]:
            answer = answer + "+1"
        words = [rng.choice(WORDS) for _ in range(rng.randint(200, 400))]
        for k in range(0, len(words), 40):
            words.insert(k, f"$x_{{{k}}} = {rng.randint(1, 99)}$")
        think = " ".join(words)
        resp = f"{think}\n</think>\n\nTherefore, the final answer is $\\boxed{{{answer}}}$."
        out.append((resp, R.gold_from_row("math500", row), row["answer"], right))
    return out


ADVERSARIAL = {
    "tower \\boxed{10^{10^{10^{10}}}}": "The answer is $\\boxed{10^{10^{10^{10}}}}$",
    "tower 9^{9^{9^{9}}}": "so \\boxed{9^{9^{9^{9}}}}",
    "plain tower 10**10**10**10": "The final answer is 10**10**10**10",
    "factorial (10^8)!": "\\boxed{(10^{8})!}",
    "factorial 100000000!": "The answer is $\\boxed{100000000!}$",
    "5000-deep braces": "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
    "2000-deep sqrt": "$\\boxed{" + "\\sqrt{" * 2000 + "2" + "}" * 2000 + "}$",
    "1 MB of text + boxed": "word " * 200_000 + "\\boxed{3}",
    "1 MB of $...$": "$1+1$ " * 170_000,
    "null bytes": "\x00" * 10_000 + "\\boxed{3}\x00\x00",
    "1 MB of braces": "{" * 500_000 + "}" * 500_000,
}


def bench_throughput(warm, mix, verl_fn) -> dict:
    """Sequential calls; both scorers first warmed on other problems (a long-lived scorer is warm in training)."""
    for resp, g_ours, g_verl, _ in warm:
        R.compute_score(R.DATA_SOURCES["math500"], resp, g_ours)
        verl_fn(resp, g_verl)
    # interleave chunks of 10 calls so that load drift on a shared machine hits both scorers alike
    ours, theirs = [], []
    t_ours = t_verl = 0.0
    for k in range(0, len(mix), 10):
        chunk = mix[k : k + 10]
        t0 = time.perf_counter()
        ours += [R.compute_score(R.DATA_SOURCES["math500"], resp, g) for resp, g, _, _ in chunk]
        t_ours += time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs += [verl_fn(resp, g) for resp, _, g, _ in chunk]
        t_verl += time.perf_counter() - t0
    agree = right_ours = right_verl = 0
    for o, v, (_, _, _, exp) in zip(ours, theirs, mix):
        agree += int((o["acc"] == 1.0) == (v == 1.0))
        right_ours += int((o["acc"] == 1.0) == exp)
        right_verl += int((v == 1.0) == exp)
    return {
        "n": len(mix),
        "rps_ours": len(mix) / t_ours,
        "rps_verl": len(mix) / t_verl,
        "agree": agree,
        "expected_ours": right_ours,
        "expected_verl": right_verl,
    }


def bench_adversarial(timeout_s: float) -> tuple[list[tuple[str, str, float, str, bool]], bool]:
    R.compute_score(R.DATA_SOURCES["math500"], "\\boxed{1}", "$1$")  # warm
    time.sleep(0.5)
    rows = []
    ok = True
    for mode in ("eval", "train"):
        for name, text in ADVERSARIAL.items():
            t0 = time.perf_counter()
            res = R.compute_score(R.DATA_SOURCES["math500"], text, "$3$", mode=mode, timeout_s=timeout_s)
            dt = time.perf_counter() - t0
            killed_gone = True
            if res["reason"] in ("timeout", "crash"):
                killed = R.worker_pids()["last_killed"]
                killed_gone = killed is not None and not R.process_alive(killed)
            within = dt <= timeout_s + 1.0
            ok &= within and killed_gone
            rows.append((mode, name, dt, res["reason"], killed_gone))
    # the surviving children must be idle: no CPU time accumulating over one second
    R.compute_score(R.DATA_SOURCES["math500"], "\\boxed{1}", "$1$")  # a fresh worker after the last kill
    live = R.worker_pids()
    pids = [p for p in (live["worker"], live["zygote"]) if p is not None]
    t1 = {p: _cpu_ticks(p) for p in pids}
    time.sleep(1.0)
    t2 = {p: _cpu_ticks(p) for p in pids}
    busy = {p: (t2[p] or 0) - (t1[p] or 0) for p in pids}
    idle = all(v <= 2 for v in busy.values())  # <= 20 ms of CPU in 1 s
    ok &= idle
    rows.append(("-", f"children {pids} CPU ticks in 1 s after the run: {busy}", 0.0, "idle" if idle else "BUSY", idle))
    return rows, ok


def verl_leftover_demo(verl_module) -> str:
    """verl's scorer on one tower: it returns at its timeout, but its pool process keeps computing."""
    text = "The answer is $\\boxed{10^{10^{10^{10}}}}$"
    t0 = time.perf_counter()
    score = verl_module.compute_score(text, "3", timeout=2.0)
    dt = time.perf_counter() - t0
    pool = verl_module._pool
    pids = list(getattr(pool, "_processes", {}) or {})
    t1 = {p: _cpu_ticks(p) for p in pids}
    time.sleep(1.0)
    t2 = {p: _cpu_ticks(p) for p in pids}
    busy = {p: (t2[p] or 0) - (t1[p] or 0) for p in pids if t1[p] is not None and t2[p] is not None}
    # clean up: the pool processes are ours (started by this benchmark); kill them by pid
    pool.shutdown(wait=False, cancel_futures=True)
    for p in pids:
        try:
            os.kill(p, 9)
        except ProcessLookupError:
            pass
    verl_module._pool = None
    return (
        f"verl built-in on the tower (timeout=2 s): returned {score} after {dt:.2f} s; "
        f"its pool processes' CPU ticks in the next 1 s: {busy} "
        f"({'still computing' if any(v > 20 for v in busy.values()) else 'idle'})"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 responses, 2 s timeout, no verl leftover demo")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "math500.jsonl"))
    ap.add_argument("-n", type=int, default=None, help="responses in the throughput mix (default 500, quick 100)")
    ap.add_argument("--group", type=int, default=4, help="responses per problem in the grouped mix (default 4)")
    ap.add_argument("--timeout", type=float, default=None, help="per-sample timeout (default 5 s, quick 2 s)")
    args = ap.parse_args(argv)
    n = args.n or (100 if args.quick else 500)
    timeout_s = args.timeout or (2.0 if args.quick else 5.0)

    data = Path(os.environ.get("CWGRPO_SHARED_DATA", "")) / "math500.jsonl" if os.environ.get("CWGRPO_SHARED_DATA") else Path(args.data)
    if data.exists():
        rows = [json.loads(x) for x in data.read_text().splitlines() if x.strip()]
        src = str(data)
    else:  # tiny self-written fallback so the benchmark still runs
        rows = [
            {"solution": "So $x = \\boxed{12}$.", "answer": "12"},
            {"solution": "Hence $\\boxed{\\frac{3}{4}}$.", "answer": "\\frac{3}{4}"},
            {"solution": "We get $\\boxed{(1,2)}$.", "answer": "(1,2)"},
            {"solution": "Thus $\\boxed{2\\sqrt{3}}$.", "answer": "2\\sqrt{3}"},
        ]
        src = "built-in fallback rows (shared data not found)"

    import verl.utils.reward_score.math_verify as verl_mv

    print(f"== cwgrpo reward benchmark ({'quick' if args.quick else 'full'}; {os.cpu_count()} CPUs; data: {src})")
    verl_fn = lambda resp, gold: verl_mv.compute_score(resp, gold)  # noqa: E731
    results = {}
    for group in (1, args.group):
        half = len(rows) // 2 if len(rows) > 8 else 0
        warm = make_mix(rows[half:] or rows, 40, group=group, seed=1)
        tp = bench_throughput(warm, make_mix(rows[:half] or rows, n, group=group), verl_fn)
        ratio = tp["rps_ours"] / tp["rps_verl"]
        results[group] = (tp, ratio)
        what = "every problem once" if group == 1 else f"{group} responses per problem, as in a GRPO group / mean@k"
        print(f"throughput over {tp['n']} responses ({what}; sequential calls, half right / half wrong):")
        print(f"  cwgrpo_verl.reward.compute_score       : {tp['rps_ours']:8.1f} responses/s")
        print(f"  verl math_verify.compute_score         : {tp['rps_verl']:8.1f} responses/s")
        print(f"  ratio ours / verl                      : {ratio:8.2f}x")
        print(f"  verdict as constructed: ours {tp['expected_ours']}/{tp['n']}, verl {tp['expected_verl']}/{tp['n']};"
              f" ours and verl agree on {tp['agree']}/{tp['n']}")
    tp, ratio = results[args.group]

    print(f"adversarial inputs (timeout {timeout_s:.1f} s; limit {timeout_s + 1:.1f} s per call):")
    rows_adv, ok_adv = bench_adversarial(timeout_s)
    worst = max(r[2] for r in rows_adv)
    for mode, name, dt, reason, good in rows_adv:
        if mode == "-":
            print(f"  {name}: {reason}")
        else:
            print(f"  [{mode:5s}] {name:32s} {dt:6.2f} s  {reason:8s}{'' if good else '  (killed child still alive!)'}")
    print(f"  worst wall time: {worst:.2f} s (limit {timeout_s + 1:.1f} s); child restarts so far: {R._POOL.restarts}")

    if not args.quick:
        print(verl_leftover_demo(verl_mv))
    R.shutdown()

    # target: >= verl's built-in; both do the same math-verify work, so allow 10% for noise on a shared machine
    passed = ok_adv and ratio >= 0.9
    tp1, ratio1 = results[1]
    print(f"SUMMARY: throughput (group {args.group}) {tp['rps_ours']:.1f} vs {tp['rps_verl']:.1f} responses/s "
          f"({ratio:.2f}x; every problem once: {ratio1:.2f}x), "
          f"worst adversarial {worst:.2f} s <= {timeout_s + 1:.1f} s: {'yes' if ok_adv else 'NO'} -> "
          f"{'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
