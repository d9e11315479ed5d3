"""The training path drawn on the loss surface of its own PCA plane (Li et al. 2018, figure 9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .spectra import landscape_2d_figure


def trajectory_figure(surface: pd.DataFrame, path: pd.DataFrame, explained: np.ndarray, presentation: bool = False,
                      height: int | None = None) -> go.Figure:
    """Contours of log10 loss at w_final + alpha d1 + beta d2, the projected path on top (hover: step).

    `surface`: alpha, beta, loss; `path`: step, alpha, beta (from `TrajectoryPCA.path()`); `explained`:
    the two directions' explained-variance ratios, shown in the axis titles.
    """
    x_title = f"PC1 ({explained[0]:.1%} of the path's variance)"
    y_title = f"PC2 ({explained[1]:.1%})"
    fig = landscape_2d_figure(surface, "contour", presentation, x_title=x_title, y_title=y_title,
                              title="Which way did training go through the loss landscape?",
                              height=height or (640 if presentation else 520))
    width = 4 if presentation else 2.5
    fig.add_trace(go.Scatter(x=path["alpha"], y=path["beta"], mode="lines+markers", name="training path (projected)",
                             line={"color": "#d62728", "width": width}, marker={"size": 6 if presentation else 4},
                             customdata=path["step"], hovertemplate="step %{customdata}<br>α=%{x:.3g}<br>β=%{y:.3g}"
                             "<extra></extra>"))
    fig.add_trace(go.Scatter(x=path["alpha"].iloc[:1], y=path["beta"].iloc[:1], mode="markers", name="initial weights",
                             marker={"symbol": "circle", "size": 12, "color": "#2ca02c",
                                     "line": {"width": 2, "color": "black"}}))
    fig.update_layout(legend={"orientation": "h", "y": -0.2})
    fig.update_yaxes(scaleanchor="x", scaleratio=1)  # distances in weight space read the same on both axes
    return fig
