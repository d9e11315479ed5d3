"""Predict, then reveal: the class's guesses on one number line beside the measured value and the theory's band."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from .style import PREDICTION_COLOR, SEQUENCE, layout

MEASURED_COLOR = SEQUENCE[1]


def guesses_figure(guesses: Sequence[float], measured: float, expected: float | None, band: tuple | None,
                   unit: str, lo: float, hi: float, presentation: bool = False, log_x: bool = False) -> go.Figure:
    """Each guess a marker on the axis [lo, hi] (lower row), the measurement a large diamond (upper row), the
    prediction a line at `expected` with its tolerance `band` (low, high) shaded (None: the line alone)."""
    fig = go.Figure()
    size = 18 if presentation else 13
    if expected is not None and math.isfinite(expected):
        if band is not None and band[1] > band[0]:
            fig.add_vrect(x0=band[0], x1=band[1], fillcolor=PREDICTION_COLOR, opacity=0.1, line_width=0,
                          layer="below")
        fig.add_vline(x=expected, line_dash="dash", line_color=PREDICTION_COLOR, annotation_text="theory",
                      annotation_position="bottom right")
    if guesses:
        fig.add_trace(go.Scatter(x=list(guesses), y=[-0.4] * len(guesses), mode="markers", name="guesses",
                                 marker={"size": size, "color": SEQUENCE[0], "opacity": 0.7, "line": {"width": 1,
                                                                                                    "color": "white"}},
                                 hovertemplate="guess %{x:.3g}<extra></extra>"))
    if math.isfinite(measured):
        fig.add_trace(go.Scatter(x=[measured], y=[0.3], mode="markers+text", name="measured",
                                 text=[f"measured {measured:.3g}"], textposition="top center", cliponaxis=False,
                                 textfont={"size": 22 if presentation else 14, "color": MEASURED_COLOR},
                                 marker={"size": size + 8, "symbol": "diamond", "color": MEASURED_COLOR},
                                 hovertemplate="measured %{x:.3g}<extra></extra>"))
    fig.update_yaxes(visible=False, range=[-1, 1.2])
    fig.update_xaxes(range=[math.log10(lo), math.log10(hi)] if log_x else [lo, hi], showgrid=True)
    return layout(fig, "Your guesses and the measurement", unit, "", presentation, log_x=log_x,
                  height=300 if presentation else 220)
