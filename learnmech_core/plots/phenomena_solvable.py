"""Figures of the solvable-settings and limits phenomena (Saxe, eigenlearning, lazy vs rich, muP, conservation).

Every figure draws the theory as a black reference (closed form, predicted curve, predicted slope), has a
question or claim as its title, labelled axes and log scales where the quantity spans decades. Runs keep
one colour per architecture and one dash per dataset; where a figure sweeps something else (modes,
widths, parametrisations) that is said in the legend, with panels or family colours as noted.

Each builder draws a summary its phenomenon computed (measured numbers and the theory evaluated on a grid,
`figure_summary` in the phenomenon's module); nothing here computes a prediction or imports a phenomenon.
Axis titles use Unicode and HTML tags (Plotly in Streamlit renders no LaTeX).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..data import display_name
from .style import (
    PREDICTION_COLOR,
    arch_color,
    dataset_dash,
    downsample,
    family_color,
    layout,
    log_axis_annotations,
    spec_hover,
)


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


def saxe_modes_figure(summary: dict, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Mode strengths over time (raw, with the closed form) or u/s over rescaled time (one curve per depth)."""
    fig = go.Figure()
    depths = summary["depths"]
    closed_form_shown = False
    for run in summary["runs"]:
        t, depth = run["t"], run["depth"]
        color = family_color(depths.index(depth))
        for a, mode in enumerate(run["modes"]):
            idx = downsample(mode["u"])
            if normalised:
                if mode["rescaled"] is None:
                    continue
                x, y = mode["rescaled"], mode["u"] / mode["s"]
            else:
                x, y = t, mode["u"]
            fig.add_trace(go.Scatter(x=x[idx], y=y[idx], mode="lines", name=f"depth {depth}, s={mode['s']:g}",
                                     legendgroup=f"d{depth}",
                                     line={"color": color, "dash": dataset_dash(run["dataset"])},
                                     opacity=1.0 - 0.2 * a, hovertext=spec_hover(run["spec"]), hoverinfo="text+x+y"))
            if not normalised and mode["closed_form"] is not None:
                fig.add_trace(_ref(t[idx], mode["closed_form"][idx], "closed form (2 layers)",
                                   showlegend=not closed_form_shown))
                closed_form_shown = True
    if normalised:
        for i, depth in enumerate(depths):
            r, x = summary["universal"][depth]
            fig.add_trace(_ref(r, x, f"theory, depth {depth}" + (" (logistic)" if depth == 2 else ""),
                               dash=("dash", "dot", "dashdot", "longdash")[i % 4]))
        fig.update_xaxes(range=[-12, 12])
        return layout(fig, "Do all modes collapse onto one curve per depth?",
                      "rescaled time D s<sup>2\u22122/D</sup> (t \u2212 t<sub>\u00bd</sub>)",
                      "mode strength / singular value u/s", presentation)
    return layout(fig, "Does each mode switch on sigmoidally, strongest first?",
                  "gradient-flow time t = \u03b7 \u00d7 step (units of \u03c4)",
                  "mode strength u = u<sub>a</sub><sup>T</sup> W v<sub>a</sub>", presentation)


def saxe_rise_figure(summary: dict, presentation: bool = False) -> go.Figure:
    """Measured vs predicted rise times (20% -> 80% of s), log-log, with the identity and the tolerance band."""
    fig = go.Figure()
    depths, tol = summary["depths"], summary["ratio_tol"]
    allx = []
    for run in summary["runs"]:
        depth, pred = run["depth"], run["rise_pred"]
        allx += list(pred)
        fig.add_trace(go.Scatter(x=pred, y=run["rise"], mode="markers+lines", name=f"depth {depth}",
                                 marker={"size": 11, "color": family_color(depths.index(depth))},
                                 line={"color": family_color(depths.index(depth)), "width": 1,
                                       "dash": dataset_dash(run["dataset"])},
                                 text=[f"s={m['s']:g}" for m in run["modes"]], hovertext=spec_hover(run["spec"])))
    if allx:
        grid = np.array([min(allx) / 1.3, max(allx) * 1.3])
        fig.add_trace(_ref(grid, grid, "prediction: rise = (r(0.8) \u2212 r(0.2)) / (D s<sup>2\u22122/D</sup>)"))
        fig.add_trace(_ref(grid, grid * (1 + tol), f"\u00b1{tol:.0%}", dash="dot"))
        fig.add_trace(_ref(grid, grid * (1 - tol), "", dash="dot", showlegend=False))
    return layout(fig, "Are learning times set by the singular values, as s<sup>\u2212(2\u22122/D)</sup>?",
                  "predicted rise time (units of \u03c4)", "measured rise time 20% \u2192 80% of s", presentation,
                  log_x=True, log_y=True)


