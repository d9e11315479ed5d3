"""Representation convergence: independently trained networks, MLPs and CNNs alike, learn similar features.

Kornblith et al. 2019 (linear CKA); Huh et al. 2024 (the platonic representation hypothesis). Each run
keeps its final weights; the verdict rebuilds every model twice (at its initial weights, from the seed,
and trained), computes the read-out layer's input features on a fixed probe batch (the first PROBE_N
test examples) and the linear CKA between every pair of runs. Pairs are "seed" pairs (same
architecture and width, different seeds) and "cross" pairs (different architectures, same width).
"""

from __future__ import annotations

import itertools

import numpy as np

from ..config import ModelSpec, OptimSpec, ProbeSpec, RunSpec
from .base import Phenomenon, Verdict, data_spec, minibatch, run_row

PROBE_N = 256

# size -> (widths, steps, n_train, seeds)
_SIZES = {
    "tiny": ((8, 64), 150, 512, (0, 1)),
    "quick": ((8, 32, 128), 400, 1024, (0, 1)),
    "full": ((8, 32, 128, 512), 3000, 1536, (0, 1, 2)),
}
_DEPTH = {"mlp": 2, "cnn": 1, "resnet": 1}


def run_features(run, trained: bool = True, data=None) -> tuple[np.ndarray, object]:
    """(features on the probe batch, dataset) of a run's model, trained (run.weights) or at initialisation."""
    import torch

    from ..train import build_model
    from .neural_collapse import readout_features

    if trained and not run.weights:
        raise ValueError(f"run {run.key} kept no final weights (probes.save_weights was off or the model too large)")
    model, data = build_model(run.spec, data=data, weights=run.weights if trained else None)
    model.eval()
    x = data.x_test[:PROBE_N]
    x = x.to(torch.float64) if run.spec.dtype == "float64" and x.is_floating_point() else x
    feats, _, _ = readout_features(model, x)
    return feats, data


def cka_matrices(runs) -> tuple[np.ndarray, np.ndarray]:
    """(trained, init) linear-CKA matrices between the runs' probe-batch features."""
    from ..representations import linear_cka

    datasets: dict[str, object] = {}
    trained, init = [], []
    for run in runs:
        key = run.spec.data.to_json() if hasattr(run.spec.data, "to_json") else repr(run.spec.data)
        f_trained, data = run_features(run, True, datasets.get(key))
        datasets[key] = data
        f_init, _ = run_features(run, False, data)
        trained.append(f_trained)
        init.append(f_init)
    n = len(runs)
    out = [np.eye(n), np.eye(n)]
    for i, j in itertools.combinations(range(n), 2):
        for m, feats in zip(out, (trained, init)):
            m[i, j] = m[j, i] = linear_cka(feats[i], feats[j])
    return out[0], out[1]


def pair_table(runs, trained: np.ndarray, init: np.ndarray) -> list[dict]:
    """One row per pair of runs at the same width: kind (seed | cross), width, CKA trained and at init."""
    rows = []
    for i, j in itertools.combinations(range(len(runs)), 2):
        a, b = runs[i].spec, runs[j].spec
        if a.model.width != b.model.width or a.data != b.data:
            continue
        same_arch = a.model.arch == b.model.arch
        if same_arch and a.seed == b.seed:
            continue
        acc = 0.5 * (runs[i].final("test_acc") + runs[j].final("test_acc"))
        rows.append({"i": i, "j": j, "kind": "seed" if same_arch else "cross",
                     "archs": f"{a.model.arch}-{b.model.arch}", "width": a.model.width,
                     "cka": float(trained[i, j]), "cka_init": float(init[i, j]), "mean_test_acc": acc})
    return rows


