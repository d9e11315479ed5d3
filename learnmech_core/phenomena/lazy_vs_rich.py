"""Lazy vs rich training: under the NTK parametrisation wide networks barely move; under muP they learn features.

Runs: two-layer ReLU networks (`mlp`, depth 1) of 4-6 widths, full-batch GD for the same number of steps
in two parametrisations: NTK (lr 0.5) and muP, which for two layers is the mean-field scaling
(base width 16, lr 0.05). A probe of this phenomenon records the relative change of every weight layer
and of the empirical NTK on 64 training points.

Source (`source`): Chizat, Oyallon & Bach 2019, abstract: lazy training "is due to a choice of scaling".
The numbers are the theory's, not a measurement's. Clauses, criteria fixed before the runs (the papers
give exponents, no tolerance; the fit slack 0.15 on a log-log slope over a 4-8x width range is ours and
has been this module's since it was written):
1. NTK parametrisation: each hidden weight moves O(n^-1/2) while the output changes O(1) (Jacot et al.
   2018; Chizat et al. 2019), so ||W1 - W1(0)|| / ||W1(0)|| has log-log slope -1/2 against width:
   within 0.15 of -0.5.
2. muP / mean field (Chizat et al. 2019; Yang & Hu 2021): features move O(1): slope within 0.15 of 0.
3. NTK parametrisation: the tangent kernel "stays constant during training" in the limit (Jacot et al.
   2018); its change is bounded by O(n^-1/2) (Lee et al. 2019, Theorem 2.1) and its leading term is
   O(n^-1) (Dyer & Gur-Ari 2019): slope between -1 and -1/2, widened by the same 0.15 (-1.15 to -0.35).
   (Until this rewrite the band was -0.75 +- 0.40, centred on a measured -0.8.)
4. muP / mean field: the kernel keeps moving O(1): slope within 0.15 of 0.
Each clause takes the group (architecture, dataset) farthest from its target; at least 4 widths must
finish.

Measured at quick (seeds 0, 1, 2; 1 torch thread, load average 10 on 2 cores: 9.5 s CPU, 38 s wall for
the three seeds): NTK weight slope -0.503 / -0.489 / -0.509; muP weight slope -0.025 / -0.033 / -0.027;
NTK kernel slope -0.834 / -0.775 / -0.708; muP kernel slope 0.048 / 0.034 / 0.019. Every clause holds on
every seed.
"""

from __future__ import annotations

import numpy as np

from ..config import ModelSpec, OptimSpec, ProbeSpec, RunSpec
from .base import Clause, Phenomenon, Source, Verdict, between, data_spec, loglog_slope, run_row, within, worst_value

PROBE = "learnmech_core.phenomena.lazy_vs_rich_probe:LazyRichProbe"
TOL = 0.15
MIN_WIDTHS = 4  # finished widths a slope needs
NTK_KERNEL_RANGE = (-1.0, -0.5)  # O(1/width) leading term .. O(width^-1/2) bound; judged with TOL slack
PARAMS = {"ntk": 0.5, "mup": 0.05}  # parametrisation -> learning rate
EXPECTED_SLOPE = {"ntk": -0.5, "mup": 0.0}
BASE_WIDTH = 16
SIZE_SETTINGS = {
    # widths, steps, n_train, ntk points, probe measurements per run (besides step 0)
    "tiny": ((128, 256, 512, 1024), 100, 64, 32, 1),
    "quick": ((128, 256, 512, 1024), 400, 128, 64, 4),  # within the hosted width cap
    "full": ((128, 256, 512, 1024, 2048, 4096), 1000, 256, 128, 10),
}


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


def group_slopes(members) -> dict:
    """Widths, final hidden-weight and kernel changes, their log-log slopes and how many widths finished."""
    widths, change = width_series(members, "rel_change_0")
    _, kernel = width_series(members, "ntk_rel_change")
    n_ok = int(np.sum(np.isfinite(change) & (change > 0)))
    weight = loglog_slope(widths, change) if n_ok >= MIN_WIDTHS else float("nan")
    return {"widths": widths, "change": change, "kernel": kernel, "n_ok": n_ok, "weight_slope": weight,
            "kernel_slope": loglog_slope(widths, kernel) if n_ok >= MIN_WIDTHS else float("nan")}


def criteria(param: str) -> tuple:
    """(hidden-weight criterion, kernel criterion) of a parametrisation."""
    if param == "ntk":
        return within(EXPECTED_SLOPE["ntk"], TOL), between(NTK_KERNEL_RANGE[0] - TOL, NTK_KERNEL_RANGE[1] + TOL)
    return within(EXPECTED_SLOPE["mup"], TOL), within(EXPECTED_SLOPE["mup"], TOL)


def figure_summary(runs) -> dict:
    """What the figures draw: per (parametrisation, architecture, dataset) the widths, both changes, the
    predicted slopes to draw through the points and the runs' specs (for hover text)."""
    out = []
    for (param, arch, dataset), members in groups(runs).items():
        g = group_slopes(members)
        kernel_slopes = list(NTK_KERNEL_RANGE) if param == "ntk" else [EXPECTED_SLOPE.get(param, 0.0)]
        out.append({"param": param, "arch": arch, "dataset": dataset, "widths": g["widths"],
                    "rel_change_0": g["change"], "ntk_rel_change": g["kernel"],
                    "predicted": {"rel_change_0": [EXPECTED_SLOPE.get(param, 0.0)], "ntk_rel_change": kernel_slopes},
                    "specs": [r.spec for r in sorted(members, key=lambda r: r.spec.model.width)]})
    return {"groups": out}


