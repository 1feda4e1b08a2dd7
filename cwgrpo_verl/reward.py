"""CW-GRPO rewards and evaluation scoring for verl 0.9.1, with a hard per-sample time limit.

Use from verl::

    reward.custom_reward_function.path=pkg://cwgrpo_verl.reward
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.format_weight=0.0   # 7B recipe: accuracy only

``compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)`` returns a dict whose keys
and value types never change: ``score`` (float), ``acc`` (float 0/1), ``format`` (float 0/1), ``pred`` (str,
extracted answer, feeds verl's ``maj@k``), ``reason`` (str) and ``timed_out`` (float 0/1).

Rules
-----
Mode: ``mode="train"|"eval"`` forces one; by default (``"auto"``) the data sources in :data:`EVAL_GOLD_KIND`
(AIME24, AMC23, MATH-500, Minerva, OlympiadBench) are scored in eval mode and everything else in train mode.

Train mode (the authors' TRL rewards):

* gold = ``ground_truth`` (Open-RS ``solution`` text) parsed with math-verify's default targets (LaTeX, then
  expression), first match; if nothing parses the sample gets ``acc = 0`` and ``reason = "no_gold"`` (the
  authors skipped it: its accuracy reward was NaN, so only the format term counted).
* prediction = the whole completion, LaTeX extraction only, ``\\boxed{}`` tried first, ``boxed="all"``,
  normalisation (basic LaTeX, units, equations; no nits, no malformed-operator fixes), nothing extracted without
  an anchor, first match; ``acc = verify(gold, pred)`` (math-verify defaults, 6-decimal rounding).
* ``format = 1`` iff ``"\\n</think>\\n"`` occurs exactly once in the completion.
* ``score = acc_weight * acc + format_weight * format`` (defaults 1 and 1; ``format_weight=0`` for the 7B recipe).

Eval mode (lighteval ``extractive_match`` as pinned by the paper; ``score = acc``, ``format`` still reported):

* gold extracted as an expression (``ExprExtractionConfig``) for AIME24/AMC23, as LaTeX
  (``LatexExtractionConfig``) for MATH-500/Minerva/OlympiadBench (``gold_kind=`` overrides; unknown sources
  default to LaTeX); if no gold can be extracted it stays the raw string and only an exact string match counts;
* prediction targets ``(ExprExtractionConfig(), LatexExtractionConfig(boxed_match_priority=0))``, fallback
  ``first_match`` (the first matched string is kept next to the parsed values), any match, rightmost match
  first within a priority (``<think>`` is not stripped: the last ``\\boxed{}`` of the output wins);
* correct iff any (gold, prediction) pair verifies with ``verify(..., float_rounding=5)``
  (so AMC gold ``27.0`` accepts ``27``).
* What ``ground_truth`` to store per set: see :func:`gold_from_row` (the field lighteval parsed).

Safety: model text is never evaluated. Null bytes are removed and only the last ``max_chars`` characters
(default 16384; the answer is at the end) are parsed (``format`` looks at the whole string). Parsing runs in
a worker process forked from a *zygote* child (``python cwgrpo_verl/_sandbox.py``, math-verify imported once;
gold parses are memoised there), reached through a pipe. The caller waits at most ``timeout_s`` (default 5 s)
from handing the sample to a ready worker, then SIGKILLs the worker, so a stuck sympy call never keeps
computing; the zygote forks a ready replacement in milliseconds. A timeout scores 0 with
``reason="timeout"``; a worker that dies (e.g. under its address-space limit, env ``CWGRPO_REWARD_MEM_MB``,
default 4096) gives ``reason="crash"``. No signals are used in the caller, so this works from any thread and
inside a running asyncio loop; calls are serialised by a lock; a forked caller starts its own children (pid
check); children exit when the caller dies. Reasons: ``ok`` (scored, right or wrong), ``no_gold``,
``no_pred``, ``timeout``, ``crash``, ``memory``, ``error``. Only a broken installation (the zygote cannot
start, e.g. math-verify missing) raises ``RuntimeError``.

Known deviations from the paper's scoring: math-verify is the installed 0.8/0.9 release, not the 0.5.x the paper
pinned; only the last ``max_chars`` characters are parsed (``max_chars=0`` parses everything, like lighteval);
the start-up of the zygote (about 1-2 s, once per process) is not counted against ``timeout_s``.

Self-check: ``python -m cwgrpo_verl.reward --self-check ../shared/data`` boxes every gold answer of the five
evaluation sets in a model-like response and reports the eval-mode pass rate per set.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "DATA_SOURCES",
    "EVAL_GOLD_KIND",
    "EVAL_FILES",
    "compute_score",
    "format_reward",
    "gold_from_row",
    "answer_from_row",
    "process_alive",
    "resolve_data_source",
    "shutdown",
    "worker_pids",
]

#: Stable ``data_source`` names (import these in data preparation).
DATA_SOURCES: dict[str, str] = {
    "open_rs": "cwgrpo/open_rs",
    "aime24": "cwgrpo/aime24",
    "amc23": "cwgrpo/amc23",
    "math500": "cwgrpo/math500",
    "minerva": "cwgrpo/minerva",
    "olympiadbench": "cwgrpo/olympiadbench",
}

#: Evaluation sources and how lighteval extracted their gold ("expr" or "latex").
EVAL_GOLD_KIND: dict[str, str] = {
    DATA_SOURCES["aime24"]: "expr",
    DATA_SOURCES["amc23"]: "expr",
    DATA_SOURCES["math500"]: "latex",
    DATA_SOURCES["minerva"]: "latex",
    DATA_SOURCES["olympiadbench"]: "latex",
}

#: File names of the evaluation sets in ``shared/data`` (Qwen2.5-Math / HF schemas).
EVAL_FILES: dict[str, str] = {
    "aime24": "aime24.jsonl",
    "amc23": "amc23.jsonl",
    "math500": "math500.jsonl",
    "minerva": "minerva_math.jsonl",
    "olympiadbench": "olympiadbench.jsonl",
}

# Other spellings people put in data_source (HF paths, lighteval task names).
_ALIASES: dict[str, str] = {
    "knoveleng/open-rs": "open_rs",
    "open-rs": "open_rs",
    "huggingfaceh4/aime_2024": "aime24",
    "aime_2024": "aime24",
    "knoveleng/amc-23": "amc23",
    "amc": "amc23",
    "huggingfaceh4/math-500": "math500",
    "math-500": "math500",
    "math_500": "math500",
    "knoveleng/minerva-math": "minerva",
    "minerva_math": "minerva",
    "knoveleng/olympiadbench": "olympiadbench",
}

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_CHARS = 16384
STARTUP_TIMEOUT_S = float(os.environ.get("CWGRPO_REWARD_STARTUP_S", "120"))
_FORMAT_TAG = "\n</think>\n"
_SANDBOX_FILE = Path(__file__).with_name("_sandbox.py")


def resolve_data_source(name: str) -> str:
    """Map a set key (``"math500"``), alias (``"HuggingFaceH4/MATH-500"``) or stable name to the stable name."""
    key = str(name).strip()
    if key in EVAL_GOLD_KIND or key in DATA_SOURCES.values():
        return key
    low = key.lower()
    low = _ALIASES.get(low, low)
    if low.startswith("cwgrpo/"):
        low = low[len("cwgrpo/") :]
    return DATA_SOURCES.get(low, key)


def gold_from_row(dataset_name: str, row: Mapping[str, Any]) -> str:
    """The ``ground_truth`` string to store for one data row (what lighteval / the authors parsed).

    * open_rs: ``solution`` (the authors parsed the full solution text, first match);
    * aime24: ``str(answer)`` (expression gold);
    * amc23: ``str(answer)`` of the float, e.g. ``"27.0"`` (expression gold; ``27`` still verifies);
    * math500, minerva: the full ``solution`` text (LaTeX gold, its ``\\boxed{}`` is extracted);
    * olympiadbench: ``final_answer[0]`` (= the knoveleng ``answer`` column; mostly plain text, so lighteval
      usually compared it as a raw string).
    """
    src = resolve_data_source(dataset_name)
    if src in (DATA_SOURCES["open_rs"], DATA_SOURCES["math500"], DATA_SOURCES["minerva"]):
        return str(row["solution"])
    if src in (DATA_SOURCES["aime24"], DATA_SOURCES["amc23"]):
        return _scalar_str(row["answer"])
    if src == DATA_SOURCES["olympiadbench"]:
        fa = row.get("final_answer")
        if fa is not None and not isinstance(fa, str):
            return str(list(fa)[0])
        if fa is not None:
            return fa
        return str(row["answer"])
    raise KeyError(f"unknown dataset {dataset_name!r}; known: {sorted(DATA_SOURCES)}")


def answer_from_row(dataset_name: str, row: Mapping[str, Any]) -> str:
    """The bare final answer of a row (what a correct model would box); used by the self-check."""
    src = resolve_data_source(dataset_name)
    if src == DATA_SOURCES["math500"] and row.get("answer") is not None:
        return str(row["answer"])
    if src in (DATA_SOURCES["open_rs"], DATA_SOURCES["math500"], DATA_SOURCES["minerva"]):
        boxed = _last_boxed(str(row["solution"]))
        if boxed is None:
            raise ValueError("solution has no \\boxed{}")
        return boxed
    g = gold_from_row(src, row).strip()
    if g.startswith("$") and g.rstrip(".").endswith("$"):  # OlympiadBench golds are often "$...$" or "$...$."
        g = g.rstrip(".").strip("$").strip()
    return g


def _scalar_str(x: Any) -> str:
    return x if isinstance(x, str) else str(x)


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (balanced braces), or None."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def format_reward(completion: str) -> float:
    """1.0 iff ``"\\n</think>\\n"`` occurs exactly once (the authors' format reward)."""
    return 1.0 if completion.count(_FORMAT_TAG) == 1 else 0.0


# --------------------------------------------------------------------------------------------------------------
# Child-process worker
# --------------------------------------------------------------------------------------------------------------


class _Timeout(Exception):
    pass


class _Crash(Exception):
    pass


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    extra = []
    for mod in ("math_verify", "latex2sympy2_extended", "sympy"):
        try:
            spec = importlib.util.find_spec(mod)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            extra.append(str(Path(spec.origin).resolve().parent.parent))
    old = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(old + extra))
    return env