class RepresentationConvergence(Phenomenon):
    name = "representation_convergence"
    title = "Do independently trained networks, of different architectures too, learn the same representation?"
    direction = "universal"
    sources = (
        "Kornblith, Norouzi, Lee & Hinton 2019, Similarity of neural network representations revisited",
        "Huh, Cheung, Wang & Isola 2024, The platonic representation hypothesis",
    )
    prediction = ("Linear CKA of penultimate features between independently trained networks is higher than between "
                  "the same networks at initialisation (gain > 0 for seed pairs and for cross-architecture pairs), and "
                  "the mean CKA at the widest width exceeds that at the narrowest.")
    measures = (f"Linear CKA between the read-out inputs of every pair of runs on {PROBE_N} test examples, trained and "
                "at initialisation, for MLPs and CNNs of several widths and two seeds each.")
    archs = ("mlp", "cnn")
    datasets = ("digits",)
    allowed_archs = ("mlp", "cnn", "resnet")
    allowed_datasets = ("digits", "mnist", "fashion_mnist", "cifar10")
    upload_tasks = ("classification",)  # with mlp and resnet (cnn needs images)
    needs_weights = True  # the verdict rebuilds every trained model for its features
    normalisation = "CKA trained - CKA at initialisation"

    def _grid(self, size, archs, datasets):
        widths, steps, n_train, seeds = _SIZES[size]
        out = []
        for arch in archs:
            for dataset in datasets:
                data = data_spec(dataset, n_train, PROBE_N)
                for width in widths:
                    for seed in seeds:
                        out.append(RunSpec(
                            model=ModelSpec(arch=arch, width=width, depth=_DEPTH[arch], activation="relu"),
                            data=data,
                            optim=OptimSpec(name="adam", lr=1e-3, steps=steps, batch_size=minibatch(64, data), loss="ce",
                                            eval_every=steps // 4),
                            probes=ProbeSpec(log_every=steps // 20),
                            seed=seed,
                        ))
        return out

    def verdict(self, runs):
        ok_runs = [r for r in runs if r.status == "ok" and r.weights]
        if len(ok_runs) < 2:
            return Verdict(False, float("nan"), 0.0, 0.0, "needs at least two finished runs with saved weights")
        trained, init = cka_matrices(ok_runs)
        pairs = pair_table(ok_runs, trained, init)
        if not pairs:
            return Verdict(False, float("nan"), 0.0, 0.0, "no pairs of runs share a width: nothing to compare")
        gain = np.array([p["cka"] - p["cka_init"] for p in pairs])
        widths = sorted({p["width"] for p in pairs})
        by_width = {w: float(np.mean([p["cka"] for p in pairs if p["width"] == w])) for w in widths}
        init_by_width = {w: float(np.mean([p["cka_init"] for p in pairs if p["width"] == w])) for w in widths}
        kinds = {}
        for kind in ("seed", "cross"):
            sel = [p for p in pairs if p["kind"] == kind]
            if sel:
                kinds[kind] = (float(np.mean([p["cka"] for p in sel])), float(np.mean([p["cka_init"] for p in sel])))
        above_init = all(t > i for t, i in kinds.values())
        rises = len(widths) >= 2 and all(by_width[b] > by_width[a] for a, b in zip(widths, widths[1:]))
        rises_ends = len(widths) >= 2 and by_width[widths[-1]] > by_width[widths[0]]
        from .heavy_tailed_spectra import spearman

        rho_acc = spearman([p["mean_test_acc"] for p in pairs], [p["cka"] for p in pairs])
        passed = above_init and rises_ends
        measured = float(np.mean(gain))
        parts = [f"{k} pairs: CKA {t:.3f} trained vs {i:.3f} at init" for k, (t, i) in kinds.items()]
        width_text = ", ".join(f"{w}: {by_width[w]:.3f} (init {init_by_width[w]:.3f})" for w in widths)
        explanation = (
            "; ".join(parts) + f". Mean CKA by width {width_text} -> "
            + ("rises monotonically" if rises else "rises from the narrowest to the widest" if rises_ends
               else "does not rise") + f" with width. Rank correlation of pair CKA with the pair's mean test accuracy "
            f"{rho_acc:+.2f}. Predicted: trained above init for every pair kind, and rising with width."
        )
        rows = []
        for idx, run in enumerate(ok_runs):
            mine = [p for p in pairs if idx in (p["i"], p["j"])]
            g = float(np.mean([p["cka"] - p["cka_init"] for p in mine])) if mine else float("nan")
            rows.append(run_row(run, g > 0 if mine else None, g, width=run.spec.model.width,
                                mean_cka=float(np.mean([p["cka"] for p in mine])) if mine else float("nan"),
                                mean_cka_init=float(np.mean([p["cka_init"] for p in mine])) if mine else float("nan")))
        details = {"cka_by_width": {str(w): v for w, v in by_width.items()},
                   "cka_init_by_width": {str(w): v for w, v in init_by_width.items()},
                   "seed_pairs": kinds.get("seed"), "cross_pairs": kinds.get("cross"), "spearman_cka_accuracy": rho_acc,
                   "mean_gain": measured}
        return Verdict(passed, measured, 0.0, 0.0, explanation, per_run=rows, details=details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_laws as plots

        ok_runs = [r for r in runs if r.status == "ok" and r.weights]
        if len(ok_runs) < 2:
            return []
        trained, init = cka_matrices(ok_runs)
        return [plots.cka_heatmaps(ok_runs, trained, init, presentation),
                plots.cka_vs_width(ok_runs, pair_table(ok_runs, trained, init), normalised, presentation)]


PHENOMENON = RepresentationConvergence()
