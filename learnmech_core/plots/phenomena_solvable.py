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

from ..data import display_name
from .style import (PREDICTION_COLOR, arch_color, dataset_dash, downsample, family_color, layout, log_axis_annotations,
                    spec_hover)


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
    closed_form_shown = False
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
            idx = downsample(u[:, a])
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
                                       showlegend=not closed_form_shown))
                    closed_form_shown = True
    if normalised:
        for i, depth in enumerate(depths):
            r, x = theory.universal_curve(depth)
            fig.add_trace(_ref(r, x, f"theory, depth {depth}" + (" (logistic)" if depth == 2 else ""),
                               dash=("dash", "dot", "dashdot", "longdash")[i % 4]))
        fig.update_xaxes(range=[-12, 12])
        return layout(fig, "Do all modes collapse onto one curve per depth?",
                      "rescaled time D s<sup>2\u22122/D</sup>(t \u2212 t<sub>\u00bd</sub>)", "mode strength / singular value u/s",
                      presentation)
    return layout(fig, "Does each mode switch on sigmoidally, strongest first?",
                  "gradient-flow time t = \u03b7 \u00d7 step (units of \u03c4)", "mode strength u = u<sub>a</sub><sup>T</sup>W v<sub>a</sub>", presentation)


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
        fig.add_trace(_ref(grid, grid, "prediction: rise = (r(0.8) \u2212 r(0.2)) / (D s<sup>2\u22122/D</sup>)"))
        fig.add_trace(_ref(grid, grid * (1 + sd.RATIO_TOL), "\u00b115%", dash="dot"))
        fig.add_trace(_ref(grid, grid * (1 - sd.RATIO_TOL), "", dash="dot", showlegend=False))
    return layout(fig, "Are learning times set by the singular values, as s<sup>\u2212(2\u22122/D)</sup>?",
                  "predicted rise time (units of tau)", "measured rise time 20% \u2192 80% of s", presentation,
                  log_x=True, log_y=True)


# ----------------------------------------------------------------------------------------------------
# Conservation laws


