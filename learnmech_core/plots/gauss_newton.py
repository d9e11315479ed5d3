"""Top eigenvalues of the Hessian next to those of its Gauss-Newton part and its residual."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .log_ticks import tidy_log_axis
from .style import PREDICTION_COLOR, SEQUENCE, layout


def curvature_split_figure(table: pd.DataFrame, classes: int | None = None, presentation: bool = False,
                           height: int | None = None) -> go.Figure:
    """Eigenvalue against rank for H, G and |R| (table from `CurvatureSplit.table()`), log scale.

    With `classes` C, a line after rank C - 1 marks where the outliers of a C-class cross-entropy
    Hessian should end.
    """
    size = 11 if presentation else 8
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=table["rank"], y=table["hessian"], mode="markers+lines", name="Hessian H",
                             marker={"size": size, "color": SEQUENCE[0]}, line={"width": 1.5, "color": SEQUENCE[0]}))
    fig.add_trace(go.Scatter(x=table["rank"], y=table["gauss_newton"], mode="markers", name="Gauss-Newton G = JᵀH_ℓJ",
                             marker={"size": size + 4, "symbol": "diamond-open", "color": SEQUENCE[1],
                                     "line": {"width": 2}}))
    fig.add_trace(go.Scatter(x=table["rank"], y=np.abs(table["residual"]), mode="markers",
                             name="|residual R| = |H − G| (largest in magnitude)",
                             marker={"size": size, "symbol": "x", "color": "#7f7f7f"}))
    if classes:
        fig.add_vline(x=classes - 0.5, line_dash="dash", line_color=PREDICTION_COLOR,
                      annotation_text=f"C − 1 = {classes - 1} outliers above", annotation_position="top right")
    fig = layout(fig, "Do the Hessian's outliers come from the Gauss-Newton term?", "rank i",
                 "eigenvalue λ_i (log)", presentation=presentation, log_y=True, height=height)
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return tidy_log_axis(fig, np.concatenate([table["hessian"], table["gauss_newton"], np.abs(table["residual"])]))
