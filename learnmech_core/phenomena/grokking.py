"""Grokking: on modular addition with weight decay, test accuracy jumps long after train accuracy saturates.

Setting (calibrated on 2 cores): (a + b) mod p from one-hot token pairs, Linear(2p, 256) -> x^2 ->
Linear(256, p), AdamW (lr 3e-3, weight decay 1, betas (0.9, 0.98)), full batch, 40% of the pairs
for training. Fourier sparsity is measured by `FourierProbe` on the first layer's weights: each
neuron's weights over the p tokens are Fourier transformed; the concentration is the fraction of the
non-constant Fourier power that sits in each neuron's dominant frequency (power-weighted over neurons):
about 0.15 for random weights at p = 47, near 1 when every neuron uses one frequency (Gromov 2023).

What the sources claim (quoted verbatim): Power et al. 2022 (abstract, `SOURCE`): networks learn "through a
process of \u201cgrokking\u201d a pattern in the data, improving generalization performance from random
chance level to perfect generalization, and that this improvement in generalization can happen well past the
point of overfitting." Nanda et al. 2023 (abstract): the network "uses discrete Fourier transforms and
trigonometric identities to convert addition to rotation about a circle", and "grokking, rather than being a
sudden shift, arises from the gradual amplification of structured mechanisms encoded in the weights,
followed by the later removal of memorizing components." Neither abstract gives a number for "well past" or
for the cleanup; the criteria below are ours, fixed before the runs of this version (the first and the
Fourier one unchanged from earlier versions):

1. "well past the point of overfitting": the step where test accuracy first reaches 90%, divided by the step
   where train accuracy first reaches 99% (memorisation), is >= `RATIO_MIN` = 5.
2. "from random chance level": test accuracy at the memorisation step is <= 10 x chance (10/p, 21% at
   p = 47): an order of magnitude above chance still leaves most held-out pairs wrong.
3. "to perfect generalization": final test accuracy >= `TEST_MIN` = 99% (perfect, less 1% for the finite
   run; it was 95% before this version, which is not "perfect").
4. Fourier mechanism (Nanda et al.): the first layer's Fourier concentration at the jump is >= `RISE_MIN` =
   1.5x its value at memorisation.
5. cleanup (Nanda et al., "later removal of memorizing components", driven by weight decay): the parameter
   norm at the end is <= `NORM_FALL_MAX` = 0.9 of its peak.

Measured at quick with 2,000 steps (the first run length of this version; p = 47, one run a seed; 1 torch
thread, load 10-13; delay = step at 90% test / step at 99% train, norm = parameter norm at the end / its peak):

| seed | delay (>= 5) | test at memorisation (<= 0.213) | final test (>= 0.99) | Fourier (>= 1.5) | norm (<= 0.9) | CPU
|---|---|---|---|---|---|---
| 0 | 16.6 | 0.000 | 0.998 | 3.21 | 0.927 fails | 10.3 s
| 1 | 15.6 | 0.001 | 0.995 | 3.07 | 0.932 fails | 11.1 s
| 2 | 18.1 | 0.000 | 0.992 | 3.27 | 0.926 fails | 8.9 s

Four clauses held on every seed; the cleanup clause failed on every seed. The parameter norm climbs from 17 to
a peak of ~70 at step ~1,200 (test accuracy 0.74-0.87, mid-jump) and was still falling at step 2,000 (64.7-64.9,
about -0.5 per 100 steps): that run stopped during the cleanup phase, so it could not test the clause. Quick
now trains 4,000 steps (the criterion, 0.9 of the peak, is unchanged; the 2,000-step result stays on the page
under "What we tried"). Measured at 4,000 steps (2 torch threads, nothing else running; 8.3 s a run):

| seed | delay | test at memorisation | final test | Fourier | norm
|---|---|---|---|---|---
| 0 | 16.6 | 0.000 | 1.000 | 3.21 | 0.877
| 1 | 15.6 | 0.001 | 0.999 | 3.07 | 0.882
| 2 | 18.1 | 0.000 | 0.998 | 3.27 | 0.870

Every clause holds on every seed; the cleanup margin is small (0.87-0.88 against 0.9). Full size (p = 97,
20,000 steps) tests it with room: `python -m learnmech_core verify grokking --size full --device cuda`.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from ..probes import Probe
from .base import Clause, Phenomenon, Source, Tried, Verdict, at_least, at_most, run_row

RATIO_MIN = 5.0  # steps to 90% test / steps to 99% train
CHANCE_MULTIPLE = 10.0  # test accuracy at memorisation <= this x chance (1/p)
TEST_MIN = 0.99  # final test accuracy ("perfect generalization")
RISE_MIN = 1.5  # Fourier concentration at the jump / at memorisation
NORM_FALL_MAX = 0.9  # final parameter norm / its peak (cleanup)


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
    "quick": (47, 0.4, 256, 3e-3, 4000, 10, 50, (0,)),
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


def grok_summary(run) -> dict:
    """The numbers of one run: memorisation and jump steps, their ratio, test accuracy at memorisation, final test
    accuracy, Fourier concentration at memorisation and at the jump, and the parameter norm's peak and end."""
    h = run.history
    s_train = first_step(h, "train_acc", 0.99)
    s_test = first_step(h, "test_acc", 0.90)
    ratio = s_test / max(s_train, 1.0) if math.isfinite(s_test) and math.isfinite(s_train) else float("nan")
    conc_mem = value_at(h, "fourier_concentration", s_train)
    conc_jump = value_at(h, "fourier_concentration", s_test)
    peak = float(h["param_norm"].max()) if "param_norm" in h else float("nan")
    final_norm = run.final("param_norm")
    return {"modulus": run.spec.data.modulus, "step_train_99": s_train, "step_test_90": s_test, "ratio": ratio,
            "test_at_memorisation": value_at(h, "test_acc", s_train), "final_test_acc": run.final("test_acc"),
            "fourier_at_memorisation": conc_mem, "fourier_at_jump": conc_jump,
            "fourier_rise": conc_jump / conc_mem if conc_mem > 0 else float("nan"),
            "param_norm_peak": peak, "param_norm_final": final_norm,
            "norm_final_over_peak": final_norm / peak if peak > 0 else float("nan"),
            "random_concentration": random_concentration(run.spec.data.modulus)}


