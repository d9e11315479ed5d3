"""Heavy-tailed self-regularisation: weight spectra go from Marchenko-Pastur to power-law tails.

Martin & Mahoney 2021. The weight-spectra probe (`ProbeSpec.esd_every`) gives, per weight layer, the
power-law exponent alpha of the ESD's tail (`alpha_<layer>`, WeightWatcher's fit) and the KS distance of
the bulk to a fitted Marchenko-Pastur law (`mp_ks_<layer>`). We judge layers whose ESD has at least
MIN_EIGENVALUES eigenvalues (the read-out's 10 eigenvalues cannot carry a tail). The sweep over learning
rate and batch size gives runs of different quality; the rank correlation between mean alpha and test
error across it is reported with its sign, whatever its strength.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from .base import Phenomenon, Verdict, data_spec, minibatch, run_row

MIN_EIGENVALUES = 32
MP_KS_MAX = 0.1  # mean KS distance to Marchenko-Pastur at initialisation

# size -> (width, depth, n_train, steps, learning rates, batch sizes, seeds)
_SIZES = {
    "tiny": (256, 2, 512, 200, (0.05, 0.2), (16,), (0,)),
    "quick": (256, 2, 1024, 600, (0.02, 0.05, 0.1, 0.2), (16, 128), (0,)),
    "full": (512, 3, 1536, 5000, (0.01, 0.02, 0.05, 0.1, 0.2, 0.4), (8, 32, 128, 512), (0, 1)),
}


def judged_layers(run) -> list[str]:
    """Layers with at least MIN_EIGENVALUES eigenvalues in their ESD (from the spectra rows)."""
    sp = run.spectra
    if not len(sp):
        return []
    esd = sp[sp["kind"] == "weight_esd"]
    first = esd[esd["step"] == esd["step"].min()]
    counts = first.groupby("layer")["index"].count()
    return [layer for layer, m in counts.items() if m >= MIN_EIGENVALUES]


def mean_over_layers(history, prefix: str, layers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean of `<prefix><layer>` over layers) at the steps where the probe ran."""
    cols = [f"{prefix}{layer}" for layer in layers if f"{prefix}{layer}" in history]
    if not cols:
        return np.array([]), np.array([])
    h = history.dropna(subset=cols, how="all")
    return h["step"].to_numpy(dtype=float), np.nanmean(h[cols].to_numpy(dtype=float), axis=1)


def spectra_summary(run) -> dict:
    """Mean alpha over judged layers at init and at the end, MP KS at init, and the final test error."""
    layers = judged_layers(run)
    steps, alpha = mean_over_layers(run.history, "alpha_", layers)
    _, ks = mean_over_layers(run.history, "mp_ks_", layers)
    nan = float("nan")
    return {"layers": len(layers), "alpha_init": float(alpha[0]) if len(alpha) else nan,
            "alpha_final": float(alpha[-1]) if len(alpha) else nan,
            "mp_ks_init": float(ks[0]) if len(ks) else nan, "mp_ks_final": float(ks[-1]) if len(ks) else nan,
            "test_error": 1.0 - run.final("test_acc")}


