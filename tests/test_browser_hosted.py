"""The hosted deployment in a real browser: the queue, Stop, steering η, the live decision boundary.

The server is started the way Streamlit Community Cloud starts it: from the repository's root with the
entrypoint `deploy/streamlit_cloud/streamlit_app.py`, the hosted profile switched on by a secret (a
secrets file, `LEARNMECH_PROFILE = "hosted"`, no environment variable), two training workers. Runs
train in worker processes. Screenshots go to `test-artifacts/hosted_*.png`.
"""

from __future__ import annotations

import contextlib
import os
import re
import time

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from test_browser import CHROMIUM, EXCEPTION, READY, browser, open_ready, shot, streamlit_server

from learnmech_core.store import RunStore

__all__ = ["browser"]  # the Chromium fixture of test_browser.py, used here too
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="browser tests need Debian's Chromium, /usr/bin/chromium")

LONG = 300_000  # ms: a shared 2-core machine can be slow
MOONS = "model.width=32&model.depth=2&data.name=moons&data.n_train=256&data.n_test=64&optim.lr=0.1"


@pytest.fixture(scope="module")
def hosted(tmp_path_factory):
    home = tmp_path_factory.mktemp("learnmech_hosted")
    secrets = home / "secrets.toml"
    secrets.write_text('LEARNMECH_PROFILE = "hosted"\nLEARNMECH_WORKERS = "2"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("LEARNMECH_PROFILE", "LEARNMECH_WORKERS")}
    env["LEARNMECH_HOME"] = str(home / "store")
    with streamlit_server("deploy/streamlit_cloud/streamlit_app.py", env, home / "server.log",
                          "--secrets.files", str(secrets)) as url:
        yield {"url": url, "store": home / "store"}


def session(browser, url: str):
    page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    open_ready(page, url, timeout_ms=LONG)
    return page


def progress_text(page) -> str:
    bars = page.locator("[data-testid='stMain'] [data-testid='stProgress']")
    return bars.first.inner_text() if bars.count() else ""


def wait_text(page, pattern: str, timeout_ms: int = LONG) -> str:
    """Wait until the main progress bar's text matches; returns it."""
    deadline = time.time() + timeout_ms / 1000
    while time.time() < deadline:
        text = progress_text(page)
        if re.search(pattern, text):
            return text
        page.wait_for_timeout(250)
    raise AssertionError(f"progress never matched {pattern!r}; last: {progress_text(page)!r}")


def plot_titles(page) -> list[str]:
    """Titles of the Plotly charts in the page, without their markup (a chart being redrawn can show twice)."""
    titles = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                           ".map(g => (g.layout && g.layout.title && g.layout.title.text) || '')")
    return [re.sub(r"<[^>]+>", "", t) for t in titles]


def test_the_hosted_profile_comes_from_the_secret(hosted, browser):
    page = session(browser, hosted["url"])
    # a fresh server's home page loads torch and the pool a moment after the cards; the sidebar then says them
    page.get_by_text("Training now").wait_for(timeout=LONG)
    sidebar = page.locator("[data-testid='stSidebar']").inner_text()
    assert "hosted profile: 2 runs train at once in worker processes" in sidebar
    assert page.locator(EXCEPTION).count() == 0
    page.context.close()


