"""``python -m tools.check``: does ``import verl`` register cw_grpo in the driver and on every alive Ray node?

verl swallows plugin import errors, so a node without the package fails only at the first update of a long run. A task
pinned to each alive node, and a fresh interpreter for the driver, import ``verl`` first, as verl's own processes do.

    python -m tools.check --address HEAD:6379           # Ray's GCS address, or `auto`, or RAY_ADDRESS
    python -m tools.check --address http://HEAD:8265    # the job server: submits itself as submit_ray_job.sh would

A call that hangs is cut at ``--timeout``; the exit status is in ``--help``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from cwgrpo_verl import argtypes

CHECKOUT = Path(__file__).resolve().parents[1]
CHECKOUT_RUNTIME_ENV = CHECKOUT / "examples" / "runtime_env.yaml"
FIX = ("pip install -e . on every node, or ship the repo as working_dir with "
       "VERL_USE_EXTERNAL_MODULES=cwgrpo_verl.plugin (examples/submit_ray_job.sh does both)")


class CheckError(RuntimeError):
    """The check could not run: a one-line message, exit status 2."""


def probe() -> dict:
    """Did ``import verl`` load the plugin here? Self-contained, shipped by value: only ``import verl`` may load it."""
    import importlib
    import os
    import socket
    import sys
    from pathlib import Path

    out = {"pid": os.getpid(), "host": socket.gethostname(), "ok": False, "reason": ""}
    try:
        import verl
    except Exception as error:  # noqa: BLE001 (reported: one node's failure must not hide the others)
        return {**out, "reason": f"cannot import verl: {type(error).__name__}: {error}"}
    out["verl"] = getattr(verl, "__version__", "?")
    plugin = sys.modules.get("cwgrpo_verl.plugin")
    if plugin is None:  # say why (importing it now cannot change the verdict)
        try:
            importlib.import_module("cwgrpo_verl.plugin")
        except Exception as error:  # noqa: BLE001
            out["reason"] = f"cannot import cwgrpo_verl: {type(error).__name__}: {error}"
        else:
            env = ", ".join(f"{k}={os.environ.get(k, '<unset>')}"
                            for k in ("VERL_USE_EXTERNAL_PLUGINS", "VERL_USE_EXTERNAL_MODULES"))
            out["reason"] = ("import verl did not load cwgrpo_verl (no verl.plugins entry point installed, or it is "
                             f"excluded: {env})")
        return out
    try:
        plugin.check_registered()
    except RuntimeError as error:
        return {**out, "reason": str(error)}
    package = sys.modules["cwgrpo_verl"]
    return {**out, "ok": True, "plugin": getattr(package, "__version__", "?"),
            "path": str(Path(package.__file__).parent)}


def line(where: str, report: dict | None) -> str:
    if report is None:
        return f"{where}: NO ANSWER"
    head = f"{where}: pid {report['pid']} on {report['host']}: "
    if report["ok"]:
        return head + f"registered (cwgrpo_verl {report['plugin']} from {report['path']}, verl {report['verl']})"
    return head + f"NOT registered: {report['reason']}"


def summary(reports: dict[str, dict | None]) -> tuple[str, bool]:
    """The verdict over every process: ``(text, ok)``."""
    bad = [where for where, r in reports.items() if r is None or not r["ok"]]
    if not bad:
        return f"cwgrpo_verl: registered everywhere ({len(reports)} processes: {', '.join(reports)})", True
    return f"cwgrpo_verl: MISSING in {len(bad)} of {len(reports)} ({', '.join(bad)}): {FIX}", False


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def classify(address: str | None) -> tuple[str, str | None]:
    """``("job", url)`` for the dashboard address, ``("gcs", address)`` for a Ray address, ``("default", None)``."""
    if not address:
        return "default", None
    if address.startswith(("http://", "https://")):
        if not urlsplit(address).hostname:
            raise ValueError(f"no host in {address!r}")
        return "job", address.rstrip("/")
    host, sep, port = address.rpartition(":")
    if address != "auto" and not address.startswith("ray://") and not (sep and host and port.isdigit()):
        raise ValueError(f"expected HOST:PORT (GCS, e.g. HEAD:6379), auto, ray://HOST:PORT or http://HOST:8265, "
                         f"got {address!r}")
    return "gcs", address


def reachable(kind: str, address: str, seconds: float) -> None:
    """Fail fast, with a message, where nothing listens (Ray itself would retry for minutes)."""
    if kind == "job":
        parts = urlsplit(address)
        endpoint = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    elif address == "auto":
        return
    else:
        host, _, port = address.removeprefix("ray://").rpartition(":")
        endpoint = host.strip("[]"), int(port)
    try:
        socket.create_connection(endpoint, timeout=max(seconds, 0.1)).close()
    except OSError as error:
        what = f"no answer within {seconds:.0f} s" if isinstance(error, TimeoutError) else error.strerror or error
        raise CheckError(f"cannot reach Ray at {address} ({what}): is the head running and the port open from "
                         "here? (--address / RAY_ADDRESS)") from None


def process_age() -> float:
    """Seconds since this process started (0.0 where ``/proc`` cannot tell): the imports before ``main`` ran."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