class Grokking(Phenomenon):
    name = "grokking"
    title = "Does test accuracy jump long after the training set is memorised?"
    direction = "solvable"
    sources = (
        "Power et al. 2022, Grokking: generalization beyond overfitting on small algorithmic datasets",
        "Gromov 2023, Grokking modular arithmetic",
        "Nanda et al. 2023, Progress measures for grokking via mechanistic interpretability",
    )
    source = Source("Power, Burda, Edwards, Babuschkin & Misra 2022, abstract",
                    "In some situations we show that neural networks learn through a process of \u201cgrokking\u201d "
                    "a pattern in the data, improving generalization performance from random chance level to perfect "
                    "generalization, and that this improvement in generalization can happen well past the point of "
                    "overfitting.")
    prediction = (f"With weight decay, test accuracy reaches 90% at least {RATIO_MIN:g}x later than train accuracy "
                  f"reaches 99%; at that memorisation step test accuracy is still near chance ($\\leq "
                  f"{CHANCE_MULTIPLE:g}/p$); it ends at $\\geq {TEST_MIN:.0%}$; the first layer's Fourier "
                  f"concentration is $\\geq {RISE_MIN:g}\\times$ higher at the jump than at memorisation; and the "
                  f"parameter norm ends $\\leq {NORM_FALL_MAX:g}$ of its peak.")
    measures = ("Train and test accuracy every few steps of full-batch AdamW on (a + b) mod p; the Fourier "
                "concentration of the first layer's token weights; the parameter norm.")
    archs = ("mlp",)
    datasets = ("modular_arithmetic",)
    normalisation = "steps / step at 99% train accuracy"
    tried = (Tried("quick with 2,000 full-batch AdamW steps (p = 47, width 256, lr 3e-3, weight decay 1)",
                   "the cleanup clause failed on every seed: parameter norm at the end 0.927 / 0.932 / 0.926 of its "
                   "peak (needs <= 0.9), still falling about 0.5 per 100 steps when the run stopped; the other four "
                   "clauses held on every seed. Quick now trains 4,000 steps; the criterion is unchanged.",
                   "0, 1, 2"),)

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
        rows = [run_row(run, None, None, at_least(RATIO_MIN), **grok_summary(run)) for run in runs]
        if not rows:
            return Verdict.none("no runs to judge")
        ok = [r for r in rows if r["status"] == "ok"] or rows
        worst = {  # the least favourable run for each number (one run per seed at quick)
            "ratio": min(r["ratio"] if math.isfinite(r["ratio"]) else -math.inf for r in ok),
            "test_at_memorisation": max(r["test_at_memorisation"] if math.isfinite(r["test_at_memorisation"])
                                        else math.inf for r in ok),
            "final_test_acc": min(r["final_test_acc"] if math.isfinite(r["final_test_acc"]) else -math.inf
                                  for r in ok),
            "fourier_rise": min(r["fourier_rise"] if math.isfinite(r["fourier_rise"]) else -math.inf for r in ok),
            "norm_final_over_peak": max(r["norm_final_over_peak"] if math.isfinite(r["norm_final_over_peak"])
                                        else math.inf for r in ok)}
        moduli = {r["modulus"] for r in ok}
        chance = CHANCE_MULTIPLE / max(moduli)
        clauses = [
            Clause.judge("generalization comes well past the point of overfitting",
                         "step at 90% test accuracy / step at 99% train accuracy", at_least(RATIO_MIN), worst["ratio"]),
            Clause.judge("from random chance level", "test accuracy when train accuracy first reaches 99%",
                         at_most(round(chance, 4)), worst["test_at_memorisation"],
                         note=f"{CHANCE_MULTIPLE:g} x chance (1/p, p = {max(moduli)})"),
            Clause.judge("to perfect generalization", "final test accuracy", at_least(TEST_MIN),
                         worst["final_test_acc"]),
            Clause.judge("the network comes to use a few Fourier frequencies (Nanda et al.)",
                         "Fourier concentration of the first layer at the jump / at memorisation", at_least(RISE_MIN),
                         worst["fourier_rise"]),
            Clause.judge("memorising components are removed later (cleanup, Nanda et al.)",
                         "parameter norm at the end / its peak", at_most(NORM_FALL_MAX), worst["norm_final_over_peak"]),
        ]
        keys = ("ratio", "test_at_memorisation", "final_test_acc", "fourier_rise", "norm_final_over_peak")
        for row in rows:  # each run judged by every clause's criterion
            row["passed"] = row["status"] == "ok" and all(c.criterion.holds(row[k])
                                                          for c, k in zip(clauses, keys, strict=True))
            row["measured"] = row["ratio"] if math.isfinite(row["ratio"]) else None
        never = sum(1 for r in rows if not math.isfinite(r["step_test_90"]))
        explanation = (
            f"Steps to 90% test / steps to 99% train = {_join([r['ratio'] for r in rows])} (needs >= {RATIO_MIN:g}); "
            f"test accuracy at memorisation {_join([r['test_at_memorisation'] for r in rows], '.3f')} (needs <= "
            f"{chance:.3f} = {CHANCE_MULTIPLE:g}/p); final test accuracy "
            f"{_join([r['final_test_acc'] for r in rows], '.3f')} (needs >= {TEST_MIN:.2f}); Fourier concentration of "
            f"the first layer rises "
            f"{_join([r['fourier_rise'] for r in rows])}x between memorisation and the jump (needs >= {RISE_MIN:g}x); "
            f"parameter norm peaks at {_join([r['param_norm_peak'] for r in rows], '.1f')} and ends at "
            f"{_join([r['param_norm_final'] for r in rows], '.1f')} (final / peak "
            f"{_join([r['norm_final_over_peak'] for r in rows])}, needs <= {NORM_FALL_MAX:g})."
        )
        if never:
            explanation += f" {never} run(s) never reached 90% test accuracy: no grokking in this setting."
        details = {"min_ratio": worst["ratio"], "min_final_test_acc": worst["final_test_acc"],
                   "min_fourier_rise": worst["fourier_rise"], "max_test_at_memorisation": worst["test_at_memorisation"],
                   "max_norm_final_over_peak": worst["norm_final_over_peak"]}
        return Verdict.of(clauses, explanation, rows, {k: v if math.isfinite(v) else float("nan")
                                                       for k, v in details.items()})

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_laws as plots

        summaries = {run.spec.key(): grok_summary(run) for run in runs}
        return [plots.grokking_accuracy(runs, summaries, RATIO_MIN, normalised, presentation),
                plots.grokking_fourier(runs, summaries, presentation),
                plots.grokking_spectrum(runs, presentation)]


def _join(values, fmt: str = ".3g") -> str:
    return ", ".join("n/a" if v is None or not math.isfinite(v) else format(v, fmt) for v in values)


PHENOMENON = Grokking()