class LazyVsRich(Phenomenon):
    name = "lazy_vs_rich"
    title = "Do wide networks stop learning features under the NTK parametrisation but not under muP?"
    direction = "limits"
    sources = ("Jacot, Gabriel & Hongler 2018, Neural tangent kernel: convergence and generalization in neural "
               "networks",
               "Chizat, Oyallon & Bach 2019, On lazy training in differentiable programming",
               "Lee et al. 2019, Wide neural networks of any depth evolve as linear models under gradient descent",
               "Dyer & Gur-Ari 2019, Asymptotics of wide networks from Feynman diagrams",
               "Yang & Hu 2021, Tensor programs IV: feature learning in infinite-width neural networks")
    source = Source("Chizat, Oyallon & Bach 2019, On lazy training in differentiable programming (NeurIPS 2019), "
                    "abstract",
                    "In this work, we show that this \"lazy training\" phenomenon is not specific to "
                    "over-parameterized neural networks, and is due to a choice of scaling, often implicit, that makes "
                    "the model behave as its linearization around the initialization, thus yielding a model "
                    "equivalent to learning with positive-definite kernels.")
    prediction = ("Under the NTK parametrisation the relative change of the hidden weights "
                  "$\\|W_1 - W_1(0)\\| / \\|W_1(0)\\|$ falls as $n^{-1/2}$ with the width $n$ (log-log slope "
                  "$-0.5 \\pm 0.15$) and the tangent kernel's relative change $\\|K - K_0\\| / \\|K_0\\|$ falls "
                  "between $n^{-1/2}$ and $n^{-1}$ (slope between $-1.15$ and $-0.35$); under muP / mean field both "
                  "stay $O(1)$ (slopes $0 \\pm 0.15$).")
    measures = ("Relative change of each layer and of the empirical NTK on 64 points after the same number of GD "
                "steps, for two-layer ReLU nets of increasing width in both parametrisations.")
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
        rows, details = [], {}
        slopes: dict = {(p, q): [] for p in PARAMS for q in ("weight", "kernel")}
        for (param, arch, dataset), members in groups(runs).items():
            g = group_slopes(members)
            w_crit, k_crit = criteria(param)
            tag = f"{param}, {arch}, {dataset}"
            details[f"weight_slope[{tag}]"], details[f"kernel_slope[{tag}]"] = g["weight_slope"], g["kernel_slope"]
            details[f"widths_ok[{tag}]"] = g["n_ok"]
            if param in PARAMS:
                slopes[(param, "weight")].append(g["weight_slope"])
                slopes[(param, "kernel")].append(g["kernel_slope"])
            for r in members:
                rows.append(run_row(r, None, r.final("rel_change_0") if r.status == "ok" else None,
                                    f"group slope {w_crit.text}", param=param, width=r.spec.model.width,
                                    ntk_rel_change=r.final("ntk_rel_change"), group_weight_slope=g["weight_slope"],
                                    group_kernel_slope=g["kernel_slope"]))
        if not slopes[("ntk", "weight")] or not slopes[("mup", "weight")]:
            return Verdict.none("Needs runs in both the ntk and mup parametrisations.")
        (ntk_w, ntk_k), (mup_w, mup_k) = criteria("ntk"), criteria("mup")
        clauses = [
            Clause.judge("NTK parametrisation: hidden weights move as $n^{-1/2}$ with the width $n$ (lazy)",
                         "log-log slope of the relative hidden-weight change against width (NTK)", ntk_w,
                         worst_value(slopes[("ntk", "weight")], ntk_w)),
            Clause.judge("muP / mean field: hidden weights keep moving $O(1)$ (features are learned)",
                         "log-log slope of the relative hidden-weight change against width (muP)", mup_w,
                         worst_value(slopes[("mup", "weight")], mup_w)),
            Clause.judge("NTK parametrisation: the tangent kernel freezes as width grows",
                         "log-log slope of the relative NTK change against width (NTK)", ntk_k,
                         worst_value(slopes[("ntk", "kernel")], ntk_k)),
            Clause.judge("muP / mean field: the tangent kernel keeps moving $O(1)$",
                         "log-log slope of the relative NTK change against width (muP)", mup_k,
                         worst_value(slopes[("mup", "kernel")], mup_k)),
        ]
        failing = [c for c in clauses if not c.passed]
        lead = ("Lazy under NTK, rich under muP, as predicted. " if not failing else
                f"{len(failing)} of {len(clauses)} clauses miss the predicted width scaling. ")
        return Verdict.of(clauses, lead + "; ".join(c.line() for c in clauses) + ".", rows, details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_solvable as plots

        summary = figure_summary(runs)
        return [plots.lazy_rich_figure(summary, "rel_change_0", normalised, presentation),
                plots.lazy_rich_figure(summary, "ntk_rel_change", normalised, presentation)]


PHENOMENON = LazyVsRich()
