"""Neural collapse: past zero training error, features collapse to class means forming a simplex ETF.

Papyan, Han & Donoho 2020; with the MSE loss (Han, Papyan & Donoho 2022), which on digits collapses
far faster than cross-entropy (calibrated: CE with weight decay leaves NC1 at 0.1-0.3 and rising in
the terminal phase; MSE with SGD momentum, lr 0.1, weight decay 5e-4 takes the MLP's NC1 down 1000x).
The CNN collapses once its convolutions feed a fully connected hidden layer (`head_width`, as in
LeNet/VGG, whose penultimate layer Papyan et al. measured); the ResNet, read out after a global average
pool, stays 0.1 from a simplex ETF at quick size, so the quick verdict fails there (shown, not hidden).

Measured at quick (digits, n_train 1024, seed 0, 1 torch thread, another process on the second core;
40.8 s in all):

| arch | NC1 init -> at 100% train acc -> final | ETF deviation | NCC agreement |
|---|---|---|---|
| mlp 3x256, lr 0.1, wd 5e-4 | 1.25 -> 0.028 (step 200) -> 0.0016 (804x; 18x in the terminal phase) | 0.038 | 1.000 |
| cnn 2x64 + dense 256, lr 0.2, wd 1e-3 | 1.05 -> 0.030 (step 200) -> 0.0080 (130x; 3.8x) | 0.045 | 1.000 |
| resnet 1x16 | 9.16 -> (train accuracy ends at 0.993, no terminal phase) -> 0.189 (48x) | 0.097 | 0.994 |

The CNN's dense head, single runs at 1200 steps (ETF deviation at the end): lr 0.1 0.064 (128 units on
width 32: 0.072); lr 0.1 for 2400 steps 0.054; weight decay 2e-3 at lr 0.1 0.061; lr 0.2 0.047 (wd 5e-4)
and 0.045 / 0.049 / 0.043 for seeds 0 / 1 / 2 (wd 1e-3). A class-balanced training subset (102 per class
instead of 86-113) changed nothing (0.121 vs 0.120 without the head).

Tried on the conv nets without the head (single runs, seed 0, ETF deviation at the end; cnn width 64
depth 2, n_train 1024, 1200 steps unless noted), none reaching 0.05 with 100% train accuracy inside
the budget:

- weight decay up (Rangamani & Banburski 2022; Tirer & Bruna 2022): 2e-3 / 5e-3 (n 512, 600 steps)
  0.116 / 0.135 with NC1 falls of only 5x / 3x; 2e-3 at lr 0.2: 0.105; 1e-2 with cosine decay 0.166 at
  98.5% train accuracy. Here larger decay costs fit before it shapes the geometry.
- lr decay (warmup + cosine, peak lr 0.1-0.3): the geometry freezes where the early phase left it
  (0.083-0.117) once the MSE loss interpolates.
- higher constant lr: 0.2 gives 0.062-0.072 (NC1 falls 12x, agreement 0.995) and sits at the edge of
  stability (0.3 diverges); n_train 1536 with lr 0.2 gives 0.051-0.060 but ends at 97-99% train
  accuracy (no terminal phase); n_train 512 0.074-0.135.
- read-out feature dimension (width 8/16/32, i.e. 128-512 features vs 1024 examples): 0.116-0.161;
  depth 3 (width 16/32, lr 0.1/0.2): 0.084-0.121.
- full batch (300 steps) 0.116; batch 32: 0.074-0.085 (train accuracy 0.967 at lr 0.2).
- output multiplier 0.25 (same as scaling the MSE labels x4) 0.123-0.154; 0.5 with lr x4 and weight
  decay / 4 (Chizat's rescaling) 0.098, 0.25 with lr x16 kills every ReLU; muP (base width 8) 0.142;
  init scale 0.5 0.137; tanh 0.118; no biases 0.102; AdamW (lr 1e-3, wd 0.1) no better.
- cross-entropy (lr 0.05): the CNN's class-mean geometry does not move at all (0.200 = its value at
  initialisation, NC1 falls 1.1x): its 1024 random conv features are nearly linearly separable, so
  training stays close to the lazy regime (Chizat, Oyallon & Bach 2019) and collapse, which needs
  feature learning, only comes slowly, driven by weight decay (~0.015 of ETF deviation per 1000 steps
  at lr 0.1).
- resnet: lr 0.1 0.162 (96.9% train acc); depth 2 0.112-0.119 (99.7-100%); width 24, 1800 steps 0.107
  (99.1%); width 32 0.077 at lr 0.05 (99.7%, ~50 s alone), 0.084 with wd 1e-3 (99.5%), 0.134 at lr 0.1
  (98.3%), diverged at lr 0.2; width 64 at lr 0.1 diverged; AdamW 0.110-0.127 (97-99%); a dense head
  after the pool 0.26 (99.9%); the fully connected ResNet on a 10-class Gaussian mixture 0.084-0.116.
  Batch 32 for 4800 steps 0.069-0.088 (99.4%); n_train 512 interpolates but ends at 0.065-0.083; a final
  ReLU before the pool 0.15-0.21; batch norm after every convolution (a trial, not an option here)
  reaches 100% train accuracy at 0.11-0.14.
  Its 8x8 inputs leave the pooled 16-32 channels little to separate digits with, and it does not
  interpolate inside the budget.

The MLP's ETF deviation also falls slowly (0.080 at step 100, 0.051 at 1200, 0.038 at 2400), so the
conv nets are expected to need many more steps (full size runs 10x longer).

`ReadoutCollapseProbe` reads the penultimate features as the input of the model's read-out layer
(the last parametrised weight layer, whatever its class) and the classifier as that layer's effective
weight (forward multiplier included) and bias, then calls `collapse.neural_collapse` on the probe batch
(the training set); NC4 compares the classifier's argmax (bias included) with the nearest class mean.
Columns: nc1, nc2_equinorm, nc2_etf_distance (mean |cos + 1/(C-1)| over pairs of centred class means),
nc3, nc4 (1 - agreement with the nearest class centre).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from ..probes import Probe
from .base import Phenomenon, Verdict, run_row

NC1_FALL_MIN = 5.0  # quick: NC1 at init / final NC1
TPT_FALL_MIN = 10.0  # full: NC1 at the start of the terminal phase / final NC1
RISE_TOLERANCE = 1.1  # "does not rise": final NC1 <= this x NC1 when train accuracy first hits 100%
ETF_TOLERANCE = 0.05  # mean |cos + 1/(C-1)|
NCC_MIN = 0.99
MIN_ARCHS = 3


def readout_features(model, inputs: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(features, effective classifier weight, bias): the input of the read-out layer in a no-grad pass."""
    from ..models import weight_layers

    _, layer = weight_layers(model)[-1]
    captured = []
    handle = layer.register_forward_hook(lambda _m, args, _out: captured.append(args[0].detach()))
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        handle.remove()
    feats = captured[-1]
    feats = feats.reshape(-1, feats.shape[-1]) if feats.ndim != 2 else feats
    weight = (layer.weight.detach() * getattr(layer, "mult", 1.0)).to("cpu", torch.float64).numpy()
    bias = layer.bias.detach().to("cpu", torch.float64).numpy() if getattr(layer, "bias", None) is not None else None
    return feats.to("cpu", torch.float64).numpy(), weight, bias


