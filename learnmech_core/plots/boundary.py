"""The decision boundary of a 2-D classifier over its training points (TensorFlow Playground style).

Input: a `learnmech_core.boundary.Boundary` (the model's decision values on a grid) and the training
points. Two classes: a diverging map of the signed score (blue for class 0, orange for class 1, white
on the boundary) with its zero level drawn as a line; more classes: the predicted class in pale
colours. The points use the same colours, darker, with a white rim.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .style import SEQUENCE, layout

CLASS_COLORS = ("#1f77b4", "#ff7f0e") + SEQUENCE[2:]


def _pale(color: str, amount: float = 0.65) -> str:
    c = color.lstrip("#")
    r, g, b = (int(c[i:i + 2], 16) for i in (0, 2, 4))
    mix = lambda v: int(v + (255 - v) * amount)  # noqa: E731
    return f"rgb({mix(r)},{mix(g)},{mix(b)})"


def boundary_figure(boundary, x: np.ndarray, y: np.ndarray, title: str | None = None, presentation: bool = False,
                    height: int | None = None) -> go.Figure:
    """Decision values on the grid (heatmap) with the training points on top."""
    fig = go.Figure()
    k = int(boundary.n_classes)
    if k == 2:
        scale = [[0.0, _pale(CLASS_COLORS[0], 0.35)], [0.5, "#ffffff"], [1.0, _pale(CLASS_COLORS[1], 0.35)]]
        fig.add_trace(go.Heatmap(x=boundary.xs, y=boundary.ys, z=boundary.z, zmin=-1, zmax=1, colorscale=scale,
                                 showscale=False, hovertemplate="x₁=%{x:.2f}<br>x₂=%{y:.2f}<br>score=%{z:.2f}"
                                                                "<extra></extra>"))
        fig.add_trace(go.Contour(x=boundary.xs, y=boundary.ys, z=boundary.z, contours={"start": 0, "end": 0,
                                 "size": 1, "coloring": "none"}, line={"color": "#333333", "width": 2},
                                 showscale=False, hoverinfo="skip", name="decision boundary"))
    else:
        edges = np.linspace(0, 1, k + 1)
        scale = []
        for c in range(k):
            pale = _pale(CLASS_COLORS[c % len(CLASS_COLORS)])
            scale += [[float(edges[c]), pale], [float(edges[c + 1]), pale]]
        fig.add_trace(go.Heatmap(x=boundary.xs, y=boundary.ys, z=boundary.z, zmin=-0.5, zmax=k - 0.5,
                                 colorscale=scale, showscale=False,
                                 hovertemplate="x₁=%{x:.2f}<br>x₂=%{y:.2f}<br>class %{z:.0f}<extra></extra>"))
    x, y = np.asarray(x, dtype=float), np.asarray(y).astype(int)
    for c in range(k):
        pts = x[y == c]
        if not len(pts):
            continue
        fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name=f"class {c}",
                                 marker={"color": CLASS_COLORS[c % len(CLASS_COLORS)], "size": 9 if presentation else 6,
                                         "line": {"color": "white", "width": 1}}))
    layout(fig, title or f"Where does the network draw the boundary? (step {boundary.step})", "x₁", "x₂",
           presentation=presentation, height=height)
    # equal units on both axes, by shrinking the plotting area (not by widening the ranges past the grid)
    fig.update_xaxes(range=[float(boundary.xs[0]), float(boundary.xs[-1])], showgrid=False, constrain="domain")
    fig.update_yaxes(range=[float(boundary.ys[0]), float(boundary.ys[-1])], showgrid=False, scaleanchor="x",
                     scaleratio=1, constrain="domain")
    return fig