# ----------------------------------------------------------------------------------------------------
# Conservation laws

_BALANCE = "b<sub>l</sub> = \u2016W<sub>l+1</sub>\u2016\u00b2 \u2212 \u2016W<sub>l</sub>\u2016\u00b2"


def conservation_drift_figure(summary: dict, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Balance drift per GD step against eta (log-log) with the predicted slope 2; normalised: drift / eta^2.

    Runs that left gradient flow (a catapult) are drawn as crosses and the reference ignores them.
    """
    fig = go.Figure()
    for i, g in enumerate(summary["drift"]):
        lrs, tracking = g["lrs"], g["tracking"]
        y = g["drifts"] / lrs**2 if normalised else g["drifts"]
        fig.add_trace(go.Scatter(x=lrs, y=y, mode="markers+lines", name=f"{g['arch']} / {display_name(g['dataset'])}",
                                 marker={"size": 10, "color": arch_color(g["arch"]),
                                         "symbol": ["circle" if t else "x-open" for t in tracking]},
                                 line={"color": arch_color(g["arch"]), "dash": dataset_dash(g["dataset"])},
                                 hovertext=[spec_hover(spec) for spec in g["specs"]], hoverinfo="text+x+y"))
        rx, ry = _loglog_ref(lrs[tracking], y[tracking], 0.0 if normalised else summary["slope"])
        fig.add_trace(_ref(rx, ry, f"prediction: slope {summary['slope']:g} (drift \u221d \u03b7\u00b2)" if i == 0
                           else "", showlegend=i == 0))
    ylabel = ("drift per step / \u03b7\u00b2" if normalised
              else "drift per step, mean |b<sub>l</sub>(k+1) \u2212 b<sub>l</sub>(k)|")
    return layout(fig, "Does GD break the conservation law only at O(\u03b7\u00b2) per step?",
                  "learning rate \u03b7", ylabel, presentation, log_x=True, log_y=True)


def conservation_decay_figure(summary: dict, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Balance under weight decay against time with b(0) e^(-2 lambda t); normalised: b/b(0) against 2 lambda t."""
    fig = go.Figure()
    for i, run in enumerate(summary["decay"]):
        t, b = run["t"], run["b"]
        idx = downsample(b)
        x = run["two_lambda"] * t if normalised else t
        y = b / b[0] if normalised else np.abs(b)
        fig.add_trace(go.Scatter(x=x[idx], y=y[idx], mode="lines",
                                 name=f"{run['arch']} / {display_name(run['dataset'])} ({run['column']}, "
                                      f"rate {run['rate']:.3g})",
                                 line={"color": arch_color(run["arch"]), "dash": dataset_dash(run["dataset"])},
                                 hovertext=spec_hover(run["spec"]), hoverinfo="text+x+y"))
        if not normalised:
            fig.add_trace(_ref(t[idx], np.abs(run["predicted"][idx]),
                               "prediction: |b(0)| e<sup>\u22122\u03bbt</sup>" if i == 0 else "", showlegend=i == 0))
        elif i == 0:
            grid = np.linspace(0, x.max(), 100)
            fig.add_trace(_ref(grid, np.exp(-grid), "prediction: e<sup>\u22122\u03bbt</sup>"))
    title = "With weight decay, does every balance decay as e<sup>\u22122\u03bbt</sup>?"
    if normalised:
        return layout(fig, title, "2\u03bbt (t = \u03b7 \u00d7 step)", "b(t) / b(0)", presentation, log_y=True)
    return layout(fig, title, "gradient-flow time t = \u03b7 \u00d7 step", f"|{_BALANCE}|", presentation,
                  log_y=True)


# ----------------------------------------------------------------------------------------------------
# Lazy vs rich


_LAZY_LABELS = {"rel_change_0": "\u2016W\u2081 \u2212 W\u2081(0)\u2016 / \u2016W\u2081(0)\u2016",
                "ntk_rel_change": "\u2016K \u2212 K\u2080\u2016 / \u2016K\u2080\u2016 (NTK)"}


def lazy_rich_figure(summary: dict, column: str = "rel_change_0", normalised: bool = True,
                     presentation: bool = False) -> go.Figure:
    """Final relative change against width, log-log, one panel per parametrisation, with the predicted slopes."""
    groups = summary["groups"]
    panels = [p for p in ("ntk", "mup") if any(g["param"] == p for g in groups)] or ["ntk"]
    titles = {"ntk": "NTK parametrisation (lazy)", "mup": "\u03bcP / mean field (rich)"}
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[titles[p] for p in panels], shared_yaxes=True)
    shown = set()
    for g in groups:
        if g["param"] not in panels:
            continue
        col = panels.index(g["param"]) + 1
        widths, values = g["widths"], g[column]
        ok = np.isfinite(values) & (values > 0)
        if not ok.any():
            continue
        arch, dataset = g["arch"], g["dataset"]
        y = values / values[ok][0] if normalised else values
        fig.add_trace(go.Scatter(x=widths, y=y, mode="markers+lines", name=f"{arch} / {display_name(dataset)}",
                                 legendgroup=f"{arch}/{dataset}", showlegend=(arch, dataset) not in shown,
                                 marker={"size": 10, "color": arch_color(arch)},
                                 line={"color": arch_color(arch), "dash": dataset_dash(dataset)},
                                 hovertext=[spec_hover(spec) for spec in g["specs"]], hoverinfo="text+x+y"),
                      row=1, col=col)
        shown.add((arch, dataset))
        for i, slope in enumerate(g["predicted"][column]):
            rx, ry = _loglog_ref(widths[ok], y[ok], slope)
            key = f"{g['param']}{slope}"
            fig.add_trace(_ref(rx, ry, f"prediction: slope {slope:g}", dash=("dash", "dot")[i % 2],
                               showlegend=key not in shown), row=1, col=col)
            shown.add(key)
    ylabel = _LAZY_LABELS.get(column, column) + (" (\u00f7 narrowest width's)" if normalised else "")
    title = ("Does the hidden layer stop moving as width grows (NTK) but not under muP?" if column == "rel_change_0"
             else "Does the tangent kernel freeze as width grows (NTK) but not under muP?")
    return layout(fig, title, "width (hidden units)", ylabel, presentation, log_x=True, log_y=True)