class ReadoutCollapseProbe(Probe):
    """Neural-collapse metrics of the read-out layer's input on the probe batch."""

    name = "readout_collapse"
    columns = ("nc1", "nc2_equinorm", "nc2_etf_distance", "nc3", "nc4")

    def measure(self, ctx):
        from ..collapse import neural_collapse

        if not ctx.classification:
            raise ValueError("neural-collapse metrics need a classification dataset")
        was_training = ctx.model.training
        ctx.model.eval()
        try:
            feats, weight, bias = readout_features(ctx.model, ctx.inputs)
        finally:
            ctx.model.train(was_training)
        labels = ctx.targets.argmax(dim=1) if ctx.targets.ndim > 1 else ctx.targets
        m = neural_collapse(feats, labels.cpu().numpy(), classifier_weight=weight, classifier_bias=bias)
        return {"nc1": m.nc1, "nc2_equinorm": m.nc2_equinorm, "nc2_etf_distance": m.nc2_etf_distance,
                "nc3": m.nc3, "nc4": m.nc4_ncc_agreement}, []


PROBE = "learnmech_core.phenomena.neural_collapse:ReadoutCollapseProbe"

# size -> (n_train, step multiplier, probe every, seeds); each architecture's steps are its base steps x multiplier
_SIZES = {
    "tiny": (256, 0.15, 50, (0,)),
    "quick": (1024, 1.0, 100, (0,)),
    "full": (1536, 10.0, 500, (0, 1, 2)),
}
# architecture -> (model settings, learning rate, base steps, weight decay); MSE loss, SGD momentum 0.9
_MODELS = {
    "mlp": (dict(width=256, depth=3, activation="relu"), 0.1, 2400, 5e-4),
    "cnn": (dict(width=64, depth=2, activation="relu", head_width=256), 0.2, 1200, 1e-3),
    "resnet": (dict(width=16, depth=1, activation="relu"), 0.05, 1200, 5e-4),
}


