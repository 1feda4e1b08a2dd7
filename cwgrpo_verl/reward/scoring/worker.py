"""The processes that score: a zygote that imports and warms the scoring once, and the workers it forks.

The pool starts ``python -c <bootstrap> <socket fd> <caller pid>``; the zygote forks a worker per byte received and
hands back its pid and one end of a socket pair (SCM_RIGHTS). Workers speak JSON in ``multiprocessing.connection``
frames: ``{"mode", "gold_kind", "gold", "text"}`` in, ``{"acc", "pred", "reason"}`` out. Why: docs/reward.md.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import resource
import signal
import socket
import sys
from multiprocessing.connection import Connection

_PR_SET_PDEATHSIG = 1
_WARM_ANSWERS = (
    "1", "-3", "0.25", "\\frac{3}{4}", "2\\sqrt{3}", "\\dfrac{\\pi}{6}", "(1,2)", "[0, 1)", "x^2+1",
    "\\{1, 2\\}", "10\\%", "45^\\circ", "\\text{(B)}", "3 \\cdot 10^{4}", "\\infty", "a=2",
)


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent exits; exit now if the parent is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(0)


def _serve(check_answer, fd: int) -> None:
    """Worker loop: one request in, one answer out, until the caller closes its end."""
    conn = Connection(fd)
    while True:
        try:
            req = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            res = check_answer(req["mode"], req.get("gold_kind", "latex"), req["gold"], req["text"])
        except MemoryError:
            res = {"acc": False, "pred": "", "reason": "memory"}
        except Exception:  # noqa: BLE001 - model text must never end the loop (RecursionError included)
            res = {"acc": False, "pred": "", "reason": "error"}
        conn.send_bytes(json.dumps({"acc": bool(res["acc"]), "pred": res["pred"], "reason": res["reason"]}).encode())


def _warm_up(check_answer) -> None:
    """Score a few typical answers so that every forked worker inherits warm parser and sympy caches."""
    for i, ans in enumerate(_WARM_ANSWERS):
        other = _WARM_ANSWERS[(i + 1) % len(_WARM_ANSWERS)]
        text = f"<think>\nso $y = {other}$ here\n</think>\nThe final answer is $\\boxed{{{ans}}}$."
        for gold in (f"Hence $\\boxed{{{ans}}}$.", f"${other}$"):
            check_answer("eval", "latex", gold, text)
            check_answer("train", "latex", gold, text)
        check_answer("eval", "expr", ans, text)


def zygote(sock_fd: int, parent_pid: int, check_answer) -> None:
    """Import and warm the scoring, then fork a ready worker per byte received; exit when the socket closes."""
    sock = socket.socket(fileno=sock_fd)
    try:
        die_with_parent(parent_pid)
        logging.disable(logging.WARNING)  # parsers log every failed parse; keep the caller's stderr quiet
        mb = int(os.environ.get("CWGRPO_REWARD_MEM_MB", "4096") or 0)  # address-space limit of scoring; 0 = none
        if mb > 0:
            resource.setrlimit(resource.RLIMIT_AS, (mb << 20, mb << 20))
        _warm_up(check_answer)
    except BaseException as exc:  # noqa: BLE001
        sock.sendall(json.dumps({"ready": False, "error": repr(exc)}).encode())
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps workers: one killed by the caller is gone at once
    sock.sendall(b'{"ready": true}')
    zygote_pid = os.getpid()
    while True:
        try:
            cmd = sock.recv(1)
        except OSError:
            cmd = b""
        if not cmd:
            os._exit(0)
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:  # its exit status is never read (SIGCHLD is ignored): end silently, whatever happened
                sock.close()
                ours.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                die_with_parent(zygote_pid)
                _serve(check_answer, theirs.detach())
            finally:
                os._exit(0)
        theirs.close()
        socket.send_fds(sock, [pid.to_bytes(8, "little")], [ours.fileno()])
        ours.close()
