"""Grokking: on modular addition with weight decay, test accuracy jumps long after train accuracy saturates.

Setting (calibrated on 2 cores): (a + b) mod p from one-hot token pairs, Linear(2p, 256) -> x^2 ->
Linear(256, p), AdamW (lr 3e-3, weight decay 1, betas (0.9, 0.98)), full batch, 40% of the pairs
for training. Fourier sparsity is measured by `FourierProbe` on the first layer's weights: each
neuron's weights over the p tokens are Fourier transformed; the concentration is the fraction of the
non-constant Fourier power that sits in each neuron's dominant frequency (power-weighted over neurons):
about 0.15 for random weights at p = 47, near 1 when every neuron uses one frequency (Gromov 2023).
"""

from __future__ import annotations

import math

import numpy as np

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from ..probes import Probe
from .base import Phenomenon, Verdict, run_row

RATIO_MIN = 5.0  # steps to 90% test / steps to 99% train
TEST_MIN = 0.95  # final test accuracy
RISE_MIN = 1.5  # Fourier concentration at the jump / at memorisation


def first_layer_token_weights(model, vocab: int) -> tuple[str, np.ndarray]:
    """(layer name, rows x vocab array): the first weight layer's weights over the tokens of each position."""
    from ..models import PEmbedding, weight_layers

    name, layer = weight_layers(model)[0]
    w = layer.weight.detach().to("cpu").double().numpy()
    if isinstance(layer, PEmbedding):
        return name, w.T
    if w.ndim != 2 or w.shape[1] % vocab:
        raise ValueError(f"the first layer ({name}, shape {w.shape}) does not read one-hot tokens of vocab {vocab}")
    return name, w.reshape(w.shape[0] * (w.shape[1] // vocab), vocab)


def fourier_power(rows: np.ndarray) -> np.ndarray:
    """Power |DFT|^2 of each row over the token axis at frequencies 0..floor(p/2) (+k and -k combined)."""
    p = rows.shape[1]
    power = np.abs(np.fft.rfft(rows, axis=1)) ** 2
    if p % 2 == 0:
        power[:, 1:-1] *= 2.0
    else:
        power[:, 1:] *= 2.0
    return power


def fourier_concentration(rows: np.ndarray) -> float:
    """Power-weighted fraction of each row's non-constant Fourier power in its dominant frequency."""
    power = fourier_power(rows)[:, 1:]
    total = power.sum()
    return float(power.max(axis=1).sum() / total) if total > 0 else float("nan")


def random_concentration(vocab: int, rows: int = 4096, seed: int = 0) -> float:
    """Fourier concentration of i.i.d. Gaussian weights over `vocab` tokens (the no-structure baseline)."""
    return fourier_concentration(np.random.default_rng(seed).standard_normal((rows, vocab)))


class FourierProbe(Probe):
    """Fourier concentration of the first layer's token weights; rows `fourier_power` per frequency."""

    name = "fourier"
    columns = ("fourier_concentration",)
    needs_finite = True

    def measure(self, ctx):
        vocab = ctx.spec.data.modulus
        layer, rows = first_layer_token_weights(ctx.model, vocab)
        spectrum = fourier_power(rows).sum(axis=0)
        return ({"fourier_concentration": fourier_concentration(rows)},
                [("fourier_power", layer, k, float(v)) for k, v in enumerate(spectrum)])


PROBE = "learnmech_core.phenomena.grokking:FourierProbe"

# size -> (modulus, train fraction, width, lr, steps, eval_every, probe every, seeds)
_SIZES = {
    "tiny": (31, 0.6, 128, 5e-3, 700, 10, 50, (0,)),
    "quick": (47, 0.4, 256, 3e-3, 2000, 10, 50, (0,)),
    "full": (97, 0.3, 512, 3e-3, 20000, 20, 200, (0, 1, 2)),
}


def first_step(history, column: str, threshold: float) -> float:
    """First logged step where a column reaches a threshold (NaN if never)."""
    if column not in history:
        return float("nan")
    rows = history.dropna(subset=[column])
    hit = rows["step"][rows[column] >= threshold]
    return float(hit.iloc[0]) if len(hit) else float("nan")


def value_at(history, column: str, step: float) -> float:
    """Value of a column at the logged step nearest to `step` (among rows that have it)."""
    if column not in history or not math.isfinite(step):
        return float("nan")
    rows = history.dropna(subset=[column])
    if not len(rows):
        return float("nan")
    i = int(np.argmin(np.abs(rows["step"].to_numpy(dtype=float) - step)))
    return float(rows[column].iloc[i])


class Grokking(Phenomenon):
    name = "grokking"
    title = "Does test accuracy jump long after the training set is memorised?"
    direction = "solvable"
    sources = (
        "Power et al. 2022, Grokking: generalization beyond overfitting on small algorithmic datasets",
        "Gromov 2023, Grokking modular arithmetic",
        "Nanda et al. 2023, Progress measures for grokking via mechanistic interpretability",
    )
    prediction = (f"With weight decay, the step at which test accuracy reaches 90% is at least {RATIO_MIN:g}x the "
                  f"step at which train accuracy reaches 99%, final test accuracy is at least {TEST_MIN:.0%}, and the "
                  "first layer becomes sparse in the Fourier basis when test accuracy jumps.")
    measures = ("Train and test accuracy every few steps of full-batch AdamW on (a + b) mod p; the Fourier "
                "concentration of the first layer's token weights; the parameter norm.")
    archs = ("mlp",)
    datasets = ("modular_arithmetic",)
    normalisation = "steps / step at 99% train accuracy"

    def _grid(self, size, archs, datasets):
        p, frac, width, lr, steps, eval_every, every, seeds = _SIZES[size]
        n_pairs = p * p
        n_train = int(round(frac * n_pairs))
        out = []
        for arch in archs:
            for dataset in datasets:
                for seed in seeds:
                    out.append(RunSpec(
                        model=ModelSpec(arch=arch, depth=1, width=width, activation="quadratic"),
                        data=DataSpec(name=dataset, modulus=p, n_train=n_train, n_test=n_pairs - n_train),
                        optim=OptimSpec(name="adamw", lr=lr, weight_decay=1.0, beta2=0.98, loss="ce",
                                        steps=steps, eval_every=eval_every),
                        probes=ProbeSpec(log_every=eval_every, extra=(PROBE,), extra_every=every),
                        seed=seed,
                    ))
        return out

    def verdict(self, runs):
        rows = []
        for run in runs:
            h = run.history
            s_train = first_step(h, "train_acc", 0.99)
            s_test = first_step(h, "test_acc", 0.90)
            ratio = s_test / max(s_train, 1.0) if math.isfinite(s_test) and math.isfinite(s_train) else float("nan")
            final_test = run.final("test_acc")
            conc_mem = value_at(h, "fourier_concentration", s_train)
            conc_jump = value_at(h, "fourier_concentration", s_test)
            rise = conc_jump / conc_mem if conc_mem > 0 else float("nan")
            ok = (run.status == "ok" and ratio >= RATIO_MIN and final_test >= TEST_MIN and rise >= RISE_MIN)
            rows.append(run_row(run, ok, ratio, step_train_99=s_train, step_test_90=s_test, final_test_acc=final_test,
                                fourier_at_memorisation=conc_mem, fourier_at_jump=conc_jump, fourier_rise=rise,
                                param_norm_peak=float(h["param_norm"].max()) if "param_norm" in h else float("nan"),
                                param_norm_final=run.final("param_norm")))
        if not rows:
            return Verdict(False, float("nan"), RATIO_MIN, 0.0, "no runs to judge")
        ratios = np.array([r["step_test_90"] / max(r["step_train_99"], 1.0) for r in rows], dtype=float)
        worst = float(np.nanmin(ratios)) if np.isfinite(ratios).any() else float("nan")
        passed = all(r["passed"] for r in rows)
        tests = [r["final_test_acc"] for r in rows]
        rises = [r["fourier_rise"] for r in rows]
        norms = [(r["param_norm_peak"], r["param_norm_final"]) for r in rows]
        never = sum(1 for r in rows if not math.isfinite(r["step_test_90"]))
        explanation = (
            f"Steps to 90% test / steps to 99% train = {_join(ratios)} (needs >= {RATIO_MIN:g}); final test accuracy "
            f"{_join(tests, '.3f')} (needs >= {TEST_MIN:.2f}); Fourier concentration of the first layer rises "
            f"{_join(rises)}x between memorisation and the jump (needs >= {RISE_MIN:g}x); parameter norm peaks at "
            f"{_join([a for a, _ in norms], '.1f')} and ends at {_join([b for _, b in norms], '.1f')}."
        )
        if never:
            explanation += f" {never} run(s) never reached 90% test accuracy: no grokking in this setting."
        return Verdict(passed, worst, RATIO_MIN, 0.0, explanation, per_run=rows,
                       details={"min_ratio": worst, "min_final_test_acc": float(np.nanmin(tests)),
                                "min_fourier_rise": float(np.nanmin(rises)) if np.isfinite(rises).any() else float("nan")})

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_laws as plots

        return [plots.grokking_accuracy(runs, verdict, normalised, presentation),
                plots.grokking_fourier(runs, presentation),
                plots.grokking_spectrum(runs, presentation)]


def _join(values, fmt: str = ".3g") -> str:
    return ", ".join("n/a" if v is None or not math.isfinite(v) else format(v, fmt) for v in values)


PHENOMENON = Grokking()
