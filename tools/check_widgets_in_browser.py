"""Check in a real browser that the lessons' widgets work in JupyterLab.

CI has no browser, so it only tests the widgets' Python side (tests/test_widgets.py,
tests/test_inpainting_lab.py). This maintainer script checks the rest: that JupyterLab 4
renders an ipywidgets explorer and that moving its controls redraws it. Two explorers can be
checked (``--lesson``): lesson 01's coverage explorer (default) and lesson 07's inpainting lab.
The script

1. copies ``notebooks/`` to a temporary folder (JupyterLab may autosave; the committed
   notebooks are never opened) and starts JupyterLab from the repository's ``.venv`` there,
   on a free port on 127.0.0.1 with a random token, with throwaway settings, workspaces and
   runtime folders (``course_lib`` is installed editable in the venv, so the kernel finds it);
2. opens the lesson's notebook in headless Chromium and runs Run > Run All Cells;
3. waits for the explorer (its coverage slider, and its readout: "... target 0.30 | measured
   ..." in lesson 01, the lab's PSNR/SSIM table in lesson 07) and records the readout and the
   PNG the ``Image`` widget shows (fetched from its blob URL);
4. moves the coverage slider with the arrow keys on its focused handle, then picks another mask
   kind in the kind dropdown, and after each change checks that the readout and the image
   changed;
5. saves screenshots of the explorer's cell before and after each change, prints a JSON
   summary, and exits 0 when every check passed, 1 otherwise. JupyterLab and the browser are
   always stopped, and the whole run is limited to ``--timeout`` seconds (default 170; the lab
   notebook needs about 300 on a 2-core CPU).

Requirements (not in pyproject.toml, since only this script uses them)::

    apt-get update && apt-get install -y chromium    # Debian: /usr/bin/chromium
    .venv/bin/python -m pip install playwright       # the driver only; do not run
                                                     # `playwright install`: the system
                                                     # Chromium is used

Run it from anywhere (it re-runs itself with ``.venv/bin/python`` when the current Python
lacks Playwright)::

    python tools/check_widgets_in_browser.py [--lesson 01|07] [--out /tmp/widget_check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class Explorer:
    """Where one lesson's explorer is and what its readout says."""

    notebook: str
    readout: str  # CSS class of the readout widget
    readout_text: str  # text the readout always contains once drawn
    first_text: str  # text the first readout must contain
    after_slider: str  # text the readout must contain after the slider moved ({target})
    kind_label: str  # label of the mask-kind dropdown
    new_kind: str  # the kind picked in it


EXPLORERS = {
    "01": Explorer(
        "01_masking.ipynb", "widget-label", "measured", "target 0.30 | measured",
        "target {target} |", "kind", "box",
    ),
    "07": Explorer(
        "07_inpainting_lab.ipynb", "widget-html", "PSNR", "coverage 0.", "coverage 0.",
        "mask", "irregular",
    ),
}  # fmt: skip
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# JupyterLab settings for this run only: no news or update checks (no requests to the internet,
# no toast over the notebook).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
SLIDER_STEPS = 20  # arrow-key presses on the coverage slider (step 0.01: 0.30 -> 0.50)

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # run with a Python that lacks Playwright: retry with the venv's
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    sys.exit(f"Playwright is missing: {VENV_PYTHON} -m pip install playwright (see --help)")


