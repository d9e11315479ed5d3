"""muP's coordinate check, drawn as the `mup` package draws it: change of each layer's output against width."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .log_ticks import tidy_log_axis
from .style import SEQUENCE, layout

PANEL_TITLES = {"sp": "standard parametrisation (SP)", "ntk": "NTK parametrisation", "mup": "muP"}


def coord_check_figure(table: pd.DataFrame, step: int | None = None, presentation: bool = False,
                       height: int | None = None) -> go.Figure:
    """Per parametrisation a panel; per layer a line of mean |h_t - h_0| (over seeds, bars: min to max) against width.

    `table` has the columns of `coord_check.coord_check`; `step` defaults to the last one. Flat lines
    mean the layer's update size does not depend on width.
    """
    step = int(table["step"].max()) if step is None else int(step)
    at = table[table["step"] == step]
    params = list(dict.fromkeys(at["param"]))
    fig = make_subplots(rows=1, cols=max(len(params), 1), shared_yaxes=True,
                        subplot_titles=[PANEL_TITLES.get(p, p) for p in params])
    layers = list(dict.fromkeys(at["layer"]))
    roles = dict(zip(at["layer"], at["role"], strict=False))
    for col, param in enumerate(params, start=1):
        part = at[at["param"] == param]
        for i, layer in enumerate(layers):
            g = part[part["layer"] == layer].groupby("width")["change"].agg(["mean", "min", "max"]).reset_index()
            fig.add_trace(go.Scatter(
                x=g["width"], y=g["mean"], mode="lines+markers", name=f"{layer} ({roles[layer]})",
                legendgroup=layer, showlegend=col == 1, line={"color": SEQUENCE[i % len(SEQUENCE)], "width": 2.5},
                marker={"size": 8}, error_y={"type": "data", "symmetric": False, "array": g["max"] - g["mean"],
                                             "arrayminus": g["mean"] - g["min"], "thickness": 1},
                hovertemplate=f"{layer}<br>width %{{x}}<br>mean |Δh| %{{y:.3g}}<extra>{param}</extra>"), row=1, col=col)
    seeds = at["seed"].nunique()
    fig = layout(fig, f"Do the layers' updates keep their size as the network widens? (step {step}, {seeds} "
                 f"seed{'s' if seeds != 1 else ''})", presentation=presentation, log_y=True,
                 height=height or (600 if presentation else 460))
    widths = sorted(at["width"].unique())
    fig.update_xaxes(type="log", title_text="width (log)", tickvals=widths, ticktext=[str(w) for w in widths])
    fig.update_yaxes(title_text="mean |h_t − h_0| of the layer's output (log)", row=1, col=1)
    return tidy_log_axis(fig, at["change"])
