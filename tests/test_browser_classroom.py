"""The classroom in a real browser: the cold home page, readable shipped figures, Explore's teaching default,
and predict-then-reveal on a phenomenon.

Uses the server and browser fixtures of `test_browser` (a fresh `streamlit run app.py` with an empty store
for this module, Debian's Chromium through Playwright). The figure checks draw with plotly.js in the same
Chromium (`learnmech_core.plots.render`) and compare the boxes of the drawn texts.
"""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
from test_browser import CHROMIUM, EXCEPTION, READY, browser, open_ready, page, server, shot  # noqa: F401

from learnmech_core.cli_gallery import seed_keys
from learnmech_core.store import RunStore, gallery_root

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="browser tests need Debian's Chromium at "
                                                              "/usr/bin/chromium")
CARDS = gallery_root() / "cards"
VISIBLE = ("() => [...document.querySelectorAll('img.card-figure')]"
           ".filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0).length")


def card_names() -> list[str]:
    index = CARDS / "index.json"
    return sorted(json.loads(index.read_text())) if index.exists() else []


def test_cold_home_shows_every_card_figure(server, page):  # noqa: F811 -- first in the module: a cold server
    names = card_names()
    if not names:
        pytest.skip("the gallery has no card images (python -m learnmech_core gallery thumbnails)")
    page.goto(server["url"])
    page.wait_for_function(f"() => ({VISIBLE})() >= {len(names)}", timeout=120_000, polling="raf")
    shot(page, "classroom_home_cold")
    assert page.evaluate(VISIBLE) == len(names)
    assert page.get_by_text("No card image yet").count() == 0
    assert page.get_by_text("older than the gallery").count() == 0
    assert page.locator(EXCEPTION).count() == 0
    # the fresh server loads torch and the training pool after the cards are drawn; the sidebar then shows them
    page.get_by_text("Training now").wait_for(timeout=120_000)
    assert page.get_by_text("Device:").count() == 1
    assert page.locator(EXCEPTION).count() == 0


@pytest.fixture(scope="module")
def renderer(browser):  # noqa: F811 -- one Playwright per thread: draw in the module's browser
    from learnmech_core.plots.render import Renderer

    with Renderer(browser) as r:
        yield r


def test_the_overlap_check_can_fail(renderer):
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[1, 2, 3], mode="markers"))
    fig.add_annotation(x=2, y=2, text="one label here", showarrow=False)
    fig.add_annotation(x=2, y=2, text="another label", showarrow=False)
    fig.update_yaxes(title_text="a y title far too long to fit beside a plot only one hundred pixels high")
    problems = renderer.problems(fig, 300, 160)
    assert any("overlaps annotation" in p for p in problems)
    assert any("clipped" in p for p in problems)
    assert any("covers data points" in p for p in problems)


def test_a_label_that_fits_nowhere_is_moved_or_hidden_only_when_asked(renderer):
    # a vertical line's label wider than the plot on either side of the line, over a wall of markers
    xs = np.repeat(np.linspace(0, 10, 21), 9)
    ys = np.tile(np.linspace(0, 10, 9), 21)
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="markers", marker={"size": 10}))
    fig.add_vline(x=5, annotation_text="a label far too long to sit anywhere beside this line, on either side",
                  annotation_position="top right")
    kept = renderer.place_annotations(go.Figure(fig), 320, 240)
    assert kept.layout.annotations[0].visible is not False and renderer.problems(kept, 320, 240)
    dropped = renderer.place_annotations(go.Figure(fig), 320, 240, drop=True)
    assert dropped.layout.annotations[0].visible is False
    assert not [p for p in renderer.problems(dropped, 320, 240) if "annotation" in p]
    free = go.Figure(go.Scatter(x=[0, 10], y=[0, 0], mode="markers"))  # room above the points: moved, kept
    free.add_vline(x=5, annotation_text="short", annotation_position="bottom right")
    placed = renderer.place_annotations(free, 300, 200, drop=True)
    assert placed.layout.annotations[0].visible is not False
    assert not [p for p in renderer.problems(placed, 300, 200) if "annotation" in p]


def test_shipped_card_images_have_no_overlapping_or_clipped_labels(renderer):
    from learnmech_core.plots.render import layout_problems

    names = card_names()
    if not names:
        pytest.skip("the gallery has no card images")
    found = {n: layout_problems(renderer.svg_texts((CARDS / f"{n}.svg").read_text())) for n in names}
    assert not any(found.values()), {n: p for n, p in found.items() if p}


