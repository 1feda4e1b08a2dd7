"""A small scoring service inside each process: N worker processes, a hard time limit per sample.

Why not a library pool: pebble 5.2 and loky 3.7 were measured against what the reward needs (see
docs/reward.md, "The worker pool"). pebble breaks for good when an idle worker is killed, and stops a timed-out
worker with SIGTERM plus a 3 s grace period, one at a time, in its manager thread; loky has no per-task time
limit, and killing one worker fails every task in flight. So this module keeps its own pool, small on purpose:

* one *zygote* per process (``python -c``, see :mod:`.scoring.worker`) imports the scoring once and forks
  warm workers on request, in milliseconds; it is started from a thread that lives exactly as long as it
  (waiting for it), because ``PR_SET_PDEATHSIG`` fires when the *thread* that forked a process exits;
* each call takes an idle worker (or forks one, up to ``size``), sends the sample and waits at most
  ``timeout_s`` for the answer, without holding any lock; past the limit the worker is SIGKILLed (and gone
  at once: the zygote does not wait for its children) and the sample scores ``timeout``; other samples run on;
* a worker found dead before its sample started (killed while idle, an OOM kill) is replaced and the sample
  sent again; one that dies during a sample gets the sample once more on a fresh worker, then ``crash``;
* after ``os.fork()`` the child drops what it inherited (without taking a lock another thread may have held)
  and starts its own zygote on its first call; the parent's processes are never touched by the child;
* workers and the zygote die with the caller, even in the middle of C-level arithmetic (PDEATHSIG).
"""

from __future__ import annotations

import itertools
import json
import os
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


def startup_timeout_s() -> float:
    """How long a zygote may take to import and warm up: ``$CWGRPO_REWARD_STARTUP_S`` (default 120 s)."""
    return float(os.environ.get("CWGRPO_REWARD_STARTUP_S", "120"))


class Timeout(Exception):
    """The worker did not answer within the sample's limit."""


class Crash(Exception):
    """The worker died (or its pipes broke) while it had the sample."""

    def __init__(self, dead: bool) -> None:
        super().__init__("worker exited" if dead else "worker pipe broken")
        self.dead = dead  # True: it is gone (EOF); never signal its pid, which may belong to someone else now


class DeadBeforeStart(Crash):
    """The worker was found dead (or unusable) before it could have started the sample."""


def _child_env() -> dict[str, str]:
    """The caller's environment, with the folders of this package, sympy and math-verify on PYTHONPATH, as the
    caller sees them (a Ray job's working_dir, for example, is on its sys.path only)."""
    import importlib.util

    env = dict(os.environ)
    extra = []
    for mod in ("cwgrpo_verl", "math_verify", "latex2sympy2_extended", "sympy", "antlr4"):
        spec = importlib.util.find_spec(mod)
        if spec is not None and spec.origin:
            extra.append(str(Path(spec.origin).resolve().parent.parent))
    old = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(old + extra))
    return env


class Zygote:
    """The process that forks workers; started from (and reaped by) a thread of its own."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = ours
        self.owner_pid = os.getpid()
        started: dict = {}
        ready = threading.Event()

        def run() -> None:  # this thread is the zygote's parent thread for PR_SET_PDEATHSIG
            try:
                started["proc"] = subprocess.Popen(
                    [sys.executable, "-c", _BOOTSTRAP, str(theirs.fileno()), str(os.getpid())],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    env=_child_env(),
                )
            except BaseException as exc:  # noqa: BLE001
                started["error"] = exc
            finally:
                theirs.close()
                ready.set()
            if "proc" in started:
                started["proc"].wait()

        threading.Thread(target=run, name="cwgrpo-reward-zygote", daemon=True).start()
        ready.wait()
        if "error" in started:
            ours.close()
            raise RuntimeError(f"cannot start the reward's scoring process: {started['error']!r}")
        self.proc: subprocess.Popen = started["proc"]
        self._wait_ready()

    def _wait_ready(self) -> None:
        self.sock.settimeout(startup_timeout_s())
        try:
            raw = self.sock.recv(65536)
        except OSError as exc:
            self.kill()
            raise RuntimeError(
                f"the reward's scoring process did not start within {startup_timeout_s():.0f} s: {exc!r}"
            ) from exc
        msg = json.loads(raw) if raw else {"ready": False, "error": f"it exited with code {self.proc.poll()}"}
        if not msg.get("ready"):
            self.kill()
            raise RuntimeError(f"the reward's scoring process failed to start: {msg.get('error')}")

    def fork_worker(self) -> "Worker":
        self.sock.settimeout(startup_timeout_s())
        self.sock.sendall(b"F")
        msg, fds, _, _ = socket.recv_fds(self.sock, 8, 2)
        if len(msg) != 8 or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            raise OSError("the reward's scoring process sent no worker")
        for fd in fds:  # received descriptors are inheritable: keep them out of programs this process runs
            os.set_inheritable(fd, False)
        return Worker(int.from_bytes(msg, "little"), fds[0], fds[1])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Close our socket (the zygote exits on EOF) and SIGKILL it; its workers follow (PDEATHSIG)."""
        self.sock.close()
        if self.owner_pid == os.getpid():
            try:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass


class Worker:
    """One scoring process (a child of the zygote) and our ends of its two pipes."""

    def __init__(self, pid: int, write_fd: int, read_fd: int) -> None:
        self.pid = pid
        self.tx = Connection(write_fd, readable=False)
        self.rx = Connection(read_fd, writable=False)
        self.owner_pid = os.getpid()

    def call(self, payload: bytes, timeout: float) -> dict:
        if self.rx.poll(0):  # readable while idle: EOF (it died waiting for work) or stray data
            try:
                self.rx.recv_bytes()
            except (EOFError, OSError) as exc:
                raise DeadBeforeStart(dead=True) from exc
            raise DeadBeforeStart(dead=False)
        try:
            self.tx.send_bytes(payload)
        except OSError as exc:  # EPIPE: nobody reads the request pipe any more
            raise DeadBeforeStart(dead=True) from exc
        try:
            if not self.rx.poll(timeout):
                raise Timeout()
            return json.loads(self.rx.recv_bytes())
        except EOFError as exc:
            raise Crash(dead=True) from exc
        except (OSError, ValueError) as exc:
            raise Crash(dead=False) from exc

    def close_pipes(self) -> None:
        for conn in (self.tx, self.rx):
            try:
                conn.close()
            except OSError:
                pass

    def kill(self, dead: bool = False) -> None:
        """SIGKILL the worker and wait (2 s at most) until it is gone; only the process that forked it may,
        and only while it is known to live (a dead worker's pid may already be someone else's)."""
        self.close_pipes()
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
        self.size = size
        self.owner_pid = os.getpid()
        self._cond = threading.Condition(threading.Lock())
        self._zygote_lock = threading.Lock()
        self._zygote: Zygote | None = None
        self._idle: list[Worker] = []
        self._workers: dict[int, Worker] = {}  # every live worker, idle or busy
        self._busy = 0
        self._closed = False
        self.last_killed: int | None = None
        self._ids = itertools.count()

    # -------------------------------------------------------------------------------- workers

    def _fork_worker(self) -> Worker:
        with self._zygote_lock:
            for attempt in range(2):
                if self._zygote is None or not self._zygote.alive():
                    if self._zygote is not None:
                        self._zygote.kill()
                    self._zygote = None
                    self._zygote = Zygote()
                try:
                    return self._zygote.fork_worker()
                except OSError:
                    self._zygote.kill()
                    self._zygote = None
                    if attempt:
                        raise
        raise AssertionError("unreachable")

    def _acquire(self) -> Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("the reward's worker pool is shut down")
                if self._idle:
                    self._busy += 1
                    return self._idle.pop()
                if self._busy + len(self._idle) < self.size:
                    self._busy += 1
                    break
                self._cond.wait()
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

    def _release(self, worker: Worker, keep: bool, dead: bool = False) -> None:
        with self._cond:
            self._busy -= 1
            if keep and not self._closed and self._busy + len(self._idle) < self.size:
                self._idle.append(worker)
                worker = None
            else:
                self._workers.pop(worker.pid, None)
            self._cond.notify()
        if worker is not None:
            self.last_killed = worker.pid
            worker.kill(dead=dead)

    # -------------------------------------------------------------------------------- public

    def run(self, payload: dict, timeout: float) -> dict:
        """Score one sample: the worker's answer, or ``{"reason": "timeout" | "crash"}``."""
        data = json.dumps(payload).encode()
        crashes = 0
        for _ in range(self.size + 3):  # idle deaths are retried; a bounded number, in case forks keep dying
            worker = self._acquire()
            try:
                result = worker.call(data, timeout)
            except DeadBeforeStart as exc:
                self._release(worker, keep=False, dead=exc.dead)
                continue
            except Timeout:
                self._release(worker, keep=False)
                return {"acc": False, "pred": "", "reason": "timeout"}
            except Crash as exc:
                self._release(worker, keep=False, dead=exc.dead)
                crashes += 1
                if crashes < 2:
                    continue
                return {"acc": False, "pred": "", "reason": "crash"}
            except BaseException:
                self._release(worker, keep=False)
                raise
            self._release(worker, keep=True)
            return result
        return {"acc": False, "pred": "", "reason": "crash"}

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
        for worker in extra:
            self.last_killed = worker.pid
            worker.kill()

    def pids(self) -> dict:
        with self._cond:
            return {
                "workers": sorted(self._workers),
                "idle": sorted(w.pid for w in self._idle),
                "zygote": self._zygote.proc.pid if self._zygote is not None else None,
                "last_killed": self.last_killed,
            }

    def close(self) -> None:
        """Kill every worker and the zygote; calls in flight get ``crash`` or an error."""
        with self._cond:
            self._closed = True
            workers = list(self._workers.values())
            self._idle.clear()
            self._workers.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.kill()
        with self._zygote_lock:
            if self._zygote is not None:
                self._zygote.kill()
                self._zygote = None

    def forget(self) -> None:
        """In a forked child: drop the inherited pipes and socket without locking or killing anything."""
        for worker in list(self._workers.values()):
            worker.close_pipes()
        if self._zygote is not None:
            try:
                self._zygote.sock.close()
            except OSError:
                pass