def conservation_drift_figure(runs, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Balance drift per GD step against eta (log-log) with the predicted slope 2; normalised: drift / eta^2.

    Runs that left gradient flow (a catapult) are drawn as crosses and the reference ignores them.
    """
    from ..phenomena import conservation_laws as cl

    fig = go.Figure()
    groups: dict = {}
    for run in runs:
        if run.spec.optim.weight_decay == 0:
            groups.setdefault((run.spec.model.arch, run.spec.data.name), []).append(run)
    first = True
    for (arch, dataset), members in groups.items():
        members = sorted(members, key=lambda r: r.spec.optim.lr)
        lrs = np.array([r.spec.optim.lr for r in members])
        drift = np.array([cl.drift_per_step(r) for r in members])
        tracking = np.array([cl.follows_gradient_flow(r) for r in members], dtype=bool)
        y = drift / lrs**2 if normalised else drift
        fig.add_trace(go.Scatter(x=lrs, y=y, mode="markers+lines", name=f"{arch} / {dataset}",
                                 marker={"size": 10, "color": arch_color(arch),
                                         "symbol": ["circle" if t else "x-open" for t in tracking]},
                                 line={"color": arch_color(arch), "dash": dataset_dash(dataset)},
                                 hovertext=[spec_hover(r.spec) for r in members], hoverinfo="text+x+y"))
        rx, ry = _loglog_ref(lrs[tracking], y[tracking], 0.0 if normalised else cl.SLOPE_EXPECTED)
        fig.add_trace(_ref(rx, ry, "prediction: slope 2 (drift \u221d \u03b7\u00b2)" if first else "", showlegend=first))
        first = False
    ylabel = "drift per step / \u03b7\u00b2" if normalised else "drift per step: mean |b<sub>l</sub>(k+1) \u2212 b<sub>l</sub>(k)|"
    return layout(fig, "Does GD break the conservation law only at O(\u03b7\u00b2) per step?",
                  "learning rate \u03b7", ylabel, presentation, log_x=True, log_y=True)


def conservation_decay_figure(runs, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Balance under weight decay against time with b(0) e^(-2 lambda t); normalised: b/b(0) against 2 lambda t."""
    from ..phenomena import conservation_laws as cl

    fig = go.Figure()
    first = True
    for run in runs:
        o = run.spec.optim
        if o.weight_decay == 0:
            continue
        fit = cl.decay_fit(run)
        col = fit["column"]
        if col is None:
            continue
        h = run.history.dropna(subset=[col]).sort_values("step")
        t = h["step"].to_numpy(float) * o.lr
        b = h[col].to_numpy(float)
        idx = downsample(b)
        x = 2 * o.weight_decay * t if normalised else t
        y = b / b[0] if normalised else np.abs(b)
        fig.add_trace(go.Scatter(x=x[idx], y=y[idx], mode="lines", name=f"{run.spec.model.arch} / {display_name(run.spec.data.name)} "
                                 f"({col}, rate {fit['rate']:.3g})",
                                 line={"color": arch_color(run.spec.model.arch),
                                       "dash": dataset_dash(run.spec.data.name)},
                                 hovertext=spec_hover(run.spec), hoverinfo="text+x+y"))
        if normalised:
            if first:
                grid = np.linspace(0, x.max(), 100)
                fig.add_trace(_ref(grid, np.exp(-grid), "prediction: e<sup>\u22122\u03bbt</sup>"))
        else:
            fig.add_trace(_ref(t[idx], abs(b[0]) * np.exp(-2 * o.weight_decay * t[idx]),
                               "prediction: |b(0)| e<sup>\u22122\u03bbt</sup>" if first else "", showlegend=first))
        first = False
    if normalised:
        return layout(fig, "With weight decay, does every balance decay as e<sup>\u22122\u03bbt</sup>?",
                      "2\u03bbt (t = \u03b7 \u00d7 step)", "b(t) / b(0)", presentation, log_y=True)
    return layout(fig, "With weight decay, does every balance decay as e<sup>\u22122\u03bbt</sup>?",
                  "gradient-flow time t = \u03b7 \u00d7 step", "|b(t)| = |\u2016W<sub>l+1</sub>\u2016\u00b2 \u2212 \u2016W<sub>l</sub>\u2016\u00b2|", presentation,
                  log_y=True)


# ----------------------------------------------------------------------------------------------------
# Lazy vs rich


_LAZY_LABELS = {"rel_change_0": "\u2016W\u2081 \u2212 W\u2081(0)\u2016 / \u2016W\u2081(0)\u2016",
                "ntk_rel_change": "\u2016K \u2212 K\u2080\u2016 / \u2016K\u2080\u2016 (NTK)"}


def lazy_rich_figure(runs, column: str = "rel_change_0", normalised: bool = True,
                     presentation: bool = False) -> go.Figure:
    """Final relative change against width, log-log, one panel per parametrisation, with the predicted slopes."""
    from ..phenomena import lazy_vs_rich as lr

    panels = [p for p in ("ntk", "mup") if any(r.spec.model.param == p for r in runs)] or ["ntk"]
    titles = {"ntk": "NTK parametrisation (lazy)", "mup": "\u03bcP / mean field (rich)"}
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[titles[p] for p in panels], shared_yaxes=True)
    shown = set()
    for (param, arch, dataset), members in lr.groups(runs).items():
        if param not in panels:
            continue
        col = panels.index(param) + 1
        widths, values = lr.width_series(members, column)
        ok = np.isfinite(values) & (values > 0)
        if not ok.any():
            continue
        y = values / values[ok][0] if normalised else values
        fig.add_trace(go.Scatter(x=widths, y=y, mode="markers+lines", name=f"{arch} / {dataset}",
                                 legendgroup=f"{arch}/{dataset}", showlegend=(arch, dataset) not in shown,
                                 marker={"size": 10, "color": arch_color(arch)},
                                 line={"color": arch_color(arch), "dash": dataset_dash(dataset)},
                                 hovertext=[spec_hover(r.spec)
                                            for r in sorted(members, key=lambda r: r.spec.model.width)],
                                 hoverinfo="text+x+y"), row=1, col=col)
        shown.add((arch, dataset))
        slopes = [lr.EXPECTED_SLOPE[param]] + ([-1.0] if column == "ntk_rel_change" and param == "ntk" else [])
        for i, slope in enumerate(slopes):
            rx, ry = _loglog_ref(widths[ok], y[ok], slope)
            fig.add_trace(_ref(rx, ry, f"prediction: slope {slope:g}", dash=("dash", "dot")[i],
                               showlegend=f"{param}{slope}" not in shown), row=1, col=col)
            shown.add(f"{param}{slope}")
    ylabel = _LAZY_LABELS.get(column, column) + (" (\u00f7 narrowest width's)" if normalised else "")
    title = ("Does the hidden layer stop moving as width grows (NTK) but not under muP?" if column == "rel_change_0"
             else "Does the tangent kernel freeze as width grows (NTK) but not under muP?")
    return layout(fig, title, "width (hidden units)", ylabel, presentation, log_x=True, log_y=True)