def _fall(before: float, after: float) -> float:
    """before / after: inf when NC1 reached exactly 0, NaN when either is undefined (e.g. coincident class means)."""
    if not (math.isfinite(before) and math.isfinite(after)):
        return float("nan")
    return before / after if after > 0 else math.inf


def collapse_summary(history) -> dict:
    """NC numbers of one run: at init, at the first 100%-train-accuracy step (terminal phase), and final."""
    nan = float("nan")
    if "nc1" not in history:
        return {"nc1_init": nan, "nc1_tpt": nan, "nc1_final": nan, "step_tpt": nan, "etf_final": nan,
                "ncc_final": nan, "fall_from_init": nan, "fall_in_tpt": nan, "rise": nan}
    h = history.dropna(subset=["nc1"])
    nc1 = h["nc1"].to_numpy(dtype=float)
    acc = h["train_acc"].to_numpy(dtype=float) if "train_acc" in h else np.full(len(h), nan)
    full = np.flatnonzero(acc >= 1.0)
    i_tpt = int(full[0]) if len(full) else None
    nc1_init, nc1_final = float(nc1[0]), float(nc1[-1])
    nc1_tpt = float(nc1[i_tpt]) if i_tpt is not None else nan
    etf = float(h["nc2_etf_distance"].iloc[-1]) if "nc2_etf_distance" in h else nan
    ncc = 1.0 - float(h["nc4"].iloc[-1]) if "nc4" in h else nan
    return {"nc1_init": nc1_init, "nc1_tpt": nc1_tpt, "nc1_final": nc1_final,
            "step_tpt": float(h["step"].iloc[i_tpt]) if i_tpt is not None else nan, "etf_final": etf,
            "ncc_final": ncc, "fall_from_init": _fall(nc1_init, nc1_final), "fall_in_tpt": _fall(nc1_tpt, nc1_final),
            "rise": nc1_final / nc1_tpt if nc1_tpt > 0 else nan}


