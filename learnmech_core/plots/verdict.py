"""The seeds of a verdict at a glance: each seed's measured number against the band its criterion allows."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from .style import PREDICTION_COLOR, layout

HOLDS, FAILS = "#2ca02c", "#d62728"


def seed_strip(seeds: list[int], values: list[float | None], passed: list[bool | None], bounds: tuple[float, float],
               quantity: str, criterion: str, presentation: bool = False,
               whole: list[bool | None] | None = None) -> go.Figure:
    """One marker per seed over the shaded band [lo, hi] of the headline's criterion: its colour says whether the
    headline held on that seed (green holds, red fails), its shape whether the whole claim did (`whole`: a dot
    when every clause held on that seed, a cross when one failed; dots throughout when `whole` is None).

    `bounds` may be infinite on one side (a one-sided criterion): the band then runs to the plot's edge.
    """
    finite = [v for v in values if v is not None and math.isfinite(v)]
    lo, hi = bounds
    edges = [b for b in (lo, hi) if math.isfinite(b)]
    span = finite + edges
    pad = 0.25 * (max(span) - min(span)) if len(span) > 1 and max(span) > min(span) else 1.0
    y0 = lo if math.isfinite(lo) else min(span, default=0.0) - pad
    y1 = hi if math.isfinite(hi) else max(span, default=1.0) + pad
    fig = go.Figure()
    fig.add_hrect(y0=y0, y1=y1, fillcolor=HOLDS, opacity=0.12, line_width=0)
    for b in edges:
        fig.add_hline(y=b, line={"color": PREDICTION_COLOR, "dash": "dash", "width": 1})
    whole = list(whole) if whole is not None else [None] * len(seeds)
    words = {True: "every clause holds", False: "a clause fails", None: ""}
    fig.add_trace(go.Scatter(
        x=[str(s) for s in seeds], y=[None if v is None else v for v in values], mode="markers",
        marker={"size": 16 if presentation else 12,
                "color": [HOLDS if p else FAILS if p is False else "#7f7f7f" for p in passed],
                "symbol": ["x" if w is False else "circle" for w in whole]},
        customdata=[words[w] for w in whole],
        hovertemplate="seed %{x}: %{y:.4g}<br>%{customdata}<extra></extra>", name=quantity, showlegend=False))
    if any(w is not None for w in whole):  # the two shapes explained in the legend
        for symbol, text in (("circle", "every clause holds on this seed"), ("x", "a clause fails on this seed")):
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=text,
                                     marker={"symbol": symbol, "color": "#555555", "size": 10}))
    layout(fig, f"The headline on each seed ({criterion})", "seed", quantity, presentation,
           height=300 if not presentation else 420)
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=[min(span + [y0]) - 0.1 * pad, max(span + [y1]) + 0.1 * pad] if span else None)
    return fig
