"""Hessian outliers: the cross-entropy Hessian of a C-class problem is a bulk near 0 plus about C outliers.

Sagun, Bottou & LeCun 2017; Sagun et al. 2018; Papyan 2019. The outliers come from the Gauss-Newton
term's class structure (C - 1 of them for softmax cross-entropy, whose Hessian in the logits has rank
C - 1). Measured: the top 2C Hessian eigenvalues (Lanczos) at the end of full-batch GD, and where the
largest ratio lambda_i / lambda_{i+1} among them sits.

Settings. ReLU MLP and ResNet (64 wide, 2 layers/blocks) on gaussian_mixture in 16 dimensions with
C = 5 and 10 classes (`quick`), GD at eta = 0.1 (0.05 for the ResNet) for 300 steps, which stops at a
training loss of 0.1-0.3: once the loss is near 0 the residuals, and with them the outliers, fade
(seen on digits, which these nets fit to 100% within 100 steps; digits and the on-disk image sets take
the class counts as `classes` subsets, and the CNN runs only on them).

Source (`SOURCE`): Papyan 2019's abstract, quoted verbatim (the ICML paper; arXiv 1901.08244). The
count "about C" (C - 1 or C) is from the body of Papyan 2019/2020 and the rank of softmax
cross-entropy's Hessian in the logits (C - 1), not from the quoted sentences; the sources give no
tolerance, so the criteria below are ours, fixed before the runs. Sagun et al. 2018 (arXiv 1706.04454)
state the two-part picture: "the spectrum of the Hessian is composed of two parts: (1) the bulk centered
near zero, (2) and outliers away from the bulk".

Clauses:
1. about C outliers above the bulk: per run the largest ratio lambda_i / lambda_{i+1} among the top 2C
   sits at i = C - 1 or C; in at least `MIN_FRACTION` = 2/3 of the runs;
2. their number follows C: the class counts at which every run has it there number at least
   `MIN_CLASS_COUNTS` = 2;
3. the outliers are the Gauss-Newton term's: the share of each outlier direction's curvature that
   G = J^T H_l J carries (v^T G v / lambda for H's top C - 1 eigenvectors v) >= 0.9, smallest over the
   outlier directions of every run of the seed (the criterion was fixed before the split was measured).
   Measured by the probe `probes.gauss_newton_k` = 2C at the last step only (the runs keep no weights):
   `gauss_newton.curvature_split` of the final weights on the training set (Lanczos tol 1e-3 from a fixed
   seed); a run whose split did not converge counts as unmeasured, and the clause then fails.
The prediction holds when every clause holds together on at least 2 of 3 seeds (`combine_seeds`).

Measured at quick, seeds 0, 1, 2 (4 runs a seed; 8.3-8.5 s user CPU a seed for the whole
`verify --seeds S` process on 1 thread (LEARNMECH_THREADS=1), 33-37 s wall at load 10-11; the split
probe takes 2-6 s wall a run at that load, the top-k probe 0.4-1.9 s; a gallery build of the 3 seeds at
load 4-5 took 24.7 s wall, 8.2 s a seed, the split 0.5-2.3 s of each run's 0.8-3.7 s): every run of every seed has its
largest gap at C - 1 (4 of 5, 9 of 10), with ratios 2.37 / 2.68 / 2.56 / 2.32 (seed 0: MLP C=5, C=10,
ResNet C=5, C=10), 2.73 / 2.88 / 2.49 / 2.42 (seed 1), 3.05 / 2.92 / 2.72 / 2.01 (seed 2); both class
counts hold on every seed. G's smallest share over the outlier directions: 1.0001 / 0.9996 / 1.0000 /
0.9995 (seed 0), 0.9998 / 0.9994 / 1.0002 / 0.9996 (seed 1), 0.9995 / 0.9997 / 1.0001 / 0.9999 (seed 2);
every split converged; the residual's largest |eigenvalue| is 0.8-1.3% of lambda_1. Holds on 3 of 3
seeds, every clause. What clause 3 does not show: R is this small everywhere at these losses (G also
carries >= 0.99 of the top bulk directions, ranks C to 2C), so it separates G from R but does not test
Papyan's finer attribution of the outliers to the class means inside G. The split is not always this
lopsided: a 67-parameter tanh MLP (tests/test_gauss_newton_probe.py, loss 0.66) gives shares 0.89-0.96.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from ..data import display_name
from .base import Clause, Phenomenon, Source, Tried, Verdict, at_least, run_row

MIN_FRACTION = 2 / 3
MIN_CLASS_COUNTS = 2
GN_SHARE = 0.9  # clause 3: smallest share of an outlier direction's curvature carried by the Gauss-Newton term
SOURCE = Source("Papyan 2019, Measurements of three-level hierarchical structure in the outliers in the spectrum of "
                "deepnet Hessians, abstract",
                "We expose a structure in the derivative of the logits with respect to the parameters of the model, "
                "which is used to explain the existence of outliers in the spectrum of the Hessian. Previous works "
                "decomposed the Hessian into two components, attributing the outliers to one of them, the so-called "
                "Covariance of gradients.")
IMAGE_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
_MODELS = {"mlp": dict(width=64, depth=2, activation="relu"), "resnet": dict(width=64, depth=2, activation="relu"),
           "cnn": dict(width=16, depth=2, activation="relu")}
_LR = {"mlp": 0.1, "resnet": 0.05, "cnn": 0.1}
# size -> (class counts, n_train, steps)
_SIZES = {"tiny": ((3, 5), 128, 150), "quick": ((5, 10), 256, 300), "full": ((3, 5, 10, 20), 1024, 1000)}


def data_spec(dataset: str, classes: int, n_train: int) -> DataSpec:
    """gaussian_mixture with `classes` clusters in 16-D, or the first `classes` labels of an image set."""
    if dataset == "gaussian_mixture":
        return DataSpec(name=dataset, n_train=n_train, n_test=64, n_classes=classes, dim=16)
    if dataset in IMAGE_DATASETS:
        if classes > 10:
            raise ValueError(f"{dataset} has 10 classes; class count {classes} is too many")
        subset = tuple(range(classes)) if classes < 10 else None
        return DataSpec(name=dataset, n_train=n_train, n_test=64, classes=subset)
    return DataSpec(name=dataset, n_train=n_train, n_test=64, n_classes=classes)


def outlier_gap(run) -> dict:
    """Top-2C eigenvalues at the last measured step, the rank of the largest ratio gap and its size."""
    classes = _n_classes(run.spec)
    out = {"classes": classes, "gap_rank": None, "gap_ratio": float("nan"), "outlier_share": float("nan")}
    sp = run.spectra
    if run.status == "failed" or not len(sp):
        return out
    sp = sp[sp["kind"] == "hessian_topk"]
    if not len(sp):
        return out
    last = sp[sp["step"] == sp["step"].max()].sort_values("index")
    values = last["value"].to_numpy(dtype=float)
    if len(values) < 2 or not np.all(np.isfinite(values)) or values[0] <= 0:
        return out
    floor = max(values[0] * 1e-12, np.finfo(float).tiny)
    ratios = values[:-1] / np.maximum(values[1:], floor)
    i = int(np.argmax(ratios))
    out["gap_rank"] = i + 1
    out["gap_ratio"] = float(ratios[i])
    out["outlier_share"] = float(values[: max(classes - 1, 1)].sum() / values[values > 0].sum())
    return out


def gauss_newton_share(run, classes: int) -> dict:
    """The final step's split (probes.gauss_newton_k): G's smallest share over the top C - 1 directions of H.

    `gn_share_min` is NaN when the run has no split or its Lanczos did not converge (an uncertified share
    is not a measurement); `gn_residual_rel` is R's largest |eigenvalue| over H's largest.
    """
    out = {"gn_share_min": float("nan"), "gn_residual_rel": float("nan"), "gn_converged": None}
    sp, hist = run.spectra, run.history
    if run.status == "failed" or not len(sp) or "gn_converged" not in hist:
        return out
    converged = hist["gn_converged"].dropna()
    out["gn_converged"] = bool(len(converged) and converged.iloc[-1] == 1.0)
    split = {kind: sp[sp["kind"] == kind].sort_values("index")["value"].to_numpy(dtype=float)
             for kind in ("gn_share", "gn_hessian", "gn_residual")}
    n = max(classes - 1, 1)
    if len(split["gn_hessian"]) and split["gn_hessian"][0] > 0 and len(split["gn_residual"]):
        out["gn_residual_rel"] = float(np.max(np.abs(split["gn_residual"])) / split["gn_hessian"][0])
    if out["gn_converged"] and len(split["gn_share"]) >= n:
        out["gn_share_min"] = float(np.min(split["gn_share"][:n]))  # NaN if any share is NaN
    return out


def _n_classes(spec) -> int:
    from ..data import describe

    return describe(spec.data).n_outputs


class HessianOutliers(Phenomenon):
    name = "hessian_outliers"
    title = "Does the Hessian of a C-class network have C outliers above a bulk?"
    direction = "universal"
    sources = ("Sagun, Bottou & LeCun 2017, Eigenvalues of the Hessian in deep learning: singularity and beyond",
               "Papyan 2019, Measurements of three-level hierarchical structure in the outliers in the spectrum of "
               "deepnet Hessians (ICML 2019)")
    source = SOURCE
    tried = (Tried("digits (10 classes of 8x8 images) with the same MLP and ResNet under full-batch GD",
                   "both nets fit digits to 100% training accuracy within about 100 steps; with the loss near 0 the "
                   "residuals vanish and the outliers fade into the bulk, so the end-of-training spectrum shows no "
                   "class-count gap to judge; the grid moved to gaussian_mixture in 16-D, which stops at a training "
                   "loss of 0.1-0.3 after 300 steps"),)
    prediction = ("For $C$-class cross-entropy the Hessian is a bulk near 0 plus about $C$ outliers, which come from "
                  "its Gauss-Newton term $G = J^\\top H_\\ell J$: the largest ratio gap $\\lambda_i/\\lambda_{i+1}$ "
                  "among the top $2C$ eigenvalues sits at $i = C-1$ or $C$ in at least two thirds of the runs and in "
                  "every run of at least two class counts, and $G$ carries at least "
                  f"{GN_SHARE:.0%} of each outlier direction's curvature.")
    measures = ("The top $2C$ Hessian eigenvalues of the training loss (Lanczos) at the end of full-batch GD, for two "
                "class counts and two architectures; the rank of their largest consecutive ratio; and, on the final "
                "weights, the share $v^\\top G v/\\lambda$ of each top eigenvector's curvature that the Gauss-Newton "
                "term carries.")
    archs = ("mlp", "resnet")
    datasets = ("gaussian_mixture",)
    allowed_archs = ("mlp", "resnet", "cnn")
    allowed_datasets = ("gaussian_mixture", "digits", "mnist", "fashion_mnist", "cifar10")
    normalisation = "eigenvalue / largest against rank / C"

    def _grid(self, size, archs, datasets):
        counts, n_train, steps = _SIZES[size]
        out = []
        for dataset in datasets:
            for arch in archs:
                if arch == "cnn" and dataset not in IMAGE_DATASETS:
                    continue
                for classes in counts:
                    if dataset in IMAGE_DATASETS and classes > 10:
                        continue
                    out.append(RunSpec(
                        model=ModelSpec(arch=arch, **_MODELS[arch]),
                        data=data_spec(dataset, classes, n_train),
                        optim=OptimSpec(name="gd", lr=_LR[arch], steps=steps, loss="ce", eval_every=0),
                        probes=ProbeSpec(log_every=max(steps // 20, 1), topk_every=steps, topk=2 * classes,
                                         gauss_newton_k=2 * classes, save_weights=False),
                    ))
        if not out:
            raise ValueError(f"cnn needs an image dataset ({', '.join(IMAGE_DATASETS)}); got {', '.join(datasets)}")
        return out

    def verdict(self, runs):
        rows = []
        for run in runs:
            m = outlier_gap(run)
            c, gap = m["classes"], m["gap_rank"]
            m.update(gauss_newton_share(run, c))
            ok = run.status == "ok" and gap is not None and gap in (c - 1, c)
            rows.append(run_row(run, ok, None if gap is None else float(gap), f"largest gap at rank {c - 1} or {c}",
                                **m, label=f"{run.spec.model.arch} {display_name(run.spec.data.name)} C={c}"))
        if not rows:
            return Verdict.none("no runs to judge")
        fraction = sum(bool(r["passed"]) for r in rows) / len(rows)
        counts = sorted({r["classes"] for r in rows})
        holding = [c for c in counts if all(r["passed"] for r in rows if r["classes"] == c)]
        at_c_minus_1 = sum(r["gap_rank"] == r["classes"] - 1 for r in rows)
        shares = np.array([r["gn_share_min"] for r in rows], dtype=float)
        share = float(np.min(shares))  # every outlier direction of every run; NaN (fails) if one is unmeasured
        clauses = [
            Clause.judge("a bulk near 0 plus about C outliers",
                         "fraction of runs with the gap at C-1 or C", at_least(MIN_FRACTION), fraction),
            Clause.judge("the number of outliers follows the number of classes C",
                         "class counts at which every run has its largest gap at C-1 or C",
                         at_least(MIN_CLASS_COUNTS), float(len(holding)),
                         note=f"class counts {counts}, holding at {holding or 'none'}"),
            Clause.judge("the outliers come from the Gauss-Newton term",
                         "smallest share v\u1d40Gv/\u03bb of an outlier direction's curvature carried by G",
                         at_least(GN_SHARE), share, note=_share_note(rows)),
        ]
        parts = [f"{r['label']}: largest gap after rank {r['gap_rank']} (\u00d7{r['gap_ratio']:.2f}; predicted "
                 f"{r['classes'] - 1} or {r['classes']})" for r in rows]
        text = (f"{fraction:.0%} of runs have their largest top-2C gap at C-1 or C (needs \u2265 {MIN_FRACTION:.0%}, "
                f"and every run for \u2265 {MIN_CLASS_COUNTS} class counts; holds for C in {holding or 'none'} of "
                f"{counts}); {at_c_minus_1} of {len(rows)} at C-1, softmax cross-entropy's rank. "
                + "; ".join(parts) + f". The Gauss-Newton term G carries at least {_down(share)} of the curvature "
                f"of every run's top C-1 directions (needs \u2265 {GN_SHARE:.0%}).")
        details = {"class_counts": counts, "class_counts_holding": holding, "fraction_at_gap": fraction,
                   "runs_at_c_minus_1": at_c_minus_1, "gn_share_min": share,
                   "median_gap_ratio": float(np.nanmedian([r["gap_ratio"] for r in rows]))
                   if any(np.isfinite(r["gap_ratio"]) for r in rows) else float("nan")}
        return Verdict.of(clauses, text, rows, details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_curvature as plots

        verdict = verdict if verdict is not None else self.verdict(runs)
        return [plots.hessian_topk(runs, verdict, normalised, presentation)]


def _down(share: float) -> str:
    """A share that is a lower bound, rounded down to 3 decimals (0.9995 reads 0.999, not 1.000)."""
    return f"{math.floor(round(share * 1000, 6)) / 1000:.3f}" if np.isfinite(share) else "n/a"


def _share_note(rows) -> str:
    """G's share per run (smallest over its top C - 1) and the residual's size, or why a run has none."""
    parts = []
    for r in rows:
        if np.isfinite(r["gn_share_min"]):
            rel = r["gn_residual_rel"]
            parts.append(f"{r['label']}: \u2265 {_down(r['gn_share_min'])} (|R| \u2264 {rel:.1%} of \u03bb\u2081)")
        else:
            why = "split not converged" if r["gn_converged"] is False else "no Gauss-Newton split recorded"
            parts.append(f"{r['label']}: n/a ({why})")
    return "; ".join(parts)


PHENOMENON = HessianOutliers()