class Watchdog:
    """Ends the process with a one-line message ``seconds`` after its start (``spent`` seconds ago), for a Ray call
    without a timeout of its own that hangs; :meth:`left`: what calls with a deadline get, less a reserve to report."""

    def __init__(self, seconds: float, spent: float = 0.0):
        self.seconds, self.spent, self.stage = seconds, spent, "starting"
        self.allowance = max(0.0, seconds - spent - min(1.0, 0.2 * seconds))  # for calls with a deadline, at start
        self.end = time.monotonic() + self.allowance
        self._timer = threading.Timer(max(0.0, seconds - spent), self._expire)
        self._timer.daemon = True

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()

    def _expire(self):
        what = (f"starting the check (Python and its imports) took {self.spent:.1f} s: more than"
                if self.spent >= self.seconds else f"{self.stage} did not finish within")
        print(f"error: {what} --timeout {self.seconds:g} s", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(2)  # the hung call holds the main thread; nothing else can end it


def check_cluster(address: str | None, runtime_env: dict | None, dog: Watchdog) -> dict[str, dict | None]:
    """The driver's own report, then one probe pinned to each alive node; ``None`` where a node did not answer."""
    dog.stage = f"connecting to the Ray cluster at {address or 'the default address'}"
    import logging

    import ray
    import ray.cloudpickle
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    driver = fresh_driver_probe()  # this process imported cwgrpo_verl, so it cannot tell
    ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, logging_level=logging.WARNING)
    reports: dict[str, dict | None] = {}
    try:
        if __name__ != "__main__":  # by reference, unpickling probe would import cwgrpo_verl
            ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        remote = ray.remote(num_cpus=0, max_retries=0)(probe)
        refs = {}
        for i, n in enumerate(nodes, 1):
            head = " head" if any(k.startswith("node:__internal_head__") for k in n.get("Resources", {})) else ""
            refs[f"node {i}/{len(nodes)} {n['NodeManagerAddress']} {n['NodeID'][:8]}{head}"] = remote.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
        dog.stage = f"waiting for the answers of {len(nodes)} nodes"
        ray.wait(list(refs.values()), num_returns=len(refs), timeout=dog.left())
        for where, ref in refs.items():
            try:
                reports[where] = ray.get(ref, timeout=0)
            except ray.exceptions.GetTimeoutError:
                reports[where] = None
            except Exception as error:  # noqa: BLE001 (a node that cannot run the task is a failed node)
                reports[where] = {"pid": "?", "host": "?", "ok": False,
                                  "reason": f"{type(error).__name__}: {first_line(error)}"}
    finally:
        dog.stage = "disconnecting from Ray"
        ray.shutdown()
    dog.stage = "waiting for the driver's report (a fresh `import verl` on this machine)"
    return {"driver": driver_report(driver, dog.left()), **reports}


def fresh_driver_probe() -> subprocess.Popen:
    """:func:`probe` in a new interpreter on this machine, as a training driver starts (``import verl`` first)."""
    source = f"{inspect.getsource(probe)}\nimport json\nprint(json.dumps(probe()))"
    return subprocess.Popen([sys.executable, "-c", source], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, text=True)


def driver_report(process: subprocess.Popen, timeout_s: float) -> dict | None:
    try:
        out, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None
    lines = out.strip().splitlines()
    if process.returncode or not lines:
        return {"pid": process.pid, "host": socket.gethostname(), "ok": False,
                "reason": f"the probe exited with status {process.returncode}"}
    return json.loads(lines[-1])