def test_gallery_figures_have_no_overlapping_or_clipped_labels_at_page_width(renderer):
    """Every phenomenon's figures from the gallery runs of its first seed (as the page draws them), at the
    width the Phenomena page gives them at 1440 px (980 px one to a row, 482 px two to a row). Labels may cross
    data (they have a light background)."""
    from learnmech_core import phenomena

    if not (gallery_root() / "verdicts.json").exists():
        pytest.skip("no gallery")
    g = RunStore(gallery_root(), readonly=True)
    found = {}
    for name, entry in json.loads((gallery_root() / "verdicts.json").read_text()).items():
        ph = phenomena.get(name)
        runs = [g.get(k) for k in seed_keys(entry)]  # the page draws the first seed's runs
        figs = ph.figures(runs, ph.verdict(runs), normalised=True, presentation=False)
        one_per_row = len(figs) == 1 or any(len(str(f.layout.title.text or "")) > 55 for f in figs)
        for i, fig in enumerate(figs):
            problems = [p for p in renderer.problems(fig, 980 if one_per_row else 482, fig.layout.height or 420)
                        if "covers data points" not in p]
            if problems:
                found[f"{name}[{i}]"] = problems
    assert not found, found


def test_explore_default_run_reaches_two_over_eta(server, page):  # noqa: F811
    """The first Run on Explore, untouched: sharpness first sits below 2/eta, then rises to it and hovers."""
    open_ready(page, f"{server['url']}/explore")
    page.locator(".st-key-run button").click()
    page.get_by_text("finished 1 of 1 runs").wait_for(timeout=240_000)
    page.wait_for_selector(READY, timeout=60_000)
    shot(page, "classroom_explore_default")
    assert page.locator(EXCEPTION).count() == 0
    store = RunStore(server["home"])
    listing = store.list()
    assert len(listing) == 1
    run = store.get(listing["key"].iloc[0])
    assert run.status == "ok" and run.spec.optim.name == "gd" and run.spec.optim.batch_size == 0
    h = run.history.dropna(subset=["sharpness"])
    ratio = h["sharpness"].to_numpy() * run.spec.optim.lr / 2.0
    steps = h["step"].to_numpy()
    first, second = ratio[(steps > 0) & (steps <= steps[-1] / 4)], ratio[steps >= steps[-1] / 2]
    assert first.min() < 0.92  # below the threshold early on (after the first step) ...
    assert abs(float(np.median(second)) - 1.0) <= 0.1  # ... then at 2/eta, within 10%, over the second half


def test_class_mode_asks_for_a_guess_then_reveals_it_beside_the_measurement(server, page):  # noqa: F811
    verdicts = gallery_root() / "verdicts.json"
    if not verdicts.exists():
        pytest.skip("no gallery")
    measured = json.loads(verdicts.read_text())["edge_of_stability"]["measured"]
    open_ready(page, f"{server['url']}/phenomena?phenomenon=edge_of_stability&class=true")
    assert page.get_by_text("Where will the sharpness stop").count() == 1
    assert page.get_by_text("Verdict per run").count() == 0  # nothing measured is shown before the guess
    assert page.locator("[data-testid='stPlotlyChart']").count() == 0
    slider = page.get_by_role("slider")
    slider.focus()
    for _ in range(6):  # 0.5 -> 0.8 in steps of 0.05
        slider.press("ArrowRight")
    page.wait_for_selector(READY, timeout=60_000)
    page.locator(".st-key-class_add_edge_of_stability button").click()
    page.get_by_text("Guesses so far: 0.8").wait_for(timeout=60_000)
    page.locator(".st-key-class_reveal_edge_of_stability button").click()
    page.get_by_text("Verdict per run").wait_for(timeout=120_000)
    page.wait_for_selector(READY, timeout=60_000)
    shot(page, "classroom_class_mode_revealed")
    assert page.get_by_text(f"Measured: {measured:.3g} · closest guess: 0.8").count() == 1
    chart = page.locator(".st-key-chart_class_edge_of_stability .js-plotly-plot")
    data = chart.evaluate("el => el.data.map(t => [t.name, Array.from(t.x)])")
    assert ["guesses", [0.8]] in [[n, [round(v, 6) for v in x]] for n, x in data]
    assert any(n == "measured" and abs(x[0] - measured) < 1e-9 for n, x in data)
    assert page.locator(EXCEPTION).count() == 0
