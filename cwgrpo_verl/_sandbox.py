"""Answer checking that runs inside a disposable child process.

This file is deliberately self-contained (standard library + ``math_verify``): the parent starts it as
``python <this file> <socket_fd>`` (no package import, no ``__main__`` re-import, no multiprocessing state).
That process is a *zygote*: it imports math-verify once and then forks a ready worker whenever the parent asks,
so a hung or crashed worker can be killed and replaced in milliseconds.

Protocol:

* zygote -> parent, once after start-up: ``{"ready": true}`` or ``{"ready": false, "error": "..."}``;
* parent -> zygote: one byte per worker wanted; zygote -> parent: the worker pid (8 bytes) plus the parent's
  ends of two pipes, passed as file descriptors;
* parent -> worker, per sample (``multiprocessing.connection`` framing, JSON):
  ``{"id", "mode", "gold_kind", "gold", "text"}``; worker -> parent: ``{"id", "acc", "pred", "reason"}``.

``check_answer`` is importable on its own (it is what the child runs), which keeps it testable in-process;
it never applies a time limit itself: the parent's hard limit (kill the child) is the only one.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time

__all__ = ["check_answer", "PRED_MAX_CHARS"]

#: Longest ``pred`` string returned (``str`` of a huge sympy object is cut here).
PRED_MAX_CHARS = 200

_CONFIGS: dict | None = None
_GOLD_CACHE: dict = {}
_GOLD_CACHE_MAX = 4096


def _configs() -> dict:
    """Build the math-verify extraction configurations (and their compiled regexes) once per process.

    math-verify memoises its regexes for one configuration at a time (``lru_cache(maxsize=1)``); scoring
    alternates between a gold and a prediction configuration, so the compiled regexes are kept here instead.
    """
    global _CONFIGS
    if _CONFIGS is None:
        from latex2sympy2_extended import NormalizationConfig
        from math_verify import ExprExtractionConfig, LatexExtractionConfig

        configs = {
            # Training (authors' accuracy reward): the whole completion, LaTeX only, \boxed first,
            # every boxed kept, no extraction without an anchor.
            "train_pred": [
                LatexExtractionConfig(
                    normalization_config=NormalizationConfig(
                        nits=False,
                        malformed_operators=False,
                        basic_latex=True,
                        equations=True,
                        boxed="all",
                        units=True,
                    ),
                    boxed_match_priority=0,
                    try_extract_without_anchor=False,
                )
            ],
            # Training gold: math-verify's default targets (LaTeX, then expression).
            "train_gold": [LatexExtractionConfig(), ExprExtractionConfig()],
            # Evaluation (lighteval extractive_match as pinned by the paper).
            "eval_pred": [ExprExtractionConfig(), LatexExtractionConfig(boxed_match_priority=0)],
            "eval_gold_expr": [ExprExtractionConfig()],
            "eval_gold_latex": [LatexExtractionConfig()],
        }
        try:
            from math_verify.parser import get_extraction_regexes

            _CONFIGS = {k: (v, get_extraction_regexes(v)) for k, v in configs.items()}
        except ImportError:  # pragma: no cover - other math-verify layouts: let parse() build them
            _CONFIGS = {k: (v, None) for k, v in configs.items()}
    return _CONFIGS


def _parse(text: str, which: str, fallback_mode: str, extraction_mode: str) -> list:
    """``math_verify.parse(text, config, ...)`` without a time limit, reusing the compiled regexes."""
    config, regexes = _configs()[which]
    if regexes is None:
        from math_verify import parse

        return parse(
            text, config, fallback_mode=fallback_mode, extraction_mode=extraction_mode, parsing_timeout=None
        )
    from math_verify.parser import extract_target_from_pred

    try:  # parse() turns every parsing error into "nothing extracted"
        return extract_target_from_pred(
            text, regexes, fallback_mode=fallback_mode, extraction_mode=extraction_mode
        )
    except Exception:  # noqa: BLE001
        return []


def _pred_string(preds: list) -> str:
    if not preds:
        return ""
    try:
        s = str(preds[0])
    except Exception:  # noqa: BLE001 - str() of odd sympy objects can fail
        s = ""
    return s[:PRED_MAX_CHARS]


def _parse_gold(which: str, gold: str, fallback_mode: str, extraction_mode: str) -> list:
    """Parse a gold answer, memoised (a group of responses shares its gold; sympy objects are immutable)."""
    key = (which, gold)
    hit = _GOLD_CACHE.get(key)
    if hit is not None:
        return hit
    parsed = _parse(gold, which, fallback_mode, extraction_mode)
    if len(_GOLD_CACHE) >= _GOLD_CACHE_MAX:
        _GOLD_CACHE.clear()
    _GOLD_CACHE[key] = parsed
    return parsed


def check_answer(mode: str, gold_kind: str, gold: str, text: str) -> dict:
    """Return ``{"acc": bool, "pred": str, "reason": str}`` for one sample (no time limit here).

    ``mode`` is ``"train"`` or ``"eval"``; ``gold_kind`` (eval only) is ``"expr"`` or ``"latex"``.
    """
    from math_verify import verify

    if mode == "train":
        gold_parsed = _parse_gold("train_gold", gold, "first_match", "first_match")
        if not gold_parsed:
            return {"acc": False, "pred": "", "reason": "no_gold"}
        pred_parsed = _parse(text, "train_pred", "first_match", "first_match")
        if not pred_parsed:
            return {"acc": False, "pred": "", "reason": "no_pred"}
        ok = verify(gold_parsed, pred_parsed, timeout_seconds=None)
        return {"acc": bool(ok), "pred": _pred_string(pred_parsed), "reason": "ok"}

    which = "eval_gold_expr" if gold_kind == "expr" else "eval_gold_latex"
    gold_parsed = _parse_gold(which, gold, "first_match", "any_match")
    if not gold_parsed:
        # lighteval: a gold that cannot be extracted stays the raw string (exact string match only).
        gold_parsed = [gold]
    pred_parsed = _parse(text, "eval_pred", "first_match", "any_match")
    if not pred_parsed:
        return {"acc": False, "pred": "", "reason": "no_pred"}
    ok = verify(gold_parsed, pred_parsed, float_rounding=5, timeout_seconds=None)
    return {"acc": bool(ok), "pred": _pred_string(pred_parsed), "reason": "ok"}


def _watch_parent(parent_pid: int) -> None:
    """Exit if our parent goes away while we are busy (an idle worker sees EOF instead)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(0)