class NeuralCollapse(Phenomenon):
    name = "neural_collapse"
    title = "Do features collapse onto a simplex of class means when training continues past zero error?"
    direction = "laws"
    sources = ("Papyan, Han & Donoho 2020, Prevalence of neural collapse during the terminal phase of deep learning "
               "training", "Han, Papyan & Donoho 2022, Neural collapse under MSE loss: proximity to and dynamics on the "
               "central path")
    prediction = (f"Training past zero error drives within-class variability NC1 down (>= {NC1_FALL_MIN:g}x from "
                  f"initialisation, no rise in the terminal phase; >= {TPT_FALL_MIN:g}x within the terminal phase at full "
                  f"size), class-mean cosines to -1/(C-1) within {ETF_TOLERANCE:g}, and classifier decisions to the "
                  f"nearest class mean (agreement >= {NCC_MIN:g}), for >= {MIN_ARCHS} architectures.")
    measures = ("NC1 = tr(Sigma_W Sigma_B^+)/C, the mean deviation of class-mean cosines from -1/(C-1), and agreement "
                "of the classifier with the nearest class centre, on the training set's penultimate features.")
    archs = ("mlp", "cnn", "resnet")
    datasets = ("digits",)
    allowed_datasets = ("digits", "gaussian_mixture", "spirals", "mnist", "fashion_mnist", "cifar10")
    normalisation = "NC1 / NC1 at initialisation"

    def _grid(self, size, archs, datasets):
        n_train, mult, every, seeds = _SIZES[size]
        out = []
        for arch in archs:
            model, lr, base_steps, weight_decay = _MODELS[arch]
            steps = int(round(base_steps * mult / every)) * every
            for dataset in datasets:
                for seed in seeds:
                    out.append(RunSpec(
                        model=ModelSpec(arch=arch, **model),
                        data=DataSpec(name=dataset, n_train=n_train, n_test=256),
                        optim=OptimSpec(name="momentum", lr=lr, momentum=0.9, weight_decay=weight_decay, steps=steps,
                                        batch_size=128, loss="mse", eval_every=every),
                        probes=ProbeSpec(log_every=every, extra=(PROBE,), extra_every=every, save_weights=False),
                        seed=seed,
                    ))
        return out

    def verdict(self, runs):
        full = any(r.spec.data.n_train == _SIZES["full"][0] for r in runs)  # full size: terminal-phase fall too
        rows, archs_ok = [], set()
        for run in runs:
            s = collapse_summary(run.history)
            checks = {
                "fall": s["fall_from_init"] >= NC1_FALL_MIN,
                "terminal_phase": math.isfinite(s["nc1_tpt"]),
                "no_rise": not math.isfinite(s["nc1_tpt"]) or s["rise"] <= RISE_TOLERANCE,
                "etf": s["etf_final"] <= ETF_TOLERANCE,
                "ncc": s["ncc_final"] >= NCC_MIN,
            }
            if full:
                checks["tpt_fall"] = s["fall_in_tpt"] >= TPT_FALL_MIN
            ok = run.status == "ok" and all(checks.values())
            if ok:
                archs_ok.add(run.spec.model.arch)
            rows.append(run_row(run, ok, s["fall_from_init"], **s,
                                failed_checks=",".join(k for k, v in checks.items() if not v)))
        if not rows:
            return Verdict(False, float("nan"), NC1_FALL_MIN, 0.0, "no runs to judge")
        n_archs = len({r.spec.model.arch for r in runs})
        need = min(MIN_ARCHS, n_archs)
        passed = all(r["passed"] for r in rows) and len(archs_ok) >= need
        parts = [
            f"{r['arch']}: NC1 {r['nc1_init']:.3g} -> {r['nc1_tpt']:.3g} at 100% train accuracy (step "
            f"{_f(r['step_tpt'], '.0f')}) -> {r['nc1_final']:.3g} (falls {r['fall_from_init']:.3g}x from init, "
            f"{_f(r['fall_in_tpt'], '.3g')}x in the terminal phase); ETF deviation {r['etf_final']:.3f}; nearest-centre agreement "
            f"{r['ncc_final']:.3f}" + (f" [fails: {r['failed_checks']}]" if r["failed_checks"] else "")
            for r in rows
        ]
        falls = [r["fall_from_init"] for r in rows]
        worst = float(min(falls))
        rule = (f"Needs NC1 to fall >= {NC1_FALL_MIN:g}x from init and not rise (<= {RISE_TOLERANCE:g}x) after 100% train "
                f"accuracy (which must be reached)" + (f", fall >= {TPT_FALL_MIN:g}x within the terminal phase" if full else "") +
                f", ETF deviation <= {ETF_TOLERANCE:g}, agreement >= {NCC_MIN:g}, on >= {need} architectures "
                f"({len(archs_ok)} passed).")
        if not math.isfinite(sum(r["nc1_tpt"] for r in rows)):
            rule += " Some runs never reached 100% training accuracy, so they have no terminal phase."
        details = {"min_fall_from_init": worst, "max_etf_distance": float(max(r["etf_final"] for r in rows)),
                   "min_ncc_agreement": float(min(r["ncc_final"] for r in rows)),
                   "min_fall_in_tpt": float(np.nanmin([r["fall_in_tpt"] for r in rows]))
                   if any(math.isfinite(r["fall_in_tpt"]) for r in rows) else float("nan"),
                   "archs_passed": sorted(archs_ok)}
        etf_worst = details["max_etf_distance"]
        return Verdict(passed, etf_worst, 0.0, ETF_TOLERANCE, "; ".join(parts) + ". " + rule, per_run=rows,
                       details=details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_laws as plots

        return [plots.collapse_nc1(runs, normalised, presentation), plots.collapse_geometry(runs, presentation)]


def _f(x, fmt: str) -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, fmt)


PHENOMENON = NeuralCollapse()