def spearman(x, y) -> float:
    """Spearman rank correlation (NaN with fewer than 3 finite pairs or a constant input)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return float("nan")
    return float(spearmanr(x[keep], y[keep]).statistic)


class HeavyTailedSpectra(Phenomenon):
    name = "heavy_tailed_spectra"
    title = "Do trained weight spectra grow power-law tails, and do heavier tails go with better test accuracy?"
    direction = "universal"
    sources = ("Martin & Mahoney 2021, Implicit self-regularization in deep neural networks: evidence from random "
               "matrix theory and implications for learning",)
    prediction = (f"At initialisation weight ESDs fit Marchenko-Pastur (KS distance <= {MP_KS_MAX:g}); with training the "
                  "power-law exponent alpha falls in every run, and across runs of different quality lower alpha goes "
                  "with lower test error (positive rank correlation between alpha and test error).")
    measures = (f"Per-layer ESDs of W^T W / N (layers with >= {MIN_EIGENVALUES} eigenvalues) at the start, middle and end "
                "of training, over a sweep of learning rates and batch sizes; the power-law alpha and the MP KS distance.")
    archs = ("mlp",)
    datasets = ("digits",)
    allowed_archs = ("mlp", "resnet", "cnn")
    allowed_datasets = ("digits", "gaussian_mixture", "mnist", "fashion_mnist", "cifar10")
    upload_tasks = ("classification",)
    normalisation = "alpha / alpha at initialisation"

    def _grid(self, size, archs, datasets):
        width, depth, n_train, steps, lrs, batches, seeds = _SIZES[size]
        out = []
        for arch in archs:
            for dataset in datasets:
                data = data_spec(dataset, n_train, 512 if n_train <= 1024 else 256)
                for seed in seeds:
                    for batch in batches:
                        for lr in lrs:
                            out.append(RunSpec(
                                model=ModelSpec(arch=arch, width=width, depth=depth, activation="relu"),
                                data=data,
                                optim=OptimSpec(name="sgd", lr=lr, steps=steps, batch_size=minibatch(batch, data), loss="ce",
                                                eval_every=steps // 10),
                                probes=ProbeSpec(log_every=steps // 10, esd_every=steps // 2, save_weights=False),
                                seed=seed,
                            ))
        return out

    def verdict(self, runs):
        rows = []
        for run in runs:
            s = spectra_summary(run)
            ok = (run.status == "ok" and s["mp_ks_init"] <= MP_KS_MAX and s["alpha_final"] < s["alpha_init"])
            ratio = s["alpha_final"] / s["alpha_init"] if s["alpha_init"] > 0 else float("nan")
            rows.append(run_row(run, ok, ratio, lr=run.spec.optim.lr, batch_size=run.spec.optim.batch_size,
                                alpha_ratio=ratio, **s))
        if not rows:
            return Verdict(False, float("nan"), 1.0, 0.0, "no runs to judge")
        rho = spearman([r["alpha_final"] for r in rows], [r["test_error"] for r in rows])
        ratios = [r["alpha_ratio"] for r in rows]
        worst = float(np.nanmax(ratios)) if np.isfinite(ratios).any() else float("nan")
        ks = [r["mp_ks_init"] for r in rows]
        passed = all(r["passed"] for r in rows)
        sign = ("n/a" if not math.isfinite(rho) else "positive: lower alpha, lower test error" if rho > 0
                else "negative: lower alpha, higher test error" if rho < 0 else "zero")
        strength = ("" if not math.isfinite(rho) else " (weak)" if abs(rho) < 0.4 else " (moderate)" if abs(rho) < 0.7
                    else " (strong)")
        fell = sum(1 for r in rows if r["alpha_final"] < r["alpha_init"])
        explanation = (
            f"At initialisation the mean MP KS distance is {np.nanmin(ks):.3f}-{np.nanmax(ks):.3f} (needs <= {MP_KS_MAX:g}); "
            f"mean alpha falls from {np.nanmean([r['alpha_init'] for r in rows]):.2f} to "
            f"{np.nanmean([r['alpha_final'] for r in rows]):.2f} on average, in {fell} of {len(rows)} runs (final/initial "
            f"at most {worst:.3f}, needs < 1). Across the {len(rows)}-run sweep the Spearman correlation between final "
            f"alpha and test error is {rho:+.2f}, {sign}{strength}; the prediction is positive."
        )
        details = {"spearman_alpha_test_error": rho, "max_alpha_ratio": worst, "max_mp_ks_init": float(np.nanmax(ks)),
                   "mean_alpha_init": float(np.nanmean([r["alpha_init"] for r in rows])),
                   "mean_alpha_final": float(np.nanmean([r["alpha_final"] for r in rows]))}
        return Verdict(passed, worst, 1.0, 0.0, explanation, per_run=rows, details=details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_laws as plots

        return [plots.esd_before_after(runs, presentation), plots.alpha_trajectories(runs, normalised, presentation),
                plots.alpha_vs_error(runs, verdict, presentation)]


PHENOMENON = HeavyTailedSpectra()
