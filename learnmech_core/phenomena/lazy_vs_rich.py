"""Lazy vs rich training: under the NTK parametrisation wide networks barely move; under muP they learn features.

Runs: two-layer ReLU networks (`mlp`, depth 1) of 4-6 widths, full-batch GD for the same number of steps
in two parametrisations: NTK (lr 0.5) and muP, which for two layers is the mean-field scaling
(base width 16, lr 0.05). A probe of this phenomenon records the relative change of every weight layer
and of the empirical NTK on 64 training points.

Verdict, from the final values: the fitted log-log slope of the relative hidden-weight change against
width is -1/2 +- 0.15 under NTK (Jacot et al. 2018) and 0 +- 0.15 under muP (Chizat et al. 2019; Yang &
Hu 2021). The NTK's own relative change vanishes at least as fast as the weights move and at most as
fast as its leading O(1/width) term (Dyer & Gur-Ari 2019): under NTK its slope must lie between -1 and
-1/2 with the same 0.15 slack (-0.75 +- 0.40; finite widths mix the two, we measure about -0.8); under
muP it stays O(1) (slope 0 +- 0.15).
"""

from __future__ import annotations

import numpy as np

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from .base import Phenomenon, Verdict, data_spec, run_row

PROBE = "learnmech_core.phenomena.lazy_vs_rich_probe:LazyRichProbe"
TOL = 0.15
NTK_KERNEL_SLOPE, NTK_KERNEL_TOL = -0.75, 0.40  # between -1 (O(1/width)) and -1/2, with 0.15 slack
PARAMS = {"ntk": 0.5, "mup": 0.05}  # parametrisation -> learning rate
EXPECTED_SLOPE = {"ntk": -0.5, "mup": 0.0}
BASE_WIDTH = 16
SIZE_SETTINGS = {
    # widths, steps, n_train, ntk points, probe measurements per run (besides step 0)
    "tiny": ((128, 256, 512, 1024), 100, 64, 32, 1),
    "quick": ((128, 256, 512, 1024), 400, 128, 64, 4),  # within the hosted width cap
    "full": ((128, 256, 512, 1024, 2048, 4096), 1000, 256, 128, 10),
}


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x over finite positive points (NaN if fewer than 3)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0]) if ok.sum() >= 3 else float("nan")


