"""The explorers in a real browser: JupyterLab on 127.0.0.1 (a free port, a token) over a
scratch copy of the notebooks, headless Chromium (Debian's ``chromium``) driven by Playwright.

Every notebook runs top to bottom at ``AKIRA_SIZE=tiny`` (its runs go to a scratch
``AKIRA_RUNS_DIR``, or with ``AKIRA_BROWSER_RUNS_DIR`` set, to that folder with
``AKIRA_RESUME=1``, so the runs the notebook test left there are reopened, not trained again;
two notebooks run at a time), then its explorer (the box with the CSS class
``akira-explorer``) has controls changed one after another; after each change the explorer's
text must change and every image of its output must be a drawn figure, not a white or
titles-only PNG (what JupyterLab 4 showed when an explorer's figure was one pyplot tracked:
see ``akira_nb/explorers.py``).

Skipped with a reason when Chromium (``/usr/bin/chromium``, or ``AKIRA_CHROMIUM``) or Playwright
is missing, except in CI (``CI=true``), where that fails. Run it alone:
``python -m pytest tests/browser -q`` (about 3-6 minutes on 2 CPU cores).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = [
    "000_action_quanta",
    "013_differential_lr",
    "026_band_transformer",
    "033_spectral_band_attention",
    "grokking_attention_vs_waves",
]
CHROMIUM = os.environ.get("AKIRA_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").strip().lower() == "true"
AT_ONCE = 2  # notebooks running at the same time (2 CPU cores in CI)
RUN_TIMEOUT = 900  # s for one notebook, top to bottom (tiny: 1-2 min each)
CHANGE_TIMEOUT = 120  # s for an explorer to redraw after a change
CHANGES = 3  # the first two changeable controls, then the first again
# a drawn figure: this share of its pixels not white, and ink on most rows and columns (axes,
# ticks, labels); a white PNG has none, a titles-only one ink on a few rows at the top
MIN_INK, MIN_SPAN = 0.01, 0.6


def _require(ok: bool, why: str) -> None:
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{why}; CI=true, where the browser test must run", pytrace=False)
    pytest.skip(why)


def ink(src: str) -> tuple[float, float, float]:
    """Of a ``data:image/png;base64,...`` image: the share of its pixels that are not white,
    and the shares of its rows and of its columns that hold any such pixel."""
    from PIL import Image

    data = base64.b64decode(src.split(",", 1)[1])
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    dark = rgb.min(axis=2) < 230
    return float(dark.mean()), float(dark.any(axis=1).mean()), float(dark.any(axis=0).mean())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server over a scratch workspace (the notebooks copied, no outputs)."""

    def __init__(self, scratch: Path):
        self.root = scratch / "workspace"
        (self.root / "notebooks").mkdir(parents=True)
        for name in NOTEBOOKS:
            shutil.copy(REPO / "notebooks" / f"{name}.ipynb", self.root / "notebooks")
        settings = scratch / "settings" / "@jupyterlab"
        # every cell in the DOM (no windowing), no news or update pop-ups
        for ext, file, value in [
            ("notebook-extension", "tracker", {"windowingMode": "none"}),
            (
                "apputils-extension",
                "notification",
                {"fetchNews": "false", "checkForUpdates": False},
            ),
        ]:
            (settings / ext).mkdir(parents=True, exist_ok=True)
            (settings / ext / f"{file}.jupyterlab-settings").write_text(json.dumps(value))
        self.token = secrets.token_hex(16)
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # the kernels keep their inline backend
        reuse = os.environ.get("AKIRA_BROWSER_RUNS_DIR", "").strip()
        if reuse:  # reopen the notebook test's finished runs (tests/run_all.sh) instead of
            env["AKIRA_RESUME"] = "1"  # training them again: the explorers are under test here
        env.update(
            AKIRA_SIZE="tiny",
            AKIRA_RUNS_DIR=reuse or str(scratch / "runs"),
            OMP_NUM_THREADS="1",
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            JUPYTERLAB_SETTINGS_DIR=str(scratch / "settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(scratch / "lab-workspaces"),
            JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
        )
        self.log_path = scratch / "jupyterlab.log"
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                self.api("/api/status")
                break
            except (OSError, urllib.error.URLError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"JupyterLab did not start:\n{self.log_tail()}") from None
                time.sleep(0.5)

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(
            self.base + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=20) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def session(self, name: str) -> dict | None:
        return next(
            (s for s in self.api("/api/sessions") if s["path"].endswith(f"{name}.ipynb")), None
        )

    def kernel_state(self, name: str) -> str | None:
        s = self.session(name)
        return (
            None if s is None else self.api(f"/api/kernels/{s['kernel']['id']}")["execution_state"]
        )

    def shutdown(self, name: str) -> None:
        s = self.session(name)
        if s is not None:
            self.api(f"/api/sessions/{s['id']}", method="DELETE")

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _require(
        Path(CHROMIUM).is_file(),
        f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
    )
    try:
        import playwright  # noqa: F401
    except ImportError:
        _require(False, "playwright is not installed (pip install -r requirements-dev.txt)")
    server = Lab(tmp_path_factory.mktemp("browser"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    chromium = pw.chromium.launch(executable_path=CHROMIUM, args=args)
    yield chromium
    chromium.close()
    pw.stop()


class Notebooks:
    """Starts each notebook's run (Run > Run All Cells in its own page), at most AT_ONCE
    running: a test starts its notebook and the next one, and closes its own when done."""

    def __init__(self, lab: Lab, browser):
        self.lab, self.browser, self.pages = lab, browser, {}

    def start(self, name: str) -> None:
        if name in self.pages:
            return
        page = self.browser.new_page(viewport={"width": 1500, "height": 1000})
        page.set_default_timeout(60_000)
        # a workspace of its own, reset: only this notebook in the page
        page.goto(
            f"{self.lab.base}/lab/workspaces/{name.replace('_', '-')}/tree/notebooks/"
            f"{name}.ipynb?reset&token={self.lab.token}"
        )
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
        deadline = time.monotonic() + 120
        while self.lab.kernel_state(name) != "idle":
            assert time.monotonic() < deadline, f"{name}: the kernel did not start"
            time.sleep(0.5)
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
        self.pages[name] = page

    def wait(self, name: str):
        """The page once every code cell ran; fails with the last output when one raised."""
        page = self.pages[name]
        deadline = time.monotonic() + RUN_TIMEOUT
        prompts: list[str] = []
        while time.monotonic() < deadline:
            prompts = page.eval_on_selector_all(
                ".jp-CodeCell .jp-InputPrompt", "els => els.map(e => e.innerText.trim())"
            )
            done = [bool(re.fullmatch(r"\[\d+\]:", p)) for p in prompts]
            if prompts and all(done):
                return page
            if done and any(done) and not any("*" in p for p in prompts):
                ran = page.locator(".jp-CodeCell").nth(sum(done) - 1)
                tail = ran.locator(".jp-OutputArea").inner_text()[-3000:]
                pytest.fail(f"{name}: a cell raised; its output ends with:\n{tail}")
            time.sleep(2)
        pytest.fail(f"{name}: not done in {RUN_TIMEOUT} s; prompts {prompts}")

    def close(self, name: str) -> None:
        page = self.pages.pop(name, None)
        self.lab.shutdown(name)
        if page is not None:
            page.close()


@pytest.fixture(scope="module")
def notebooks(lab, browser):
    nbs = Notebooks(lab, browser)
    yield nbs
    for name in list(nbs.pages):
        nbs.close(name)


def _view(output) -> tuple[str, list[str]]:
    """The explorer output's text and the src of each of its images."""
    return output.inner_text(), output.locator("img").evaluate_all("els => els.map(e => e.src)")


def _blank(srcs: list[str]) -> list[str]:
    """A description of every image that is not a drawn figure."""
    bad = []
    for i, src in enumerate(srcs):
        share, rows, cols = ink(src)
        if share < MIN_INK or rows < MIN_SPAN or cols < MIN_SPAN:
            bad.append(f"image {i}: {share:.2%} ink, on {rows:.0%} of rows, {cols:.0%} of columns")
    return bad


def _controls(box) -> list:
    """The explorer's controls that can take another value: dropdowns with two options or
    more, then sliders, in page order."""
    found = []
    selects = box.locator("select")
    for i in range(selects.count()):
        if selects.nth(i).locator("option").count() >= 2:
            found.append(selects.nth(i))
    handles = box.locator(".noUi-handle")
    found += [handles.nth(i) for i in range(handles.count())]
    return found


def _change(control) -> str:
    """Give ``control`` another value; returns what was done."""
    if control.evaluate("e => e.tagName") == "SELECT":
        n = control.locator("option").count()
        index = (control.evaluate("e => e.selectedIndex") + 1) % n
        control.select_option(index=index)
        return f"dropdown -> option {index}"
    before = control.get_attribute("aria-valuenow")
    control.focus()
    control.press("Home")
    if control.get_attribute("aria-valuenow") == before:  # already at the start
        control.press("End")
    return f"slider {before} -> {control.get_attribute('aria-valuenow')}"


def _redrawn(lab: Lab, name: str, output, before: str) -> tuple[str, list[str]]:
    """The explorer's view once its text changed, the kernel is idle and the view stayed the
    same for two polls (the callback prints, then displays its figure)."""
    deadline = time.monotonic() + CHANGE_TIMEOUT
    last, same = None, 0
    while time.monotonic() < deadline:
        text, srcs = _view(output)
        if text != before and srcs and lab.kernel_state(name) == "idle":
            same = same + 1 if (text, srcs) == last else 0
            if same >= 2:
                return text, srcs
            last = (text, srcs)
        time.sleep(0.5)
    text, srcs = _view(output)
    pytest.fail(
        f"{name}: the explorer did not redraw in {CHANGE_TIMEOUT} s (text changed: "
        f"{text != before}, {len(srcs)} images); its output:\n{text[-2000:]}"
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_explorer_redraws_its_text_and_figures_after_every_change(name, lab, notebooks):
    notebooks.start(name)
    following = NOTEBOOKS[NOTEBOOKS.index(name) + 1 : NOTEBOOKS.index(name) + AT_ONCE]
    for other in following:  # the next one runs while this one is checked
        notebooks.start(other)
    page = notebooks.wait(name)
    try:
        boxes = page.locator(".akira-explorer")
        assert boxes.count() == 1, f"{name}: {boxes.count()} explorers (CSS akira-explorer)"
        box = boxes.first
        box.scroll_into_view_if_needed()
        output = box.locator(".widget-output")
        text, srcs = _view(output)
        assert srcs and not _blank(srcs), f"{name}: first view {_blank(srcs)}\n{text}"
        controls = _controls(box)
        assert len(controls) >= 2, f"{name}: {len(controls)} controls can change"
        for step in range(CHANGES):
            control = controls[[0, 1, 0][step]]
            done = _change(control)
            new_text, srcs = _redrawn(lab, name, output, text)
            assert "Traceback" not in new_text and not new_text.startswith("error:"), new_text
            bad = _blank(srcs)
            assert not bad, f"{name}, change {step + 1} ({done}): {bad}\n{new_text[:500]}"
            text = new_text
    finally:
        notebooks.close(name)
