"""Figures of a checkpoint's weight spectra: alpha per layer, and one layer's ESD beside its rand-ESD."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .log_ticks import tidy_log_axis
from .spectra import _log_bins, esd_figure
from .style import PREDICTION_COLOR, SEQUENCE, layout, log_axis_annotations

WELL_TRAINED = (2.0, 6.0)  # WeightWatcher's range of alpha for well-trained layers (Martin & Mahoney 2021)


def alpha_by_layer_figure(table: pd.DataFrame, presentation: bool = False, height: int | None = None) -> go.Figure:
    """Power-law alpha of every layer in file order, with WeightWatcher's 2-6 band; hover shows weighted alpha."""
    fig = go.Figure()
    fig.add_hrect(y0=WELL_TRAINED[0], y1=WELL_TRAINED[1], fillcolor="#2ca02c", opacity=0.08, line_width=0,
                  annotation_text="2 ≤ α ≤ 6: well trained (WeightWatcher)", annotation_position="top left")
    fig.add_trace(go.Scatter(x=table["layer"], y=table["alpha"], mode="markers+lines", name="α",
                             marker={"size": 12 if presentation else 9, "color": SEQUENCE[0]},
                             customdata=np.stack([table["alpha_weighted"], table["lambda_max"]], axis=1)
                             if len(table) else None,
                             hovertemplate="%{x}<br>α = %{y:.2f}<br>weighted α = %{customdata[0]:.2f}<br>"
                                           "λ_max = %{customdata[1]:.3g}<extra></extra>"))
    fig = layout(fig, "How heavy-tailed is each layer? (smaller α = heavier tail)", "layer",
                 "power-law exponent α", presentation=presentation, height=height)
    fig.update_xaxes(tickangle=-30)
    return fig


def checkpoint_esd_figure(spectrum, presentation: bool = False, height: int | None = None) -> go.Figure:
    """A layer's ESD with its MP and power-law fits (`plots.spectra.esd_figure`) and the rand-ESD outline."""
    fig = esd_figure(spectrum.eigenvalues, spectrum.layer, spectrum.mp, spectrum.power_law, presentation,
                     height=height)
    rand = spectrum.rand_eigenvalues[spectrum.rand_eigenvalues > 0]
    if rand.size >= 2:
        counts, edges = np.histogram(rand, bins=_log_bins(rand, min(40, max(5, rand.size // 2))))
        density = np.where(counts > 0, counts / (rand.size * np.diff(edges)), np.nan)
        fig.add_trace(go.Scatter(x=edges, y=np.append(density, density[-1]), mode="lines", line_shape="hv",
                                 name="rand-ESD (entries permuted)",
                                 line={"color": "#7f7f7f", "width": 2, "dash": "dot"}))
        fig.add_vline(x=float(rand.max()), line_color="#7f7f7f", line_dash="dot",
                      annotation_text="largest rand-ESD λ", annotation_position="bottom right")
    fig.add_annotation(text=f"{int(np.sum(spectrum.eigenvalues > rand.max())) if rand.size else 0} eigenvalues above "
                            "the rand-ESD", xref="paper", yref="paper", x=0.99, y=0.99, showarrow=False,
                       font={"color": PREDICTION_COLOR})
    tidy_log_axis(fig, np.concatenate([spectrum.eigenvalues, rand]), axis="x")
    tidy_log_axis(fig, fig.data[0].y)
    return log_axis_annotations(fig)  # the rand-ESD line's label sits on the log x axis