def job_runtime_env(path: Path | None, working_dir: Path | None) -> dict:
    """The runtime env of ``path`` (``--runtime-env``) plus ``working_dir``, as submit_ray_job.sh ships them."""
    import yaml

    env = {}
    if path:
        try:
            env = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise CheckError(f"--runtime-env {path}: cannot read it ({type(error).__name__}: {error})".splitlines()[0])
        if not isinstance(env, dict):
            raise CheckError(f"--runtime-env {path}: expected a YAML mapping (as `ray job submit --runtime-env`)")
    return {**env, "working_dir": str(working_dir)} if working_dir is not None else env


def check_as_job(url: str, runtime_env: dict, dog: Watchdog) -> int:
    """Submit ``python -m tools.check`` as a Ray job, print its output, return its exit status."""
    dog.stage = f"contacting the Ray job server at {url}"
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(url)
    entrypoint = f"python -m tools.check --address auto --timeout {max(1, int(0.8 * dog.left()))}"  # ends first
    dog.stage = f"submitting the check as a Ray job to {url}"
    job = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env or None)
    print(f"submitted `{entrypoint}` as Ray job {job} to {url}", flush=True)
    dog.stage = f"Ray job {job} at {url}"
    status = client.get_job_status(job)
    while not status.is_terminal() and dog.left() > 0:
        time.sleep(0.5)
        status = client.get_job_status(job)
    logs = client.get_job_logs(job)
    print(logs, end="" if logs.endswith("\n") else "\n")
    if not status.is_terminal():
        client.stop_job(job)
        raise CheckError(f"Ray job {job} did not finish within --timeout {dog.seconds:g} s; stopped it "
                         f"(`ray job logs --address {url} {job}`)")
    print(f"Ray job {job}: {status.value}")
    return 0 if status == JobStatus.SUCCEEDED else 1


def main(argv=None, spent: float = 0.0) -> int:
    """The command line; ``spent``: seconds of ``--timeout`` already used (by ``python -m``, the imports)."""
    p = argparse.ArgumentParser(prog="python -m tools.check", description=__doc__.split("\n\n")[0],
                                epilog="Exit status: 0 registered everywhere, 1 missing somewhere or a node did not "
                                       "answer, 2 the check could not run.")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS") or None,
                   help="HOST:PORT (GCS), auto, ray://HOST:PORT, or http(s)://HOST:8265 (runs as a Ray job); default "
                        "$RAY_ADDRESS, else what ray.init() picks")
    p.add_argument("--timeout", type=argtypes.real(), default=120.0,
                   help="seconds in all, from the start of the process (default 120)")
    p.add_argument("--runtime-env", type=Path, metavar="YAML", help="as for `ray job submit --runtime-env`; default "
                   "for an http address: examples/runtime_env.yaml of this checkout")
    p.add_argument("--working-dir", type=Path, metavar="DIR",
                   help="http address only: the job's working_dir; default this checkout")
    args = p.parse_args(argv)
    try:
        kind, address = classify(args.address)
    except ValueError as error:
        p.error(f"--address / RAY_ADDRESS: {error}")
    if args.working_dir is not None and kind != "job":
        p.error("--working-dir applies to an http(s):// (job server) address only")
    for flag, path in (("--runtime-env", args.runtime_env), ("--working-dir", args.working_dir)):
        if path is not None and not path.exists():
            p.error(f"{flag} {path}: no such file or directory")
    try:
        if kind == "job" and CHECKOUT_RUNTIME_ENV.is_file():  # run from a checkout: ship it as submit_ray_job.sh does
            runtime_env = job_runtime_env(args.runtime_env or CHECKOUT_RUNTIME_ENV, args.working_dir or CHECKOUT)
        else:
            runtime_env = job_runtime_env(args.runtime_env, args.working_dir) or None
    except CheckError as error:
        p.error(str(error))
    with Watchdog(args.timeout, spent) as dog:
        try:
            if kind != "default":
                reachable(kind, address, min(10.0, dog.allowance))  # the first call: its limit is fixed
            if kind == "job":
                return check_as_job(address, runtime_env, dog)
            reports = check_cluster(address, runtime_env, dog)
        except CheckError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except Exception as error:  # noqa: BLE001 (Ray's connection, auth and job-server errors: one line each)
            print(f"error: {dog.stage}: {type(error).__name__}: {first_line(error)}", file=sys.stderr)
            return 2
    text, ok = summary(reports)
    print(*(line(where, report) for where, report in reports.items()), text, sep="\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(spent=process_age()))