_BOOTSTRAP = (
    "import sys, runpy; sys.path.pop(0); path = sys.argv[1]; sys.argv = sys.argv[1:]; "
    "runpy.run_path(path, run_name='__main__')"
)


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a killed child waiting to be reaped (a zombie) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class _Zygote:
    """The long-lived child that has math-verify imported and forks workers on request."""

    def __init__(self) -> None:
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(_SANDBOX_FILE), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=_child_env(),
                close_fds=True,
            )
        finally:
            theirs.close()
        self.sock = ours
        self.ready = False
        self.owner_pid = os.getpid()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        self.sock.settimeout(timeout)
        try:
            raw = self.sock.recv(65536)
        except OSError as exc:  # socket.timeout is an OSError
            raise RuntimeError(f"cwgrpo reward zygote did not start within {timeout:.0f} s: {exc!r}") from exc
        if not raw:
            raise RuntimeError(f"cwgrpo reward zygote died during start-up (exit code {self.proc.poll()})")
        msg = json.loads(raw)
        if not msg.get("ready"):
            raise RuntimeError(f"cwgrpo reward zygote failed to start: {msg.get('error')}")
        self.ready = True

    def fork_worker(self, timeout: float) -> "_Worker":
        import socket

        self.sock.settimeout(timeout)
        self.sock.sendall(b"F")
        msg, fds, _, _ = socket.recv_fds(self.sock, 8, 2)
        if len(msg) != 8 or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            raise OSError("cwgrpo reward zygote sent a malformed worker handle")
        return _Worker(int.from_bytes(msg, "little"), fds[0], fds[1])

    def kill(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        if self.owner_pid != os.getpid():
            return  # inherited through fork: it belongs to our parent
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass


class _Worker:
    """A forked worker (a child of the zygote, reaped by it) and the parent's pipe ends."""

    def __init__(self, pid: int, write_fd: int, read_fd: int) -> None:
        from multiprocessing.connection import Connection

        self.pid = pid
        self.tx = Connection(write_fd, readable=False)
        self.rx = Connection(read_fd, writable=False)
        self.owner_pid = os.getpid()
        self._ids = itertools.count()

    def call(self, payload: dict, timeout: float) -> dict:
        req_id = next(self._ids)
        payload = dict(payload, id=req_id)
        deadline = time.monotonic() + timeout
        try:
            self.tx.send_bytes(json.dumps(payload).encode())
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not self.rx.poll(left):
                    raise _Timeout()
                msg = json.loads(self.rx.recv_bytes())
                if msg.get("id") == req_id:
                    return msg
        except (EOFError, OSError, ValueError) as exc:
            raise _Crash() from exc

    def close_pipes(self) -> None:
        for conn in (self.tx, self.rx):
            try:
                conn.close()
            except OSError:
                pass

    def kill(self) -> None:
        """SIGKILL the worker and wait (briefly) until it is gone; never touches another process's worker."""
        self.close_pipes()
        if self.owner_pid != os.getpid():
            return
        try:
            os.kill(self.pid, 9)
        except (ProcessLookupError, PermissionError):
            return
        end = time.monotonic() + 2.0
        while process_alive(self.pid) and time.monotonic() < end:
            time.sleep(0.002)


class _Pool:
    """One zygote and one active worker, serialised by a lock; fork-aware."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.zygote: _Zygote | None = None
        self.active: _Worker | None = None
        self.restarts = 0
        self.last_killed: int | None = None

    def _check_fork(self) -> None:
        if self.pid != os.getpid():
            if self.active is not None:
                self.active.close_pipes()
            if self.zygote is not None:
                try:
                    self.zygote.sock.close()
                except OSError:
                    pass
            self.active = self.zygote = None
            self.pid = os.getpid()

    def _ensure(self) -> _Worker:
        self._check_fork()
        if self.active is not None:
            return self.active
        for attempt in range(2):
            if self.zygote is None or not self.zygote.alive():
                if self.zygote is not None:
                    self.zygote.kill()
                self.zygote = _Zygote()
            try:
                self.zygote.wait_ready(STARTUP_TIMEOUT_S)
                self.active = self.zygote.fork_worker(STARTUP_TIMEOUT_S)
                return self.active
            except (OSError, RuntimeError):
                self.zygote.kill()
                self.zygote = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def run(self, payload: dict, timeout: float) -> dict:
        with self.lock:
            worker = self._ensure()
            try:
                return worker.call(payload, timeout)
            except _Timeout:
                reason = "timeout"
            except _Crash:
                reason = "crash"
            worker.kill()
            self.active = None
            self.restarts += 1
            self.last_killed = worker.pid
            return {"acc": False, "pred": "", "reason": reason}

    def pids(self) -> dict[str, int | None]:
        with self.lock:
            return {
                "worker": self.active.pid if self.active is not None else None,
                "zygote": self.zygote.proc.pid if self.zygote is not None else None,
                "last_killed": self.last_killed,
            }

    def close(self) -> None:
        with self.lock:
            self._check_fork()
            if self.active is not None:
                self.active.kill()
            if self.zygote is not None:
                self.zygote.kill()
            self.active = self.zygote = None


_POOL = _Pool()


def worker_pids() -> dict[str, int | None]:
    """Process ids: ``worker`` (scoring), ``zygote`` (forks workers), ``last_killed`` (last timed-out worker)."""
    return _POOL.pids()


def shutdown() -> None:
    """Kill the scoring worker and the zygote (they are restarted on the next call)."""
    _POOL.close()


import atexit  # noqa: E402

atexit.register(shutdown)


# --------------------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------------------


def _clean_text(x: Any) -> str:
    if x is None:
        return ""
    if not isinstance(x, str):
        x = str(x)
    if "\x00" in x:
        x = x.replace("\x00", "")
    return x


def _gold_text(x: Any) -> str | None:
    if x is None:
        return None
    if isinstance(x, (list, tuple)) or (hasattr(x, "tolist") and not isinstance(x, (str, bytes))):
        seq = list(x.tolist() if hasattr(x, "tolist") else x)
        if not isinstance(seq, list):  # numpy scalar
            seq = [seq]
        if not seq:
            return None
        x = seq[0]
    if isinstance(x, float) and math.isnan(x):
        return None
    g = _clean_text(x).strip()
    return g or None


def _result(score: float, acc: float, fmt: float, pred: str, reason: str) -> dict:
    return {
        "score": float(score),
        "acc": float(acc),
        "format": float(fmt),
        "pred": str(pred),
        "reason": str(reason),
        "timed_out": 1.0 if reason == "timeout" else 0.0,
    }


def compute_score(
    data_source: Any = None,
    solution_str: Any = "",
    ground_truth: Any = None,
    extra_info: Any = None,
    *,
    mode: str = "auto",
    acc_weight: float = 1.0,
    format_weight: float = 1.0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_chars: int = DEFAULT_MAX_CHARS,
    gold_kind: str | None = None,
    **_: Any,
) -> dict:
    """Score one response; see the module docstring for every rule. Never raises on model output."""
    text = _clean_text(solution_str)
    fmt = format_reward(text)
    src = resolve_data_source(data_source) if data_source is not None else ""
    if mode not in ("auto", "train", "eval"):
        raise ValueError(f"mode must be 'auto', 'train' or 'eval', got {mode!r}")
    eval_mode = mode == "eval" or (mode == "auto" and src in EVAL_GOLD_KIND)
    if eval_mode:
        kind = gold_kind or EVAL_GOLD_KIND.get(src, "latex")
        weight_acc, weight_fmt = 1.0, 0.0
    else:
        kind = gold_kind or "latex"
        weight_acc, weight_fmt = float(acc_weight), float(format_weight)

    gold = _gold_text(ground_truth)
    if gold is None:
        return _result(weight_fmt * fmt, 0.0, fmt, "", "no_gold")
    max_chars = int(max_chars)
    if max_chars > 0 and len(text) > max_chars:
        text = text[-max_chars:]
    if max_chars > 0 and len(gold) > 4 * max_chars:
        gold = gold[-4 * max_chars :]
    payload = {"mode": "eval" if eval_mode else "train", "gold_kind": kind, "gold": gold, "text": text}
    out = _POOL.run(payload, float(timeout_s))
    acc = 1.0 if out.get("acc") else 0.0
    return _result(weight_acc * acc + weight_fmt * fmt, acc, fmt, out.get("pred") or "", out.get("reason") or "error")


# --------------------------------------------------------------------------------------------------------------
# Self-check: every gold answer, boxed in a model-like response, must be accepted in eval mode.
# --------------------------------------------------------------------------------------------------------------


def model_like_response(answer: str) -> str:
    return (
        "<think>\nLet me work through the problem carefully. First I set up the equations, then I simplify "
        "and check the edge cases. $x = 1$ is a trial value.\n</think>\n\n"
        f"Putting everything together, the final answer is $\\boxed{{{answer}}}$"
    )


def self_check(data_dir: str | os.PathLike, timeout_s: float = 10.0) -> dict[str, dict[str, Any]]:
    """Return ``{set: {"n", "passed", "failures": [(index, answer, reason, pred)]}}`` over the eval files."""
    report: dict[str, dict[str, Any]] = {}
    for key, fname in EVAL_FILES.items():
        path = Path(data_dir) / fname
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        failures = []
        for i, row in enumerate(rows):
            answer = answer_from_row(key, row)
            res = compute_score(
                DATA_SOURCES[key], model_like_response(answer), gold_from_row(key, row), timeout_s=timeout_s
            )
            if res["acc"] != 1.0:
                failures.append((i, answer, res["reason"], res["pred"]))
        report[key] = {"n": len(rows), "passed": len(rows) - len(failures), "failures": failures}
    return report


def _main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--self-check", metavar="DATA_DIR", help="score every boxed gold answer of the eval sets")
    args = ap.parse_args(argv)
    if not args.self_check:
        ap.print_help()
        return 0
    report = self_check(args.self_check)
    bad = 0
    for key, r in report.items():
        print(f"{key:14s} {r['passed']:4d}/{r['n']:4d} = {100.0 * r['passed'] / max(r['n'], 1):6.2f}%")
        for i, ans, reason, pred in r["failures"]:
            print(f"    row {i}: answer={ans!r} reason={reason} pred={pred!r}")
        bad += len(r["failures"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(_main())