class CheckFailed(Exception):
    """A check did not pass; the message says which and what was seen."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_lab(work: Path, port: int, token: str, log: Path) -> subprocess.Popen:
    """JupyterLab from the venv on a copy of notebooks/, with throwaway config folders."""
    root_dir = work / "notebooks"
    shutil.copytree(
        ROOT / "notebooks", root_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints")
    )
    settings = work / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    environment = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(work / "lab-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
        "JUPYTER_CONFIG_DIR": str(work / "config"),  # ignore the maintainer's own settings
        "COURSE_PROFILE": os.environ.get("COURSE_PROFILE", "quick"),  # as `make test` does
    }
    command = [
        str(ROOT / ".venv" / "bin" / "jupyter"),
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    with log.open("wb") as stream:
        return subprocess.Popen(
            command,
            cwd=root_dir,
            env=environment,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kernels stop with it
        )


def wait_for_lab(server: subprocess.Popen, base: str, token: str, log: Path, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CheckFailed(f"JupyterLab exited ({server.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise CheckFailed(f"JupyterLab did not answer within {seconds:.0f} s:\n{log.read_text()}")


def stop_lab(server: subprocess.Popen) -> None:
    """Stop JupyterLab and the kernels it started (its process group)."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def image_state(image) -> dict:
    """The picture the Image widget shows: its src, decoded size and the PNG's sha256."""
    seen = image.evaluate(
        """async (img) => {
            if (!img.complete) await new Promise((done) => img.addEventListener('load', done));
            const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
            return {src: img.src, width: img.naturalWidth, height: img.naturalHeight,
                    bytes: Array.from(bytes)};
        }"""
    )
    data = bytes(seen.pop("bytes"))
    if not data.startswith(b"\x89PNG") or not seen["width"]:
        raise CheckFailed(f"the image is not a decoded PNG: {seen}, {len(data)} bytes")
    return {**seen, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def wait_until_idle(page, seconds: float) -> None:
    """Wait until no cell is queued or running ([*]) and the kernel reports idle."""
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
            const idle = !indicator || indicator.dataset.status === 'idle';
            return idle && prompts.length > 0 && !prompts.some((p) => p.textContent.includes('*'));
        }""",
        timeout=seconds * 1000,
    )


def settle(readout, image, seconds: float = 30) -> tuple[str, dict]:
    """The readout and image once the kernel is idle and both stay the same for a second."""
    page = readout.page
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        wait_until_idle(page, max(1, deadline - time.monotonic()))
        now = readout.inner_text(), image_state(image)
        if last is not None and (now[0], now[1]["sha256"]) == (last[0], last[1]["sha256"]):
            return now
        last = now
        page.wait_for_timeout(1000)
    raise CheckFailed(f"the explorer kept changing for {seconds:.0f} s")


def wait_for_change(readout, image, label_before: str, expected: str, what: str) -> tuple:
    """Wait for the readout to contain ``expected`` and differ from before, then settle."""
    try:
        expect(readout).not_to_have_text(label_before, timeout=30_000)
        expect(readout).to_contain_text(expected, timeout=30_000)
    except AssertionError:
        raise CheckFailed(
            f"{what}: the readout is {readout.inner_text()!r}, expected {expected!r}"
        ) from None
    label, picture = settle(readout, image)
    if "cannot" in label or expected not in label:
        raise CheckFailed(f"{what}: unexpected readout {label!r}")
    return label, picture


def check(
    page, base: str, token: str, out: Path, timeout: float, record: dict, lesson: Explorer
) -> None:
    """Drive JupyterLab in ``page``, filling ``record`` as it goes; raise CheckFailed."""
    page.goto(f"{base}/lab/tree/{lesson.notebook}?token={token}", timeout=60_000)
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    # The toolbar's execution indicator says "idle" before a kernel is connected, and Run All
    # then only clears the prompts; the status bar says "Python 3 (ipykernel) | Idle" once the
    # kernel is ready.
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(
            (item) => / [|] Idle$/.test(item.textContent) && !item.textContent.startsWith('No'))""",
        timeout=60_000,
    )
    for attempt in range(2):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()  # Run All Cells
        first_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first
        try:  # running or run; "[ ]:" means Run All went nowhere
            expect(first_prompt).to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=10_000)
            break
        except AssertionError:
            if attempt:
                raise CheckFailed("Run All Cells did not start the cells") from None

    cell = page.locator(".jp-CodeCell").filter(has=page.locator(".widget-slider"))
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    deadline = time.monotonic() + timeout
    while not cell.count():
        if errors.count():
            raise CheckFailed(f"a cell failed before the explorer:\n{errors.first.inner_text()}")
        if time.monotonic() > deadline:
            raise CheckFailed("the explorer did not appear (no .widget-slider)")
        time.sleep(0.5)
    cell = cell.first
    cell.scroll_into_view_if_needed()
    explorer = cell.locator(".widget-vbox").first
    readout = explorer.locator(f".{lesson.readout}", has_text=lesson.readout_text)
    readout.wait_for(timeout=60_000)
    wait_until_idle(page, max(5, deadline - time.monotonic()))  # the cells after it, too
    if errors.count():
        raise CheckFailed(f"a cell failed:\n{errors.first.inner_text()}")
    image = explorer.locator("img").first
    slider = explorer.locator(".widget-slider").filter(
        has=page.locator("label", has_text=re.compile(r"^coverage$"))
    )
    screenshots = record["screenshots"] = []

    def shoot(name: str) -> None:
        cell.scroll_into_view_if_needed()
        path = out / f"{len(screenshots) + 1:02d}_{name}.png"
        cell.screenshot(path=str(path))
        screenshots.append(str(path))

    label, picture = settle(readout, image)
    record.update(label_before=label, image_size=[picture["width"], picture["height"]])
    record.update(image_src_before=picture["src"], image_sha256=[picture["sha256"]])
    shoot("before")
    if lesson.first_text not in label:
        raise CheckFailed(f"unexpected first readout {label!r}")

    handle = slider.locator(".noUi-handle").first
    handle.focus()
    for _ in range(SLIDER_STEPS):
        handle.press("ArrowRight")
    target = slider.locator(".widget-readout").inner_text().strip()  # what the slider shows
    expected = lesson.after_slider.format(target=target)
    label, moved = wait_for_change(readout, image, label, expected, "slider")
    record.update(slider_readout=target, label_after_slider=label)
    record["image_sha256"].append(moved["sha256"])
    shoot("after_slider")

    kind = explorer.locator(".widget-dropdown").filter(
        has=page.locator("label", has_text=re.compile(rf"^{lesson.kind_label}$"))
    )
    kind.locator("select").select_option(lesson.new_kind)
    label, boxed = wait_for_change(readout, image, label, expected, lesson.new_kind)
    record["label_after_kind"] = label
    record["image_sha256"].append(boxed["sha256"])
    shoot(f"after_kind_{lesson.new_kind}")
    page.screenshot(path=str(out / "page.png"))
    screenshots.append(str(out / "page.png"))

    hashes = record["image_sha256"]
    record["image_changed"] = hashes[0] != hashes[1] and hashes[1] != hashes[2]
    if not record["image_changed"]:
        raise CheckFailed("the readout changed but the image did not")
    if record["label_after_slider"] == record["label_before"]:
        raise CheckFailed("the slider moved but the readout stayed the same")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", choices=sorted(EXPLORERS), default="01")
    parser.add_argument("--out", type=Path, default=Path("/tmp/widget_check"))
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="browser executable")
    parser.add_argument("--timeout", type=float, default=170, help="seconds for the whole run")
    args = parser.parse_args(argv)
    if not shutil.which(args.chromium):
        parser.error(f"no Chromium at {args.chromium}: apt-get install -y chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in [
        *args.out.glob("[0-9][0-9]_*.png"),
        args.out / "page.png",
        args.out / "failure.png",
    ]:
        stale.unlink(missing_ok=True)  # screenshots of an earlier run
    start = time.monotonic()

    def out_of_time(*_):
        raise TimeoutError(f"the check took more than {args.timeout:.0f} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(args.timeout))

    summary: dict = {"ok": False}
    port, token = free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    log = args.out / "jupyterlab.log"
    with tempfile.TemporaryDirectory(prefix="widget_check_") as work:
        server = start_lab(Path(work), port, token, log)
        try:
            wait_for_lab(server, base, token, log, 60)
            with sync_playwright() as playwright:
                context = playwright.chromium.launch_persistent_context(
                    str(Path(work) / "chromium-profile"),  # a fresh user-data-dir
                    executable_path=args.chromium,
                    headless=True,
                    args=CHROMIUM_FLAGS,
                    viewport={"width": 1400, "height": 1000},
                )
                try:
                    page = context.new_page()
                    page.set_default_timeout(30_000)
                    try:
                        remaining = args.timeout - (time.monotonic() - start) - 20
                        lesson = EXPLORERS[args.lesson]
                        check(page, base, token, args.out, remaining, summary, lesson)
                        summary["ok"] = True
                    except (CheckFailed, PlaywrightError, TimeoutError) as error:
                        summary["error"] = f"{type(error).__name__}: {error}"
                        failure = args.out / "failure.png"
                        try:
                            page.screenshot(path=str(failure), timeout=5_000)
                            summary.setdefault("screenshots", []).append(str(failure))
                        except Exception:  # best effort: the error itself is reported
                            pass
                finally:
                    context.close()
        except (CheckFailed, PlaywrightError, TimeoutError) as error:
            summary["error"] = f"{type(error).__name__}: {error}"
        finally:
            signal.alarm(0)
            stop_lab(server)
    summary["seconds"] = round(time.monotonic() - start, 1)
    summary["jupyterlab_log"] = str(log)
    first = ["ok", "error", "label_before", "label_after_slider", "label_after_kind"]
    first += ["slider_readout", "image_changed", "seconds"]
    order = {key: index for index, key in enumerate(first)}
    print(
        json.dumps(dict(sorted(summary.items(), key=lambda item: order.get(item[0], 99))), indent=2)
    )
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
