"""The house style: down-sampling that keeps what a curve shows, and log axes labelled at decades."""

import numpy as np
import plotly.graph_objects as go
import pytest

from learnmech_core.plots import runs as prun
from learnmech_core.plots.style import MAX_POINTS, downsample, layout, log_ticks, tick_text


@pytest.mark.parametrize("n", [MAX_POINTS + 1, MAX_POINTS + 2, 4_500, 2 * MAX_POINTS - 1, 2 * MAX_POINTS,
                               2 * MAX_POINTS + 1, 12_345, 300_000])
def test_a_period_two_oscillation_survives_downsampling(n):
    """Edge of stability: sharpness alternates step by step. Every stretch of the kept points must still
    swing over the whole amplitude (an even stride, as before, kept only one phase: a flat line)."""
    y = 1.0 + 0.1 * (-1.0) ** np.arange(n)
    idx = downsample(y)
    assert len(idx) <= MAX_POINTS
    assert idx[0] == 0 and idx[-1] == n - 1  # both endpoints
    assert np.all(np.diff(idx) > 0)
    kept = y[idx]
    windows = np.lib.stride_tricks.sliding_window_view(kept, 3)
    assert np.all(windows.max(axis=1) - windows.min(axis=1) == pytest.approx(0.2))


@pytest.mark.parametrize("n", [MAX_POINTS + k for k in range(1, 12)] + [7_777, 100_001])
def test_the_last_point_and_the_extremes_are_always_kept(n):
    y = np.cumsum(np.random.default_rng(n).normal(size=n))
    idx = downsample(y)
    assert idx[-1] == n - 1 and idx[0] == 0
    assert y[idx].max() == y.max() and y[idx].min() == y.min()
    assert len(idx) <= MAX_POINTS


def test_short_series_are_untouched_and_gaps_stay_gaps():
    assert list(downsample(np.arange(10.0))) == list(range(10))
    y = np.concatenate([np.full(5_000, np.nan), np.arange(5_000.0)])  # a run that logged nothing at first
    idx = downsample(y)
    assert np.isnan(y[idx]).any() and np.nanmax(y[idx]) == 4_999.0 and len(idx) <= MAX_POINTS


def test_curve_figures_downsample_by_value():
    from test_plots_runs import make_run

    steps = 3 * MAX_POINTS
    sharp = 20.0 + np.where(np.arange(steps + 1) % 2, 1.0, -1.0)
    run = make_run(steps=steps, extra={"sharpness": sharp})
    fig = prun.curves_figure([run], "sharpness")
    assert set(np.round(fig.data[0].y, 6)) == {19.0, 21.0}  # both phases of the oscillation are drawn
    assert fig.data[0].x[-1] == steps


def test_tick_text_writes_powers_outside_the_plain_range():
    assert [tick_text(v) for v in (1e-6, 2e-5, 0.001, 0.05, 1.0, 20.0, 5000.0, 1e4, 2e6)] == [
        "10⁻⁶", "2×10⁻⁵", "0.001", "0.05", "1", "20", "5000", "10⁴", "2×10⁶"]


def _log_figure(lo, hi, small=False):
    fig = go.Figure(go.Scatter(x=np.geomspace(lo, hi, 20), y=np.arange(20.0)))
    fig = layout(fig, "Does it?", "x", "y", log_x=True)
    return log_ticks(fig, small=small) if small else fig


def test_wide_log_axes_are_labelled_at_decades_only():
    axis = _log_figure(1e-8, 1e-2).layout.xaxis
    assert axis.tickmode == "array"
    exponents = np.log10(axis.tickvals)
    assert np.allclose(exponents, np.round(exponents))  # decades, no '2 3 4 ... 9' minor labels
    assert "10⁻⁶" in axis.ticktext


def test_short_log_axes_add_two_and_five():
    axis = _log_figure(10, 200).layout.xaxis
    assert {10.0, 20.0, 50.0, 100.0, 200.0} <= set(np.round(axis.tickvals, 9))
    assert not {30.0, 40.0, 60.0} & set(np.round(axis.tickvals, 9))
    card = _log_figure(10, 2000, small=True).layout.xaxis  # 2.3 decades: decades only on a card
    assert set(np.round(card.tickvals, 9)) >= {10.0, 100.0, 1000.0} and 20.0 not in card.tickvals


def test_shared_subplot_axes_carry_no_second_title():
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True)
    fig.add_trace(go.Scatter(x=[1, 2], y=[1, 2]), row=1, col=1)
    fig.add_trace(go.Scatter(x=[1, 2], y=[1, 2]), row=1, col=2)
    layout(fig, "Does it?", "x", "loss")
    assert fig.layout.yaxis.title.text == "loss" and not fig.layout.yaxis2.title.text


def test_markdown_math_becomes_plain_unicode_where_markdown_is_not_drawn():
    from learnmech_app.ui import plain

    assert plain("Does sharpness stop at $2/\\eta$?") == "Does sharpness stop at 2/η?"
    assert plain("$\\lambda_{\\max} \\le 2/\\eta$") == "λ_max ≤ 2/η"
    assert plain("$\\lVert W_{l+1}\\rVert^2 - \\lVert W_l\\rVert^2$") == "‖W_(l+1)‖² - ‖W_l‖²"
    assert plain("$\\lambda_0$, $B_\\mathrm{crit}$") == "λ₀, B_crit"
    assert plain("costs $ 5 and no math") == "costs $ 5 and no math"


def test_seed_strip_colours_the_headline_and_shapes_the_whole_claim():
    from learnmech_core.plots.verdict import FAILS, HOLDS, seed_strip

    fig = seed_strip([0, 1, 2], [1.0, 1.2, 0.99], [True, False, True], (0.9, 1.1), "ratio", "within 10% of 1",
                     whole=[True, False, False])
    seeds = fig.data[0]
    assert list(seeds.marker.color) == [HOLDS, FAILS, HOLDS]  # the headline inside / outside its band
    assert list(seeds.marker.symbol) == ["circle", "x", "x"]  # seed 2: headline in band, another clause failed
    assert list(seeds.customdata) == ["every clause holds", "a clause fails", "a clause fails"]
    assert [t.name for t in fig.data[1:]] == ["every clause holds on this seed", "a clause fails on this seed"]
    plain = seed_strip([0, 1], [1.0, 1.0], [True, True], (0.9, 1.1), "ratio", "within 10% of 1")
    assert len(plain.data) == 1 and list(plain.data[0].marker.symbol) == ["circle", "circle"]
