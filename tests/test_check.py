"""``python -m tools.check`` on a real two-node Ray cluster on this machine, and its failures without one.

The cluster is started here (``ray start --block`` children on 127.0.0.1, own temp dir, own ports) and killed by
the process groups of those children; never ``ray stop``. Its second node runs with
``VERL_USE_EXTERNAL_PLUGINS=none``: a node where ``import verl`` does not load the plugin, as on a node without the
package installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ray_head import free_port, ray_cli  # the tests' shared single-head helper; this file adds a second node

from tools import check


def _wait(predicate, what: str, seconds: float, logs=()):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    tails = "\n".join(Path(p).read_text(errors="replace")[-2000:] for p in logs if Path(p).exists())
    raise AssertionError(f"{what} not within {seconds} s\n{tails}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of a `ray start --block` child: its node's raylet, agents and workers (a throwaway
    cluster: nothing to drain), then reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def _strays(temp_dir: str) -> list:
    """Live processes that run in or name this cluster's temp dir (ours by construction)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        info = proc.info
        if info["status"] != psutil.STATUS_ZOMBIE and any(temp_dir in (text or "") for text in
                                                          [*(info["cmdline"] or []), info["cwd"]]):
            found.append(proc)
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def cluster():
    """The dashboard URL of a head and a worker node; the worker node lacks the plugin for `import verl`."""
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's unix sockets live there
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    ray = ray_cli()
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PATH=f"{Path(ray).parent}:{env['PATH']}")
    gcs, dashboard = free_port(), free_port()
    common = ["--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "0", "--disable-usage-stats",
              "--dashboard-agent-listen-port", "0", "--include-log-monitor", "false"]
    logs = [Path(temp_dir, "head.out"), Path(temp_dir, "worker.out")]
    head = subprocess.Popen(
        [ray, "start", "--head", "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port",
         str(dashboard), "--ray-client-server-port", str(free_port()), "--temp-dir", temp_dir, *common],
        env=env, start_new_session=True, stdout=open(logs[0], "w"), stderr=subprocess.STDOUT)
    procs = [head]
    try:
        _wait(lambda: _connects(gcs) or head.poll() is not None, "the head's GCS port", 120, logs)
        assert head.poll() is None, logs[0].read_text(errors="replace")[-3000:]
        procs.append(subprocess.Popen(
            [ray, "start", "--address", f"127.0.0.1:{gcs}", *common],
            env={**env, "VERL_USE_EXTERNAL_PLUGINS": "none"}, start_new_session=True,
            stdout=open(logs[1], "w"), stderr=subprocess.STDOUT))
        _wait(lambda: all("Ray runtime started" in p.read_text(errors="replace") for p in logs)
              or any(p.poll() is not None for p in procs), "both nodes", 180, logs)
        assert all(p.poll() is None for p in procs), "\n".join(p.read_text(errors="replace")[-2000:] for p in logs)
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        for proc in reversed(procs):
            _stop(proc)
        _wait(lambda: not any(_group_alive(p.pid) for p in procs), "the end of every test-cluster process", 20)
        strays = _strays(temp_dir)  # e.g. a job's driver, which Ray starts in a session of its own
        for stray in strays:
            stray.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not strays, f"test-cluster processes outside its process groups: {strays}"


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_dashboard_address_checks_every_node_and_fails_on_the_one_without_the_plugin(cluster, tmp_path, monkeypatch,
                                                                                     capsys):
    """The README's RAY_ADDRESS=http://HEAD:8265: the check runs as a Ray job, which checks both nodes over the GCS.

    The job ships a runtime env without VERL_USE_EXTERNAL_MODULES (examples/runtime_env.yaml sets it, which would
    make the second node load the plugin): only the head's `import verl` loads it, so the check must fail there.
    """
    url = cluster
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # this machine holds a Ray token that a loopback head lacks
    monkeypatch.setenv("RAY_ADDRESS", url)
    env = tmp_path / "runtime_env.yaml"
    env.write_text("excludes: [.venv/, .git/, data/]\n")
    assert check.main(["--timeout", "150", "--runtime-env", str(env)]) == 1
    out = capsys.readouterr().out
    assert "as Ray job raysubmit_" in out and f"to {url}" in out, out
    assert "\ndriver: pid" in out and "Ray job raysubmit_" in out and out.rstrip().endswith(": FAILED"), out
    nodes = [line for line in out.splitlines() if line.startswith("node ")]
    assert len(nodes) == 2, out
    head, worker = sorted(nodes, key=lambda line: " head:" not in line)
    assert " head: " in head and "registered (cwgrpo_verl" in head and "working_dir_files" in head
    # a fresh worker on that node: only `import verl` may load the plugin, and it did not
    assert "NOT registered: import verl did not load cwgrpo_verl" in worker
    assert "VERL_USE_EXTERNAL_PLUGINS=none" in worker
    verdict = next(line for line in out.splitlines() if line.startswith("cwgrpo_verl: "))
    # the job's driver runs on either node: missing in the worker node, and in the driver when it runs there
    driver_ok = "registered (cwgrpo_verl" in next(line for line in out.splitlines() if line.startswith("driver: "))
    expected = "cwgrpo_verl: MISSING in 1 of 3 (node " if driver_ok else "cwgrpo_verl: MISSING in 2 of 3 (driver, node "
    assert verdict.startswith(expected) and "pip install -e ." in verdict, verdict