# ----------------------------------------------------------------------------------------------------
# muP transfer


def mup_lr_figure(runs, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Training loss against learning rate, one curve per width (family colours), panels SP | muP.

    The prediction is drawn as a vertical line at the base width's best learning rate: under muP every
    width's minimum should sit on it (within one grid step).
    """
    from ..phenomena import mup_transfer as mt

    tables = mt.loss_table(runs)
    panels = [p for p in ("sp", "mup") if any(k[0] == p for k in tables)] or ["mup"]
    titles = {"sp": "standard parametrisation (SP)", "mup": "\u03bcP"}
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[titles[p] for p in panels], shared_yaxes=True)
    all_widths = sorted({int(w) for key in tables for w in tables[key][0]})
    shown = set()
    for (param, arch, dataset), (widths, lrs, losses) in tables.items():
        col = panels.index(param) + 1
        for i, w in enumerate(widths):
            y = losses[i] / np.nanmin(losses[i]) if normalised and np.any(np.isfinite(losses[i])) else losses[i]
            name = f"width {int(w)}" + (f" ({arch} / {dataset})" if len(tables) > 2 else "")
            fig.add_trace(go.Scatter(x=2.0**lrs, y=y, mode="markers+lines", name=name, legendgroup=name,
                                     showlegend=name not in shown,
                                     marker={"color": family_color(all_widths.index(int(w))), "size": 8},
                                     line={"color": family_color(all_widths.index(int(w))),
                                           "dash": dataset_dash(dataset)},
                                     hovertemplate=f"{arch} {param} width {int(w)} {dataset}"
                                                   "<br>lr %{x:.3g}<br>loss %{y:.3g}"),
                          row=1, col=col)
            shown.add(name)
        if ("mup", arch, dataset) in tables:
            mw, mlrs, mloss = tables[("mup", arch, dataset)]
            best = mt.argmin_lrs(mlrs, mloss)[0]
            if np.isfinite(best):
                fig.add_vline(x=2.0**best, line_dash="dash", line_color=PREDICTION_COLOR, row=1, col=col,
                              annotation_text="\u03bcP prediction" if col == len(panels) else "")
    ylabel = ("training loss / best loss at that width" if normalised
              else "training loss (mean of the last 20% of steps)")
    return layout(fig, "Does the best learning rate stay put as width grows?", "Adam learning rate", ylabel,
                  presentation, log_x=True, log_y=True)


def mup_coord_figure(runs, presentation: bool = False) -> go.Figure:
    """Coordinate check: RMS activation size of each layer against width at the base width's best rate."""
    from ..phenomena import mup_transfer as mt

    tables = mt.loss_table(runs)
    panels = [p for p in ("sp", "mup") if any(k[0] == p for k in tables)] or ["mup"]
    titles = {"sp": "SP", "mup": "\u03bcP"}
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[titles[p] for p in panels], shared_yaxes=True)
    shown = set()
    for (param, arch, dataset) in tables:
        if ("mup", arch, dataset) not in tables:
            continue
        _, mlrs, mloss = tables[("mup", arch, dataset)]
        lr = mt.argmin_lrs(mlrs, mloss)[0]
        slopes, sizes = mt.coord_slopes(runs, param, arch, dataset, lr)
        if not sizes:
            continue
        widths = sizes.pop("widths")
        col = panels.index(param) + 1
        for i, (name, values) in enumerate(sizes.items()):
            label = f"layer {name.split('_')[1]} output"
            fig.add_trace(go.Scatter(x=widths, y=values, mode="markers+lines", name=label, legendgroup=label,
                                     showlegend=label not in shown,
                                     marker={"color": family_color(i), "size": 9},
                                     line={"color": family_color(i), "dash": dataset_dash(dataset)},
                                     hovertemplate=f"{arch} {param} {dataset} lr 2^{lr:g}<br>slope {slopes[i]:.2f}"
                                                   "<br>width %{x}<br>RMS %{y:.3g}"), row=1, col=col)
            shown.add(label)
            if param == "mup":
                rx, ry = _loglog_ref(widths, values, 0.0)
                fig.add_trace(_ref(rx, ry, "muP prediction: flat (slope 0)", showlegend="ref" not in shown),
                              row=1, col=col)
                shown.add("ref")
    return layout(fig, "Do activations stay O(1) per coordinate as width grows (coordinate check)?", "width",
                  "RMS activation per coordinate after training", presentation, log_x=True, log_y=True)


