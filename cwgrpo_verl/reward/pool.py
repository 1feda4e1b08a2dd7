"""A small scoring service inside each process: N worker processes, a hard time limit per sample.

Not a library pool: pebble and loky cannot stop one sample stuck in C without a grace period or breaking the pool.
The zygote (:mod:`.scoring.worker`), time limit, retries and fork handling: docs/reward.md, "The worker pool".
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from cwgrpo_verl.processes import alive

# A fresh interpreter that imports the scoring (cwgrpo_verl's root imports neither verl nor torch) and runs the zygote
_BOOTSTRAP = (
    "import sys; from cwgrpo_verl.reward.scoring import check_answer, worker; "
    "worker.zygote(int(sys.argv[1]), int(sys.argv[2]), check_answer)"
)


def _failed(reason: str) -> dict:
    return {"acc": False, "pred": "", "reason": reason}


class Lost(Exception):
    """The worker is unusable: ``started``: it may have begun the sample; ``dead``: it is gone (EOF), so its pid,
    which may be someone else's now, must not be signalled."""

    def __init__(self, started: bool, dead: bool) -> None:
        self.started, self.dead = started, dead


def _child_env() -> dict[str, str]:
    """The caller's environment with the folders of this package and the scoring's libraries on PYTHONPATH, as the
    caller sees them (a Ray job's working_dir, for example, is on its sys.path only)."""
    import importlib.util

    specs = [importlib.util.find_spec(m) for m in ("cwgrpo_verl", "math_verify", "latex2sympy2_extended", "sympy",
                                                   "antlr4")]
    extra = [str(Path(spec.origin).resolve().parent.parent) for spec in specs if spec is not None and spec.origin]
    old = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(old + extra))}


class Zygote:
    """The process that forks workers; started from (and reaped by) a thread of its own."""

    def __init__(self) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.owner_pid = os.getpid()
        started: queue.SimpleQueue = queue.SimpleQueue()

        def run() -> None:  # this thread is the zygote's parent thread for PR_SET_PDEATHSIG
            try:
                proc = subprocess.Popen([sys.executable, "-c", _BOOTSTRAP, str(theirs.fileno()), str(os.getpid())],
                                        pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=_child_env())
            except BaseException as exc:  # noqa: BLE001
                proc = exc
            theirs.close()
            started.put(proc)
            if isinstance(proc, subprocess.Popen):
                proc.wait()

        threading.Thread(target=run, name="cwgrpo-reward-zygote", daemon=True).start()
        proc = started.get()
        if not isinstance(proc, subprocess.Popen):
            self.sock.close()
            raise RuntimeError(f"cannot start the reward's scoring process: {proc!r}")
        self.proc = proc
        startup_s = float(os.environ.get("CWGRPO_REWARD_STARTUP_S", "120"))  # for its import and warm-up, and a fork
        self.sock.settimeout(startup_s)
        try:
            raw = self.sock.recv(65536)
            msg = json.loads(raw) if raw else {"error": f"it exited with code {self.proc.poll()}"}
            error = None if msg.get("ready") else f"failed to start: {msg.get('error')}"
        except OSError as exc:
            error = f"did not start within {startup_s:.0f} s: {exc!r}"
        if error:
            self.kill()
            raise RuntimeError(f"the reward's scoring process {error}")

    def fork_worker(self) -> Worker:
        self.sock.sendall(b"F")
        msg, fds, _, _ = socket.recv_fds(self.sock, 8, 1)
        if len(msg) != 8 or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise OSError("the reward's scoring process sent no worker")
        os.set_inheritable(fds[0], False)  # received descriptors are inheritable: keep them out of programs we run
        return Worker(int.from_bytes(msg, "little"), fds[0])

    def kill(self) -> None:
        """Close our socket (the zygote exits on EOF) and SIGKILL it; its workers follow (PDEATHSIG)."""
        self.sock.close()
        if self.owner_pid == os.getpid():
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)