def test_job_defaults_ship_what_submit_ray_job_ships():
    """examples/runtime_env.yaml with this checkout as working_dir, as examples/submit_ray_job.sh submits a job."""
    import yaml

    env = check.job_runtime_env(check.CHECKOUT_RUNTIME_ENV, check.CHECKOUT)
    assert env == {**yaml.safe_load(check.CHECKOUT_RUNTIME_ENV.read_text()), "working_dir": str(check.CHECKOUT)}
    assert env["env_vars"]["VERL_USE_EXTERNAL_MODULES"] == "cwgrpo_verl.plugin"


def test_help_starts_nothing(monkeypatch, capsys):
    import ray

    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:1")
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("--help started Ray"))
    with pytest.raises(SystemExit) as exit_info:
        check.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m tools.check") and "--timeout" in out and "http(s)://" in out


@pytest.mark.parametrize("argv, message", [
    (["--address", "head"], "--address / RAY_ADDRESS: expected HOST:PORT"),
    (["--address", "head:port"], "--address / RAY_ADDRESS: expected HOST:PORT"),
    (["--address", "http://"], "--address / RAY_ADDRESS: no host"),
    (["--timeout", "0"], "argument --timeout: expected a number in (0, inf), got '0'"),
    (["--timeout", "nan"], "argument --timeout: expected a number in (0, inf), got 'nan'"),
    (["--address", "h:6379", "--working-dir", "."], "--working-dir applies to an http(s)://"),
    (["--address", "h:6379", "--runtime-env", "/nonexistent.yaml"], "--runtime-env /nonexistent.yaml: no such"),
])
def test_bad_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        check.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_address_forms():
    assert check.classify("http://head:8265/") == ("job", "http://head:8265")
    assert check.classify("https://ray.example.org") == ("job", "https://ray.example.org")
    assert check.classify("head:6379") == ("gcs", "head:6379")
    assert check.classify("[::1]:6379") == ("gcs", "[::1]:6379")
    assert check.classify("auto") == ("gcs", "auto") and check.classify("ray://h:10001") == ("gcs", "ray://h:10001")
    assert check.classify(None) == ("default", None) and check.classify("") == ("default", None)


@pytest.mark.parametrize("scheme", ["", "http://"])
def test_refused_address_is_one_line(scheme, monkeypatch, capsys):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with socket.socket() as reserved:  # bound, never listening: the port is ours and refuses connections
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        started = time.monotonic()
        assert check.main(["--address", f"{scheme}127.0.0.1:{port}", "--timeout", "5"]) == 2
    assert capsys.readouterr().err == (f"error: cannot reach Ray at {scheme}127.0.0.1:{port} (Connection refused): is "
                                       "the head running and the port open from here? (--address / RAY_ADDRESS)\n")
    assert time.monotonic() - started < 5


