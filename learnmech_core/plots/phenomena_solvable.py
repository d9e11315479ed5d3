"""Figures of the solvable-settings and limits phenomena (Saxe, eigenlearning, lazy vs rich, muP, conservation).

Every figure draws the theory as a black reference (closed form, predicted curve, predicted slope), has a
question or claim as its title, labelled axes and log scales where the quantity spans decades. Runs keep
one colour per architecture and one dash per dataset; where a figure sweeps something else (modes,
widths, parametrisations) that is said in the legend, with panels or family colours as noted.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import PREDICTION_COLOR, arch_color, dataset_dash, downsample, family_color, layout, spec_hover


def _ref(x, y, name, dash="dash", showlegend=True, **kw) -> go.Scatter:
    """A black prediction trace."""
    return go.Scatter(x=x, y=y, mode="lines", name=name, line={"color": PREDICTION_COLOR, "dash": dash, "width": 2},
                      hoverinfo="skip", showlegend=showlegend, **kw)


def _loglog_ref(x, y, slope: float):
    """Points of a line of the given log-log slope through the geometric mean of (x, y)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if not ok.any():
        return np.array([]), np.array([])
    lx, ly = np.log(x[ok]), np.log(y[ok])
    grid = np.array([lx.min(), lx.max()])
    return np.exp(grid), np.exp(ly.mean() + slope * (grid - lx.mean()))


# ----------------------------------------------------------------------------------------------------
# Saxe learning dynamics


def saxe_modes_figure(runs, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Mode strengths over time (raw, with the closed form) or u/s over rescaled time (one curve per depth)."""
    from ..phenomena import saxe_dynamics as sd
    from ..phenomena import saxe_dynamics_theory as theory

    fig = go.Figure()
    depths = sorted({r.spec.model.depth for r in runs})
    for run in runs:
        t, u = sd.mode_curves(run)
        if not len(t):
            continue
        s = sd.singular_values(run.spec)
        depth = run.spec.model.depth
        color = family_color(depths.index(depth))
        first = run.history[run.history["step"] == 0]
        for a in range(len(s)):
            label = f"depth {depth}, s={s[a]:g}"
            idx = downsample(len(t))
            if normalised:
                t_half = theory.crossing_time(t, u[:, a], 0.5 * s[a])
                if not np.isfinite(t_half):
                    continue
                x, y = theory.rescaled_time(t, s[a], depth, t_half), u[:, a] / s[a]
            else:
                x, y = t, u[:, a]
            fig.add_trace(go.Scatter(x=x[idx], y=y[idx], mode="lines", name=label, legendgroup=f"d{depth}",
                                     line={"color": color, "dash": dataset_dash(run.spec.data.name)},
                                     opacity=1.0 - 0.2 * a, hovertext=spec_hover(run.spec), hoverinfo="text+x+y"))
            if not normalised and depth == 2 and f"mode_u0_{a}" in first and len(first):
                u0 = float(first[f"mode_u0_{a}"].iloc[0])
                if u0 > 0:
                    fig.add_trace(_ref(t[idx], theory.two_layer_mode(t[idx], s[a], u0), "closed form (2 layers)",
                                       showlegend=a == 0 and run is runs[0]))
    if normalised:
        for i, depth in enumerate(depths):
            r, x = theory.universal_curve(depth)
            fig.add_trace(_ref(r, x, f"theory, depth {depth}" + (" (logistic)" if depth == 2 else ""),
                               dash=("dash", "dot", "dashdot", "longdash")[i % 4]))
        fig.update_xaxes(range=[-12, 12])
        return layout(fig, "Do all modes collapse onto one curve per depth?",
                      "rescaled time D s^(2-2/D) (t - t_half)", "mode strength / singular value u/s",
                      presentation)
    return layout(fig, "Does each mode switch on sigmoidally, strongest first?",
                  "gradient-flow time t = eta x step (units of tau)", "mode strength u = u_a^T W v_a", presentation)


def saxe_rise_figure(runs, presentation: bool = False) -> go.Figure:
    """Measured vs predicted rise times (20% -> 80% of s), log-log, with the identity and a 15% band."""
    from ..phenomena import saxe_dynamics as sd
    from ..phenomena import saxe_dynamics_theory as theory

    fig = go.Figure()
    depths = sorted({r.spec.model.depth for r in runs})
    allx = []
    for run in runs:
        t, u = sd.mode_curves(run)
        if not len(t):
            continue
        s, depth = sd.singular_values(run.spec), run.spec.model.depth
        meas, pred = [], []
        for a in range(len(s)):
            lo = theory.crossing_time(t, u[:, a], theory.RISE_FROM * s[a])
            hi = theory.crossing_time(t, u[:, a], theory.RISE_TO * s[a])
            meas.append(hi - lo)
            pred.append(theory.rise_time(s[a], depth))
        allx += pred
        fig.add_trace(go.Scatter(x=pred, y=meas, mode="markers+lines", name=f"depth {depth}",
                                 marker={"size": 11, "color": family_color(depths.index(depth))},
                                 line={"color": family_color(depths.index(depth)), "width": 1,
                                       "dash": dataset_dash(run.spec.data.name)},
                                 text=[f"s={v:g}" for v in s], hovertext=spec_hover(run.spec)))
    if allx:
        grid = np.array([min(allx) / 1.3, max(allx) * 1.3])
        fig.add_trace(_ref(grid, grid, "prediction: rise = (r(0.8)-r(0.2)) / (D s^(2-2/D))"))
        fig.add_trace(_ref(grid, grid * (1 + sd.RATIO_TOL), "\u00b115%", dash="dot"))
        fig.add_trace(_ref(grid, grid * (1 - sd.RATIO_TOL), "", dash="dot", showlegend=False))
    return layout(fig, "Are learning times set by the singular values, as s^-(2-2/D)?",
                  "predicted rise time (units of tau)", "measured rise time 20% \u2192 80% of s", presentation,
                  log_x=True, log_y=True)
