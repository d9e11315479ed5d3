"""The app in a real browser: Playwright drives Debian's Chromium against `streamlit run app.py`.

A module fixture starts the server on a free localhost port with an empty store (LEARNMECH_HOME in a
temp folder) and stops it afterwards. Readiness follows Streamlit's own e2e tests: poll
/_stcore/health, then wait for the app's script state to be `notRunning`. Screenshots of each page go
to `test-artifacts/` (git-ignored). Skipped, with the reason, only when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from learnmech_core.plots.render import FLAGS, chromium_path

CHROMIUM = chromium_path()  # /usr/bin/chromium unless LEARNMECH_CHROMIUM names another
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="browser tests need Debian's Chromium at /usr/bin/chromium "
                                       "(apt-get install chromium); scripts/test.sh installs it when run as root")

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
PAGES = {"home": "", "phenomena": "phenomena", "explore": "explore", "your_data": "your_data",
         "spectra": "spectra", "compare": "compare", "runs": "runs"}
READY = "[data-testid='stApp'][data-test-script-state='notRunning']"
EXCEPTION = "[data-testid='stException']"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(script: str, env: dict, log_path: Path, *args: str):
    """`streamlit run script` on a free localhost port, its own process group; yields the URL once
    /_stcore/health answers ok (RuntimeError, with the log's tail, when it exits or takes 180 s). On exit the
    server and its children (a forkserver, training workers) get SIGTERM, then SIGKILL after 30 s."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", *args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 180
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"streamlit exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
                with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
                if time.time() > deadline:
                    raise RuntimeError(f"streamlit did not become healthy in 180 s: {log_path.read_text()[-2000:]}")
                time.sleep(0.5)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # the server and only its own children
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("learnmech_home")
    env = {**os.environ, "LEARNMECH_HOME": str(home), "LEARNMECH_PROFILE": "local"}
    with streamlit_server("app.py", env, home / "server.log") as url:
        yield {"url": url, "home": home}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()


def open_ready(page, url: str, timeout_ms: int = 120_000) -> None:
    page.goto(url)
    page.wait_for_selector(READY, timeout=timeout_ms)
    page.wait_for_selector("h1", timeout=timeout_ms)
    page.wait_for_timeout(500)  # let a rerun that a first render may trigger start ...
    page.wait_for_selector(READY, timeout=timeout_ms)  # ... and finish


def shot(page, name: str) -> None:
    """Screenshot of the whole page (Streamlit scrolls inside its main block, so grow the viewport)."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                           " return m ? m.scrollHeight : document.body.scrollHeight; }")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 8000))})
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_loads_without_exception(server, page, name):
    open_ready(page, f"{server['url']}/{PAGES[name]}")
    shot(page, name)
    assert page.locator(EXCEPTION).count() == 0
    assert page.locator("h1").count() == 1
    assert page.get_by_text("Unexpected problem").count() == 0


def test_tiny_run_on_explore_shows_a_plotly_chart(server, page):
    query = ("model.width=8&model.depth=1&data.name=moons&data.n_train=64&data.n_test=16&optim.steps=10"
             "&every=5")
    open_ready(page, f"{server['url']}/explore?{query}")
    page.locator(".st-key-run button").click()
    page.wait_for_selector("[data-testid='stPlotlyChart'] .js-plotly-plot", timeout=120_000)
    assert page.locator(EXCEPTION).count() == 0
    page.get_by_text("finished 1 of 1 runs").wait_for(timeout=180_000)
    page.wait_for_selector(READY, timeout=60_000)
    shot(page, "explore_after_run")
    assert page.locator("[data-testid='stPlotlyChart']").count() >= 3  # loss, accuracy, sharpness
    assert page.locator(EXCEPTION).count() == 0


def test_shareable_link_restores_the_view(server, page, browser):
    from playwright.sync_api import expect

    open_ready(page, f"{server['url']}/explore")
    width = page.get_by_label("Width", exact=True)
    width.fill("24")
    width.press("Enter")
    page.wait_for_url(lambda u: "model.width=24" in u, timeout=30_000)
    page.get_by_label("Learning rate", exact=True).fill("0.3")
    page.get_by_label("Learning rate", exact=True).press("Enter")
    page.wait_for_url(lambda u: "optim.lr=0.3" in u, timeout=30_000)
    link = page.url
    other = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    try:
        open_ready(other, link)
        expect(other.get_by_label("Width", exact=True)).to_have_value("24", timeout=30_000)
        expect(other.get_by_label("Learning rate", exact=True)).to_have_value("0.3", timeout=30_000)
        shot(other, "explore_from_link")
        assert other.locator(EXCEPTION).count() == 0
    finally:
        other.context.close()


def test_presentation_mode_link(server, page):
    open_ready(page, f"{server['url']}/?present=true")
    shot(page, "home_presentation")
    assert page.locator(EXCEPTION).count() == 0


def test_uploaded_csv_tested_in_a_phenomenon(server, page, tmp_path):
    rng = np.random.default_rng(0)
    rows = ["a,b,c,label"] + [f"{x[0]:.4f},{x[1]:.4f},{x[2]:.4f},{i % 2}"
                              for i, x in enumerate(rng.normal(size=(60, 3)) + np.arange(60)[:, None] % 2 * 3)]
    csv = tmp_path / "blobs.csv"
    csv.write_text("\n".join(rows) + "\n")
    open_ready(page, f"{server['url']}/your_data")
    page.locator("input[type='file']").set_input_files(str(csv))
    page.locator(".st-key-use button").click()
    page.get_by_text("Test a phenomenon on it").click()
    page.wait_for_url(lambda u: "/phenomena" in u and "upload" in u, timeout=60_000)
    page.wait_for_selector(READY, timeout=60_000)
    page.get_by_text("your data: blobs.csv (60×3)").first.wait_for(timeout=60_000)  # chosen in the dataset picker
    page.locator(".st-key-size button", has_text="tiny").click()
    page.wait_for_url(lambda u: "size=tiny" in u, timeout=30_000)
    page.wait_for_selector(READY, timeout=60_000)
    page.locator(".st-key-run button").click()
    page.get_by_text("Verdict per run").wait_for(timeout=240_000)
    page.wait_for_selector(READY, timeout=60_000)
    shot(page, "phenomena_on_uploaded_data")
    assert page.locator(EXCEPTION).count() == 0
    assert page.locator("[data-testid='stPlotlyChart']").count() >= 1