def test_three_sessions_one_waits_in_the_queue_and_stop_in_one_leaves_the_others(hosted, browser):
    long = f"{MOONS}&optim.steps=5000&every=10"
    a = session(browser, f"{hosted['url']}/explore?{long}&seed=1")
    b = session(browser, f"{hosted['url']}/explore?{long}&seed=2")
    c = session(browser, f"{hosted['url']}/explore?{MOONS}&optim.steps=300&every=10&seed=3")
    try:
        for page in (a, b):
            page.locator(".st-key-run button").click()
            wait_text(page, r"run 1 of 1: step \d+")
        c.locator(".st-key-run button").click()
        queued = wait_text(c, r"place 1 in the queue \(2 running\)")
        shot(c, "hosted_queued_session")
        a.locator(".st-key-explore_stop button").first.click()  # one visitor stops: the queued one gets the slot
        wait_text(a, r"finished 1 of 1 runs")
        wait_text(c, r"finished 1 of 1 runs")
        wait_text(b, r"finished 1 of 1 runs")
        for page in (a, b, c):
            page.wait_for_selector(READY, timeout=LONG)
            assert page.locator(EXCEPTION).count() == 0
        shot(b, "hosted_undisturbed_session")
    finally:
        for page in (a, b, c):
            page.context.close()
    assert "waiting for a free training slot" in queued
    runs = RunStore(hosted["store"]).list()
    by_seed = {int(s): st for s, st in zip(runs["seed"], runs["status"], strict=True)}
    assert by_seed == {2: "ok", 3: "ok"}  # b's run went on to its end, c's ran; a's (stopped) is not stored
    b_run = RunStore(hosted["store"]).get(runs.loc[runs["seed"] == 2, "key"].iloc[0])
    assert int(b_run.history["step"].iloc[-1]) == 5000


def test_a_learning_rate_changed_mid_run_is_recorded_in_the_history(hosted, browser):
    page = session(browser, f"{hosted['url']}/explore?{MOONS}&optim.steps=5000&every=20&seed=11")
    try:
        page.locator(".st-key-run button").click()
        wait_text(page, r"run 1 of 1: step \d+")
        page.locator(".st-key-explore_pause button").first.click()
        held = wait_text(page, r"\(paused\)")
        page.wait_for_timeout(1500)
        assert re.search(r"step \d+", progress_text(page)).group() == re.search(r"step \d+", held).group()
        box = page.get_by_label("New learning rate η", exact=True).first
        box.fill("0.15")
        box.press("Enter")
        page.locator(".st-key-explore_apply button").first.click()
        page.wait_for_timeout(1000)
        page.locator(".st-key-explore_resume button").first.click()
        wait_text(page, r"finished 1 of 1 runs")
        page.wait_for_selector(READY, timeout=LONG)
        page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].some(g => "
                               "(g.layout.annotations || []).some(a => (a.text || '').startsWith('η → 0.15')))",
                               timeout=60_000)
        shot(page, "hosted_lr_change")
        assert page.locator(EXCEPTION).count() == 0
    finally:
        page.context.close()
    store = RunStore(hosted["store"])
    runs = store.list()
    run = store.get(runs.loc[runs["seed"] == 11, "key"].iloc[0])
    ((step, lr),) = run.spec.optim.lr_changes
    assert lr == 0.15 and 0 < step < 5000
    h = run.history
    assert set(h.loc[h["step"] < step, "lr"]) == {0.1} and set(h.loc[h["step"] >= step, "lr"]) == {0.15}


def test_the_decision_boundary_updates_while_it_trains(hosted, browser):
    query = "model.width=64&model.depth=2&data.name=moons&data.n_train=256&data.n_test=64&optim.lr=0.1"
    page = session(browser, f"{hosted['url']}/explore?{query}&optim.steps=5000&every=10&seed=21&data.noise=0.2")
    boundary = "Where does the network draw the boundary?"
    steps, finished = [], False
    try:
        page.locator(".st-key-run button").click()
        deadline = time.time() + LONG / 1000
        while len(set(steps)) < 4 and time.time() < deadline:
            finished = progress_text(page).startswith("finished")
            titles = [t for t in plot_titles(page) if t.startswith(boundary)]
            if titles and not finished:
                steps.append(max(int(re.search(r"step (\d+)", t).group(1)) for t in titles))
            if finished:
                break
            page.wait_for_timeout(400)
        shot(page, "hosted_decision_boundary")
        assert page.locator(EXCEPTION).count() == 0
        if not finished:  # clean-up only: the run may finish before Stop is pressed (its button then goes)
            with contextlib.suppress(PlaywrightTimeout):
                page.locator(".st-key-explore_stop button").first.click(timeout=5_000)
    finally:
        page.context.close()
    drawn = sorted(set(steps))
    assert len(drawn) >= 2 and steps == sorted(steps), steps  # redrawn while training, moving forward
    assert drawn[-1] < 5000
