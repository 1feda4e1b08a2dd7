"""A Ray head of the test's own: loopback, its own ports and temp dir, stopped by its own process group.

Never `ray stop`: it stops every Ray on the machine, including other people's.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from verl.utils.net_utils import get_free_port

from tools.smoke import our_processes, stop_leftovers


def free_port() -> int:
    return get_free_port("127.0.0.1")[0]


def ray_cli() -> str:
    local = Path(sys.executable).parent / "ray"
    return str(local) if local.exists() else shutil.which("ray")


@contextlib.contextmanager
def local_ray_head(num_cpus: int = 2, timeout_s: float = 120.0):
    """Yield ``(dashboard_url, env)`` of a fresh head; ``env`` is what a client needs to reach only this head."""
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's unix sockets live there
    port, dashboard = free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [ray_cli(), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--num-cpus", str(num_cpus),
         # Ray's fixed default (52365) may be another Ray's on this machine: then jobs would never start
         "--dashboard-agent-listen-port", "0",
         "--temp-dir", temp_dir, "--disable-usage-stats", "--include-dashboard", "true"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + timeout_s
        # ready when it takes a job: the dashboard answers `ray job list` before its job agent is up
        probe = [ray_cli(), "job", "submit", "--no-wait", "--address", url, "--", "true"]
        while subprocess.run(probe, env=env, capture_output=True).returncode:
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the test's Ray head did not come up:\n{head.stdout.read()[-3000:]}")
            time.sleep(1)
        yield url, {**env, "RAY_ADDRESS": url}
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops the processes it started...
        try:
            head.wait(timeout=3)
        except subprocess.TimeoutExpired:  # ...but slowly: a test cluster has nothing to save
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        stop_leftovers(head.pid, temp_dir, grace_s=2.0)  # ours for certain: the head's session or its temp dir
        deadline = time.monotonic() + 10
        while (left := our_processes(head.pid, temp_dir)) and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"processes of the test's Ray head survived SIGKILL: {left}"