# ----------------------------------------------------------------------------------------------------
# Eigenlearning

_ACT_SYMBOL = {"relu": "circle", "tanh": "diamond", "gelu": "square", "linear": "triangle-up"}


def eigenlearning_curve_figure(runs, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Measured kernel-regression test MSE against n (markers, error bars) and the eigenlearning prediction."""
    from ..phenomena import eigenlearning as el

    fig = go.Figure()
    first = True
    for run in runs:
        c = el.comparison(run)
        if not len(c["n"]):
            continue
        spec = run.spec
        scale = 1.0
        if normalised:
            stored = el.curves(run)
            scale = float(np.sum(stored["power"])) if stored else 1.0
        color = arch_color(spec.model.arch)
        name = f"{el.kernel_name(spec)} / {display_name(spec.data.name)} (R\u00b2 log {c['r2_log']:.3f})"
        fig.add_trace(go.Scatter(x=c["n"], y=c["measured"] / scale, mode="markers+lines", name=name,
                                 marker={"color": color, "size": 9, "symbol": _ACT_SYMBOL.get(spec.model.activation)},
                                 line={"color": color, "dash": dataset_dash(spec.data.name), "width": 1},
                                 error_y={"type": "data", "array": c["se"] / scale, "visible": True},
                                 hovertext=spec_hover(spec), hoverinfo="text+x+y"))
        fig.add_trace(_ref(c["n"], c["predicted"] / scale, "eigenlearning prediction" if first else "",
                           showlegend=first))
        first = False
    ylabel = "test MSE / E[f\u00b2]" if normalised else "test MSE (squared error summed over outputs)"
    return layout(fig, "Do the kernel's eigenvalues predict its learning curve?", "training points n", ylabel,
                  presentation, log_x=True, log_y=True)


def eigenlearning_spectrum_figure(runs, presentation: bool = False) -> go.Figure:
    """Kernel eigenvalues against mode index (log-log), with the modes learned at the largest n marked."""
    from ..phenomena import eigenlearning as el
    from ..phenomena.eigenlearning_theory import solve_kappa

    fig = go.Figure()
    first = True
    for run in runs:
        c = el.curves(run)
        if c is None:
            continue
        spec = run.spec
        lam = c["eigenvalues"]
        keep = lam > 0
        idx = np.arange(1, len(lam) + 1)[keep]
        sel = downsample(lam[keep])
        fig.add_trace(go.Scatter(x=idx[sel], y=lam[keep][sel], mode="lines+markers",
                                 name=f"{el.kernel_name(spec)} / {display_name(spec.data.name)}",
                                 line={"color": arch_color(spec.model.arch), "dash": dataset_dash(spec.data.name)},
                                 marker={"symbol": _ACT_SYMBOL.get(spec.model.activation), "maxdisplayed": 25,
                                         "color": arch_color(spec.model.arch), "size": 7},
                                 hovertext=spec_hover(spec), hoverinfo="text+x+y"))
        kappa = solve_kappa(lam, int(c["n"][-1]), c["ridge"])
        fig.add_trace(_ref([idx[0], idx[-1]], [kappa, kappa], f"kappa at n = {c['n'][-1]} (modes above are learned)"
                           if first else "", dash="dot", showlegend=first))
        first = False
    return layout(fig, "Which eigenmodes can n samples learn? Those with eigenvalue above kappa",
                  "mode index i", "kernel eigenvalue \u03bb<sub>i</sub> (of K/M)", presentation, log_x=True, log_y=True)
