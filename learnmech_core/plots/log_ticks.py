"""Readable tick labels on log axes: decades only over two or more decades, 1-2-5 within fewer.

Plotly labels the minor ticks of a log axis spanning less than a few decades with bare digits
("2 5 0.1 2 5 1"), which reads as nonsense on a small chart.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def tidy_log_axis(fig: go.Figure, values, axis: str = "y", **selector) -> go.Figure:
    """Set the tick spacing of a log axis from the values it shows; `selector` as for update_xaxes (row, col)."""
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a) & (a > 0)]
    if a.size < 2:
        return fig
    dtick = 1 if a.max() / a.min() >= 100 else "D2"
    (fig.update_yaxes if axis == "y" else fig.update_xaxes)(dtick=dtick, **selector)
    return fig