def width_series(runs, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(widths, final value of a history column) sorted by width; diverged runs give NaN."""
    pairs = sorted((r.spec.model.width, r.final(column) if r.status == "ok" else float("nan")) for r in runs)
    return np.array([p[0] for p in pairs], float), np.array([p[1] for p in pairs], float)


def groups(runs) -> dict:
    """Runs grouped by (parametrisation, architecture, dataset)."""
    out: dict = {}
    for run in runs:
        out.setdefault((run.spec.model.param, run.spec.model.arch, run.spec.data.name), []).append(run)
    return out


class LazyVsRich(Phenomenon):
    name = "lazy_vs_rich"
    title = "Do wide networks stop learning features under the NTK parametrisation but not under muP?"
    direction = "limits"
    sources = ("Jacot, Gabriel & Hongler 2018, Neural tangent kernel: convergence and generalization in neural "
               "networks",
               "Chizat, Oyallon & Bach 2019, On lazy training in differentiable programming",
               "Dyer & Gur-Ari 2019, Asymptotics of wide networks from Feynman diagrams")
    prediction = ("Relative change of the hidden weights scales as width^-1/2 under NTK (log-log slope -0.5 +- 0.15) "
                  "and stays O(1) under muP / mean-field (slope 0 +- 0.15); the NTK's relative change falls with a "
                  "slope between -1/2 and -1 under NTK (-0.75 +- 0.4) and stays O(1) under muP (0 +- 0.15).")
    measures = ("Relative change ||W - W0|| / ||W0|| of each layer and of the empirical NTK on 64 points after the "
                "same number of GD steps, for two-layer ReLU nets of increasing width in both parametrisations.")
    archs = ("mlp",)
    datasets = ("teacher_student",)
    allowed_datasets = ("teacher_student", "gaussian_mixture", "moons", "circles")
    upload_tasks = ("classification", "regression")
    normalisation = "each curve divided by its value at the narrowest width"

    def _grid(self, size, archs, datasets):
        widths, steps, n_train, points, measurements = SIZE_SETTINGS[size]
        return [
            RunSpec(
                model=ModelSpec(arch=arch, width=width, depth=1, activation="relu", param=param, base_width=BASE_WIDTH),
                data=data_spec(dataset, n_train, 64, dim=8),
                optim=OptimSpec(name="gd", lr=lr, steps=steps, loss="mse", eval_every=steps // 4),
                probes=ProbeSpec(log_every=10, ntk_points=points, extra=(PROBE,), extra_every=steps // measurements,
                                 save_weights=False),
            )
            for arch in archs for dataset in datasets for param, lr in PARAMS.items() for width in widths
        ]

    def verdict(self, runs) -> Verdict:
        rows, checks, details = [], [], {}
        for (param, arch, dataset), members in groups(runs).items():
            widths, change = width_series(members, "rel_change_0")
            _, kernel = width_series(members, "ntk_rel_change")
            n_ok = int(np.sum(np.isfinite(change) & (change > 0)))
            w_slope, k_slope = loglog_slope(widths, change), loglog_slope(widths, kernel)
            expected = EXPECTED_SLOPE.get(param, float("nan"))
            w_ok = bool(n_ok >= 4 and abs(w_slope - expected) <= TOL)
            k_expected, k_tol = (NTK_KERNEL_SLOPE, NTK_KERNEL_TOL) if param == "ntk" else (expected, TOL)
            k_ok = bool(np.isfinite(k_slope) and abs(k_slope - k_expected) <= k_tol)
            k_text = f"{k_expected:g} \u00b1 {k_tol:g}"
            tag = f"{param}, {arch}, {dataset}"
            checks.append((f"hidden-weight change slope ({tag})", w_slope, expected, TOL, w_ok,
                           f"{expected:g} \u00b1 {TOL:g}"))
            checks.append((f"NTK change slope ({tag})", k_slope, k_expected, k_tol, k_ok, k_text))
            details[f"weight_slope[{tag}]"], details[f"kernel_slope[{tag}]"] = w_slope, k_slope
            details[f"widths_ok[{tag}]"] = n_ok
            for r in members:
                rows.append(run_row(r, w_ok and k_ok, r.final("rel_change_0") if r.status == "ok" else None,
                                    param=param, width=r.spec.model.width, ntk_rel_change=r.final("ntk_rel_change"),
                                    group_weight_slope=w_slope, group_kernel_slope=k_slope))
        params = {key[0] for key in groups(runs)}
        if not {"ntk", "mup"} <= params:
            return Verdict(False, float("nan"), -0.5, TOL, "Needs runs in both the ntk and mup parametrisations.", rows)
        passed = all(c[4] for c in checks)
        failing = [c for c in checks if not c[4]]
        head = failing[0] if failing else next(c for c in checks if c[0].startswith("hidden-weight change slope (ntk"))
        parts = [f"{c[0]} = {c[1]:.3g} (predicted {c[5]}) {'holds' if c[4] else 'fails'}" for c in checks]
        lead = ("Lazy under NTK, rich under muP, as predicted. " if passed else
                "The width scaling differs from the prediction. ")
        return Verdict(passed, float(head[1]), float(head[2]), float(head[3]),
                       lead + "; ".join(parts) + f". Headline: {head[0]}.",
                       rows, details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_solvable as plots

        return [plots.lazy_rich_figure(runs, "rel_change_0", normalised, presentation),
                plots.lazy_rich_figure(runs, "ntk_rel_change", normalised, presentation)]


PHENOMENON = LazyVsRich()