def _limit_memory() -> None:
    mb = int(os.environ.get("CWGRPO_REWARD_MEM_MB", "4096") or 0)
    if mb > 0:
        try:
            import resource

            limit = mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):
            pass


def _serve(read_fd: int, write_fd: int) -> None:
    """Worker loop (runs in a process forked from the zygote): one request in, one answer out."""
    from multiprocessing.connection import Connection

    inbox = Connection(read_fd, writable=False)
    outbox = Connection(write_fd, readable=False)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    while True:
        try:
            raw = inbox.recv_bytes()
        except (EOFError, OSError):
            return
        req = json.loads(raw)
        try:
            res = check_answer(req["mode"], req.get("gold_kind", "latex"), req["gold"], req["text"])
        except MemoryError:
            res = {"acc": False, "pred": "", "reason": "memory"}
        except Exception:  # noqa: BLE001 - never let model text kill the loop (RecursionError included)
            res = {"acc": False, "pred": "", "reason": "error"}
        res["id"] = req.get("id")
        outbox.send_bytes(json.dumps(res).encode())


_WARM_ANSWERS = (
    "1", "-3", "0.25", "\\frac{3}{4}", "2\\sqrt{3}", "\\dfrac{\\pi}{6}", "(1,2)", "[0, 1)", "x^2+1",
    "\\{1, 2\\}", "10\\%", "45^\\circ", "\\text{(B)}", "3 \\cdot 10^{4}", "\\infty", "a=2",
)


def _warm_up() -> None:
    """Parse a few typical answers so every forked worker inherits warm regex/ANTLR/sympy caches."""
    for i, ans in enumerate(_WARM_ANSWERS):
        other = _WARM_ANSWERS[(i + 1) % len(_WARM_ANSWERS)]
        text = f"<think>\nso $y = {other}$ here\n</think>\nThe final answer is $\\boxed{{{ans}}}$."
        for gold in (f"Hence $\\boxed{{{ans}}}$.", f"${other}$"):
            check_answer("eval", "latex", gold, text)
            check_answer("train", "latex", gold, text)
        check_answer("eval", "expr", ans, text)
    _GOLD_CACHE.clear()


def _zygote(sock_fd: int) -> None:
    """Import math-verify once, then fork a ready worker per request of the parent.

    The parent sends one byte per worker wanted; the zygote answers with the worker's pid and passes it the
    parent's ends of two fresh pipes (SCM_RIGHTS). Workers are reaped automatically (SIGCHLD ignored), so the
    parent can kill one with SIGKILL and see it gone at once. The zygote exits when the parent's socket closes.
    """
    import signal
    import socket

    sock = socket.socket(fileno=sock_fd)
    try:
        logging.disable(logging.WARNING)  # math-verify logs every failed parse; keep stderr quiet
        _limit_memory()
        import math_verify  # noqa: F401

        _configs()
        _warm_up()
    except BaseException as exc:  # noqa: BLE001
        sock.sendall(json.dumps({"ready": False, "error": repr(exc)}).encode())
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    sock.sendall(b'{"ready": true}')
    while True:
        try:
            cmd = sock.recv(1)
        except OSError:
            cmd = b""
        if not cmd:
            os._exit(0)
        c_read, p_write = os.pipe()
        p_read, c_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                sock.close()
                os.close(p_write)
                os.close(p_read)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _serve(c_read, c_write)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        os.close(c_read)
        os.close(c_write)
        socket.send_fds(sock, [pid.to_bytes(8, "little")], [p_write, p_read])
        os.close(p_write)
        os.close(p_read)


if __name__ == "__main__":
    _zygote(int(sys.argv[1]))