# ----------------------------------------------------------------------------------------------------
# muP transfer


def mup_lr_figure(summary: dict, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Training loss against learning rate, one curve per width (family colours), panels SP | muP.

    The prediction is drawn as a vertical line at the base width's best learning rate: under muP every
    width's minimum should sit on it (within one grid step).
    """
    tables = summary["tables"]
    panels = [p for p in ("sp", "mup") if any(k[0] == p for k in tables)] or ["mup"]
    titles = {"sp": "standard parametrisation (SP)", "mup": "\u03bcP"}
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[titles[p] for p in panels], shared_yaxes=True)
    all_widths = sorted({int(w) for key in tables for w in tables[key][0]})
    shown = set()
    for (param, arch, dataset), (widths, lrs, losses) in tables.items():
        col = panels.index(param) + 1
        for i, w in enumerate(widths):
            y = losses[i] / np.nanmin(losses[i]) if normalised and np.any(np.isfinite(losses[i])) else losses[i]
            name = f"width {int(w)}" + (f" ({arch} / {display_name(dataset)})" if len(tables) > 2 else "")
            fig.add_trace(go.Scatter(x=2.0**lrs, y=y, mode="markers+lines", name=name, legendgroup=name,
                                     showlegend=name not in shown,
                                     marker={"color": family_color(all_widths.index(int(w))), "size": 8},
                                     line={"color": family_color(all_widths.index(int(w))),
                                           "dash": dataset_dash(dataset)},
                                     hovertemplate=f"{arch} {param} width {int(w)} {display_name(dataset)}"
                                                   "<br>lr %{x:.3g}<br>loss %{y:.3g}"),
                          row=1, col=col)
            shown.add(name)
        best = summary["base_best_log2_lr"].get((arch, dataset), float("nan"))
        if np.isfinite(best):
            fig.add_vline(x=2.0**best, line_dash="dash", line_color=PREDICTION_COLOR, row=1, col=col,
                          annotation_text="predicted: base width's best \u03b7" if col == len(panels) else "",
                          annotation_position="bottom left")
    ylabel = ("training loss / best loss at that width" if normalised
              else "training loss (mean of the last 20% of steps)")
    layout(fig, "Does the best learning rate stay put as width grows?", "", ylabel, presentation, log_y=True)
    log2_lrs = [v for _, lrs, _ in tables.values() for v in lrs]
    span = [np.log10(2.0) * (min(log2_lrs) - 0.5), np.log10(2.0) * (max(log2_lrs) + 0.5)] if log2_lrs else None
    fig.update_xaxes(type="log", title_text="Adam learning rate \u03b7", range=span)  # one grid on both panels
    return log_axis_annotations(fig)


def mup_coord_figure(summary: dict, presentation: bool = False) -> go.Figure:
    """Coordinate check: RMS activation size of each layer against width at the base width's best rate."""
    coord = summary["coord"]
    panels = [p for p in ("sp", "mup") if any(c["param"] == p for c in coord)] or ["mup"]
    titles = {"sp": "SP", "mup": "\u03bcP"}
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[titles[p] for p in panels], shared_yaxes=True)
    shown = set()
    for c in coord:
        col = panels.index(c["param"]) + 1
        widths = c["widths"]
        for i, (name, values) in enumerate(c["sizes"].items()):
            label = f"layer {name.split('_')[1]} output"
            fig.add_trace(go.Scatter(x=widths, y=values, mode="markers+lines", name=label, legendgroup=label,
                                     showlegend=label not in shown,
                                     marker={"color": family_color(i), "size": 9},
                                     line={"color": family_color(i), "dash": dataset_dash(c["dataset"])},
                                     hovertemplate=f"{c['arch']} {c['param']} {display_name(c['dataset'])} "
                                                   f"lr 2^{c['log2_lr']:g}<br>slope {c['slopes'][i]:.2f}"
                                                   "<br>width %{x}<br>RMS %{y:.3g}"), row=1, col=col)
            shown.add(label)
            if c["param"] == "mup":
                rx, ry = _loglog_ref(widths, values, 0.0)
                fig.add_trace(_ref(rx, ry, "muP prediction: flat (slope 0)", showlegend="ref" not in shown),
                              row=1, col=col)
                shown.add("ref")
    return layout(fig, "Do activations stay O(1) per coordinate as width grows (coordinate check)?", "width",
                  "RMS activation per coordinate after training", presentation, log_x=True, log_y=True)


