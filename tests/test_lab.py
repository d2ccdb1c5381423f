"""`make lab` starts JupyterLab serving the lessons and RISE's slideshow of each (checked on a
loopback port).

`make lab` uses the repository's own `.venv` (building it first if it is missing or stale), so
this test belongs to that environment: run from any other environment (Colab, conda, another
venv) it is skipped, instead of starting a pinned install of several gigabytes.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
MAKE_VENV = ROOT / ".venv"


def in_make_environment() -> bool:
    """True when these tests run in the `.venv` that `make` built (its stamp file exists)."""
    built = (MAKE_VENV / ".installed").is_file()
    return built and Path(sys.prefix).resolve() == MAKE_VENV.resolve()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.skipif(
    not in_make_environment(),
    reason="make lab runs the repository's .venv; this test runs only inside it (make test)",
)
def test_make_lab_serves_the_notebooks(tmp_path):
    port, token = free_port(), "course-test-token"
    arguments = (
        f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} "
        f"--ServerApp.port_retries=0 --IdentityProvider.token={token}"
    )
    environment = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    server = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"LAB_ARGS={arguments}"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so the whole make -> jupyter tree can be stopped
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        listing = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, body = fetch(f"{base}/api/contents?token={token}")
            except OSError:
                time.sleep(0.5)
                continue
            assert status == 200
            listing = json.loads(body)
            break
        assert listing is not None, "JupyterLab did not answer: " + (
            server.stdout.read().decode() if server.poll() is not None else "still starting"
        )
        served = {item["name"] for item in listing["content"]}
        lessons = {path.name for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
        assert lessons and lessons <= served
        status, page = fetch(f"{base}/lab?token={token}")
        assert status == 200 and b"JupyterLab" in page
        # RISE (jupyterlab-rise) presents a lesson as live slides from its slideshow metadata.
        status, page = fetch(f"{base}/rise/{sorted(lessons)[0]}?token={token}")
        assert status == 200 and b"<title>rise" in page.lower()
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    """Stop make and the JupyterLab it started (the whole process group)."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    except ProcessLookupError:  # already gone
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