def test_bad_runtime_env_file_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "env.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(SystemExit) as exit_info:
        check.main(["--address", "127.0.0.1:1", "--runtime-env", str(bad)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        f"error: --runtime-env {bad}: expected a YAML mapping (as `ray job submit --runtime-env`)")


def test_summary_verdicts():
    good = {"pid": 1, "host": "h", "ok": True, "plugin": "0.1.0", "path": "/p", "verl": "0.9.1"}
    text, ok = check.summary({"driver": good, "node 1/2": good, "node 2/2": good})
    assert ok and text.startswith("cwgrpo_verl: registered everywhere (3 processes")
    text, ok = check.summary({"driver": good, "node 1/2": good, "node 2/2": None})
    assert not ok and text.startswith("cwgrpo_verl: MISSING in 1 of 3 (node 2/2)")
    assert check.line("node 2/2", None) == "node 2/2: NO ANSWER"


@pytest.mark.slow
def test_hanging_address_times_out_with_one_line():
    """A port that accepts connections but never speaks Ray: Ray would retry for minutes; --timeout ends it.

    The watchdog ends the process (os._exit), so this runs in a subprocess. check.py imports nothing of the package
    at import time, so the subprocess loads it by path: the same main(), without the 4-8 s import of verl that
    ``python -m tools.check`` adds (the package's __init__ imports verl).
    """
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    run_by_path = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('check', sys.argv[1]); "
                   "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
                   "sys.exit(module.main(sys.argv[2:]))")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", run_by_path, check.__file__, "--address", f"127.0.0.1:{port}",
                               "--timeout", "2"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert ours == [f"error: connecting to the Ray cluster at 127.0.0.1:{port} did not finish "
                    "within --timeout 2 s"], proc.stderr
    assert "verl" not in proc.stderr and time.monotonic() - started < 60


def test_blackholed_address_times_out_with_one_line(capsys, monkeypatch):
    """A host that drops the connection attempt (a listener whose accept queue is full): the TCP check times out."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with socket.socket() as server, socket.socket() as first:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        first.connect(("127.0.0.1", port))  # fills the accept queue: later SYNs are dropped, as by a firewall
        if _connects(port):  # else main() would reach Ray, hang, and its watchdog would end pytest itself
            pytest.skip("this kernel accepts connections beyond a full accept queue")
        started = time.monotonic()
        for scheme in ("", "http://"):
            assert check.main(["--address", f"{scheme}127.0.0.1:{port}", "--timeout", "1"]) == 2
            err = capsys.readouterr().err
            assert err == (f"error: cannot reach Ray at {scheme}127.0.0.1:{port} (no answer within 1 s): is the head "
                           "running and the port open from here? (--address / RAY_ADDRESS)\n")
    assert time.monotonic() - started < 5


def test_the_drivers_report_comes_from_a_fresh_interpreter(monkeypatch):
    """This process imported cwgrpo_verl; a driver's `import verl` must load it by itself to count as registered."""
    monkeypatch.setenv("VERL_USE_EXTERNAL_PLUGINS", "none")
    report = check.driver_report(check.fresh_driver_probe(), timeout_s=120)
    assert report["ok"] is False and "import verl did not load cwgrpo_verl" in report["reason"], report


def test_the_timeout_counts_what_was_spent_before_main_and_keeps_a_reserve():
    dog = check.Watchdog(10.0, spent=4.0)
    assert 4.9 < dog.left() <= 5.0  # 10 s in all, 4 already spent (the imports), 1 s kept to report
    assert 5.9 < dog._timer.interval <= 6.0  # the hard stop: at 10 s from the start of the process
    assert check.Watchdog(1.0).left() == pytest.approx(0.8, abs=0.05)
    assert 0.0 <= check.process_age() < time.monotonic()  # this process has run for some time


@pytest.mark.slow
def test_the_command_ends_within_its_timeout_counted_from_the_start():
    """`python -m tools.check --timeout 5` against a silent listener ended after about 12 s: the 4-8 s of
    `import verl` plus the limit plus a 2 s grace. Now the limit holds from the start of the process, and a limit
    shorter than the imports ends the check as soon as they are done, saying so."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        runs = {}
        for timeout in (1, 25):
            started = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "tools.check", "--address", f"127.0.0.1:{port}",
                                   "--timeout", str(timeout)], capture_output=True, text=True, timeout=120, env=env)
            runs[timeout] = (proc, time.monotonic() - started)
    proc, elapsed = runs[25]
    assert proc.returncode == 2 and elapsed < 25 + 1.5, (elapsed, proc.stderr)
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: connecting to the Ray cluster at 127.0.0.1:{port} did not finish within --timeout 25 s"], proc.stderr
    proc, elapsed = runs[1]
    ours = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(ours) == 1, proc.stderr
    # a slow machine spends the second on Python's start and imports, a fast one gets as far as connecting
    assert (ours[0].startswith("error: starting the check (Python and its imports) took ")
            and ours[0].endswith(" s: more than --timeout 1 s")) or ours[0] == (
        f"error: connecting to the Ray cluster at 127.0.0.1:{port} did not finish within --timeout 1 s"), ours
    assert elapsed < runs[25][1], elapsed  # the limit counted from the start, with no wait of its own