# ----------------------------------------------------------------------------------------------------
# Eigenlearning

_ACT_SYMBOL = {"relu": "circle", "tanh": "diamond", "gelu": "square", "linear": "triangle-up"}


def eigenlearning_curve_figure(summary: dict, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Measured kernel-regression test MSE against n (markers, error bars) and the eigenlearning prediction."""
    fig = go.Figure()
    for i, k in enumerate(summary["kernels"]):
        spec = k["spec"]
        scale = k["power_total"] if normalised and k["power_total"] > 0 else 1.0
        color = arch_color(spec.model.arch)
        fig.add_trace(go.Scatter(x=k["n"], y=k["measured"] / scale, mode="markers+lines",
                                 name=f"{k['label']} (max error {k['max_rel']:.1%})",
                                 marker={"color": color, "size": 9, "symbol": _ACT_SYMBOL.get(spec.model.activation)},
                                 line={"color": color, "dash": dataset_dash(spec.data.name), "width": 1},
                                 error_y={"type": "data", "array": k["se"] / scale, "visible": True},
                                 hovertext=spec_hover(spec), hoverinfo="text+x+y"))
        fig.add_trace(_ref(k["n"], k["predicted"] / scale, "eigenlearning prediction" if i == 0 else "",
                           showlegend=i == 0))
    ylabel = "test MSE / E[f\u00b2]" if normalised else "test MSE (squared error summed over outputs)"
    return layout(fig, "Do the kernel's eigenvalues predict its learning curve?", "training points n", ylabel,
                  presentation, log_x=True, log_y=True)


def eigenlearning_learnability_figure(summary: dict, presentation: bool = False) -> go.Figure:
    """Measured learnability of eigenfunctions (mean, 2 SE bars) against the predicted lambda/(lambda + kappa)."""
    fig = go.Figure()
    for k in summary["kernels"]:
        if not len(k["modes"]):
            continue
        spec = k["spec"]
        color = arch_color(spec.model.arch)
        n_of = np.repeat(np.asarray(k["n"]), len(k["modes"]))
        mode_of = np.tile(np.asarray(k["modes"]) + 1, len(k["n"]))
        fig.add_trace(go.Scatter(x=k["learn_pred"].ravel(), y=k["learn"].ravel(), mode="markers", name=k["label"],
                                 marker={"color": color, "size": 7, "symbol": _ACT_SYMBOL.get(spec.model.activation),
                                         "opacity": 0.7},
                                 error_y={"type": "data", "array": 2 * k["learn_se"].ravel(), "visible": True,
                                          "thickness": 1},
                                 customdata=np.stack([n_of, mode_of], axis=1),
                                 hovertemplate="n %{customdata[0]}, mode %{customdata[1]}<br>predicted %{x:.3f}"
                                               "<br>measured %{y:.3f}<extra></extra>"))
    tol = summary["learn_tol"]
    grid = np.array([0.0, 1.0])
    fig.add_trace(_ref(grid, grid, "prediction: L<sub>i</sub> = \u03bb<sub>i</sub> / (\u03bb<sub>i</sub> + \u03ba)"))
    fig.add_trace(_ref(grid, grid + tol, f"\u00b1{tol:g} (beyond 2 standard errors)", dash="dot"))
    fig.add_trace(_ref(grid, grid - tol, "", dash="dot", showlegend=False))
    fig.update_xaxes(range=[-0.03, 1.03])
    fig.update_yaxes(range=[-0.08, 1.08])
    return layout(fig, "Is each eigenmode learned to the predicted fraction?",
                  "predicted learnability \u03bb<sub>i</sub> / (\u03bb<sub>i</sub> + \u03ba)",
                  "measured learnability \u27e8\u03c6<sub>i</sub>, f\u0302\u27e9", presentation)


def eigenlearning_spectrum_figure(summary: dict, presentation: bool = False) -> go.Figure:
    """Kernel eigenvalues against mode index (log-log), with kappa at the largest n marked."""
    fig = go.Figure()
    for i, k in enumerate(summary["kernels"]):
        spec = k["spec"]
        lam = k["eigenvalues"]
        keep = lam > 0
        idx = np.arange(1, len(lam) + 1)[keep]
        sel = downsample(lam[keep])
        fig.add_trace(go.Scatter(x=idx[sel], y=lam[keep][sel], mode="lines+markers", name=k["label"],
                                 line={"color": arch_color(spec.model.arch), "dash": dataset_dash(spec.data.name)},
                                 marker={"symbol": _ACT_SYMBOL.get(spec.model.activation), "maxdisplayed": 25,
                                         "color": arch_color(spec.model.arch), "size": 7},
                                 hovertext=spec_hover(spec), hoverinfo="text+x+y"))
        fig.add_trace(_ref([idx[0], idx[-1]], [k["kappa_last"]] * 2,
                           f"\u03ba at n = {k['n'][-1]} (modes above are learned)" if i == 0 else "", dash="dot",
                           showlegend=i == 0))
    return layout(fig, "Which eigenmodes can n samples learn? Those with eigenvalue above \u03ba",
                  "mode index i", "kernel eigenvalue \u03bb<sub>i</sub> (of K / M)", presentation, log_x=True,
                  log_y=True)