class Worker:
    """One scoring process (a child of the zygote) and our end of its socket."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self.owner_pid, self.conn = pid, os.getpid(), Connection(fd)

    def call(self, payload: bytes, timeout: float) -> dict | None:
        """The worker's answer, or None past ``timeout``; :class:`Lost` if it died or its socket broke."""
        if self.conn.poll(0):  # readable while idle: EOF (it died waiting for work) or stray data
            try:
                self.conn.recv_bytes()
            except (EOFError, OSError) as exc:
                raise Lost(started=False, dead=True) from exc
            raise Lost(started=False, dead=False)
        try:
            self.conn.send_bytes(payload)
        except OSError as exc:  # EPIPE: nobody reads the socket any more
            raise Lost(started=False, dead=True) from exc
        try:
            return json.loads(self.conn.recv_bytes()) if self.conn.poll(timeout) else None
        except (EOFError, ConnectionResetError) as exc:  # a socket closed with unread data gives ECONNRESET
            raise Lost(started=True, dead=True) from exc
        except (OSError, ValueError) as exc:
            raise Lost(started=True, dead=False) from exc

    def close_socket(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()

    def kill(self, dead: bool = False) -> None:
        """SIGKILL the worker and wait (2 s at most) until it is gone; only the process that forked it may,
        and only while it is known to live (a dead worker's pid may already be someone else's)."""
        self.close_socket()
        if dead or self.owner_pid != os.getpid():
            return
        try:
            os.kill(self.pid, 9)
        except (ProcessLookupError, PermissionError):
            return
        end = time.monotonic() + 2.0
        while alive(self.pid) and time.monotonic() < end:
            time.sleep(0.001)


class Pool:
    """Up to ``size`` workers; one sample per worker at a time, each with its own deadline."""

    def __init__(self, size: int) -> None:
        self.size, self.owner_pid, self.last_killed = size, os.getpid(), None
        self._cond = threading.Condition(threading.Lock())
        self._zygote_lock = threading.Lock()
        self._zygote: Zygote | None = None
        self._idle: list[Worker] = []
        self._workers: dict[int, Worker] = {}  # every live worker, idle or busy
        self._busy, self._closed = 0, False

    def _drop_zygote(self) -> None:
        if self._zygote is not None:
            self._zygote.kill()
        self._zygote = None

    def _fork_worker(self) -> Worker:
        with self._zygote_lock:
            for attempt in range(2):
                if self._zygote is None or self._zygote.proc.poll() is not None:
                    self._drop_zygote()
                    self._zygote = Zygote()
                try:
                    return self._zygote.fork_worker()
                except OSError:
                    self._drop_zygote()
                    if attempt:
                        raise

    def _acquire(self) -> Worker:
        with self._cond:
            while not self._idle and self._busy + len(self._idle) >= self.size and not self._closed:
                self._cond.wait()
            if self._closed:
                raise RuntimeError("the reward's worker pool is shut down")
            self._busy += 1
            if self._idle:
                return self._idle.pop()
        try:
            worker = self._fork_worker()
        except BaseException:
            with self._cond:
                self._busy -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._workers[worker.pid] = worker
        return worker

    def _kill(self, workers: list[Worker], dead: bool = False) -> None:
        for worker in workers:
            self.last_killed = worker.pid
            worker.kill(dead=dead)

    def _release(self, worker: Worker, keep: bool, dead: bool = False) -> None:
        with self._cond:
            self._busy -= 1
            keep = keep and not self._closed and self._busy + len(self._idle) < self.size
            if keep:
                self._idle.append(worker)
            else:
                self._workers.pop(worker.pid, None)
            self._cond.notify()
        if not keep:
            self._kill([worker], dead)

    def run(self, payload: dict, timeout: float) -> dict:
        """Score one sample: the worker's answer, or ``{"reason": "timeout" | "crash"}``."""
        data = json.dumps(payload).encode()
        crashes = 0
        for _ in range(self.size + 3):  # idle deaths are retried; a bounded number, in case forks keep dying
            worker, result, lost = self._acquire(), None, None
            try:
                result = worker.call(data, timeout)
            except Lost as exc:
                lost = exc
            finally:  # an unexpected error (KeyboardInterrupt) also retires the worker, then propagates
                self._release(worker, keep=result is not None, dead=lost is not None and lost.dead)
            if lost is None:
                return _failed("timeout") if result is None else result
            crashes += lost.started
            if crashes == 2:
                break
        return _failed("crash")

    def resize(self, size: int) -> None:
        """Grow at once (workers fork on demand); shrink by retiring idle workers beyond ``size`` now and busy
        ones as they finish."""
        with self._cond:
            self.size = size
            extra = self._idle[max(0, size - self._busy):]
            del self._idle[max(0, size - self._busy):]
            for worker in extra:
                self._workers.pop(worker.pid, None)
            self._cond.notify_all()
        self._kill(extra)

    def pids(self) -> dict:
        with self._cond:
            return {"workers": sorted(self._workers), "idle": sorted(w.pid for w in self._idle),
                    "zygote": self._zygote.proc.pid if self._zygote else None, "last_killed": self.last_killed}

    def close(self) -> None:
        """Kill every worker and the zygote; calls in flight get ``crash`` or an error."""
        with self._cond:
            self._closed = True
            workers = list(self._workers.values())
            self._idle.clear()
            self._workers.clear()
            self._cond.notify_all()
        self._kill(workers)
        with self._zygote_lock:
            self._drop_zygote()

    def forget(self) -> None:
        """In a forked child: drop the inherited sockets without locking or killing anything."""
        for worker in list(self._workers.values()):
            worker.close_socket()
        if self._zygote is not None:
            with contextlib.suppress(OSError):
                self._zygote.sock.close()
