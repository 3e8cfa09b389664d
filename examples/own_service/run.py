"""Run pairbench's own-service mode on the sample app: start it, measure it, stop it.

    python examples/own_service/run.py [pairbench run options, e.g. --rounds 2 --out results]

The sample app (app.py) is started under uvicorn on a free loopback port; `pairbench run
search.toml --target URL` measures its two endpoints; the app is stopped by its PID on every
path, Ctrl-C included. The exit code is pairbench's.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "search.toml"
START_TIMEOUT_S = 60.0  # building the sample catalogue takes about a second
POLL_S = 0.1
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A port the system hands out on loopback (free now; uvicorn binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, app: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise SystemExit(f"the sample app exited ({app.returncode}) while starting")
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(POLL_S)
    raise SystemExit(f"the sample app did not answer {url}/healthz in {START_TIMEOUT_S:.0f} s")


def main(argv: list[str]) -> int:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--log-level", "warning"],
        cwd=HERE,
    )
    try:
        wait_healthy(url, app)
        print(f"sample app (pid {app.pid}) on {url}", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "pairbench", "run", str(SCENARIO), "--target", url]
        return subprocess.run([*command, *argv]).returncode
    finally:
        app.terminate()  # by its PID: the app is this script's own child
        try:
            app.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
