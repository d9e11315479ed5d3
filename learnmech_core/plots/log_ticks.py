"""Readable tick labels on log axes: full numbers at 1-2-5 steps (decades only over wide ranges).

Plotly labels the minor ticks of a log axis spanning less than a few decades with bare digits
("2 5 0.1 2 5 1"), which reads as nonsense on a small chart; these ticks carry whole numbers.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go


def log_tick_values(values) -> list[float]:
    """1-2-5 steps covering the positive finite values (decades alone beyond four decades)."""
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a) & (a > 0)]
    if a.size == 0:
        return []
    lo, hi = math.floor(math.log10(a.min())), math.ceil(math.log10(a.max()))
    mantissas = (1,) if hi - lo > 4 else (1, 2, 5)
    ticks = [m * 10.0**d for d in range(lo, hi + 1) for m in mantissas]
    inside = [t for t in ticks if a.min() / 1.5 <= t <= a.max() * 1.5]
    return inside if len(inside) >= 2 else ticks


def tidy_log_axis(fig: go.Figure, values, axis: str = "y", **selector) -> go.Figure:
    """Put `log_tick_values` of the values on a log axis; `selector` as for update_xaxes (row, col)."""
    ticks = log_tick_values(values)
    if ticks:
        (fig.update_yaxes if axis == "y" else fig.update_xaxes)(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks],
                                                                 **selector)
    return fig
