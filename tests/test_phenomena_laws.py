"""Macroscopic-law and universal-behaviour phenomena: tiny runs give verdicts from data; doctored runs fail.

Each phenomenon's `tiny` size is trained once per module (a few seconds each) and judged; a copy of
its runs with the measured data edited to violate the prediction must fail the same verdict.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from learnmech_core import phenomena
from learnmech_core.train import Run, train

LAWS = ("critical_batch_size", "scaling_collapse", "neural_collapse", "grokking", "heavy_tailed_spectra",
        "representation_convergence")


def _tiny(name: str, **kw) -> list[Run]:
    return [train(spec) for spec in phenomena.get(name).specs("tiny", **kw)]


def _doctored(runs: list[Run]) -> list[Run]:
    """Deep copies whose history/spectra/weights can be edited freely."""
    return [copy.deepcopy(r) for r in runs]


def _check_figures(ph, runs, verdict) -> None:
    for normalised in (True, False):
        figs = ph.figures(runs, verdict, normalised=normalised, presentation=not normalised)
        assert figs and all(isinstance(f, go.Figure) for f in figs)
        for f in figs:
            title = f.layout.title.text
            assert title and (title.endswith("?") or len(title.split()) > 3)
            assert len(f.data) >= 1


# ------------------------------------------------------------------------------------------------
# catalogue contract


@pytest.mark.parametrize("name", LAWS)
def test_card_and_full_specs(name):
    ph = phenomena.get(name)
    card = ph.card()
    assert card["title"] and card["sources"] and card["prediction"]
    assert card["direction"] in phenomena.DIRECTIONS
    assert any(ch.isdigit() for ch in card["prediction"])
    tiny, quick, full = (ph.specs(size) for size in ("tiny", "quick", "full"))
    assert 0 < len(tiny) <= len(quick) <= len(full)
    assert sum(s.optim.steps for s in full) > sum(s.optim.steps for s in quick) >= sum(s.optim.steps for s in tiny)
    cuda = [s.replace(device="cuda") for s in full[:2]]
    assert all(s.device == "cuda" for s in cuda)


@pytest.mark.parametrize("name", LAWS)
def test_bad_arch_and_dataset_name_the_allowed_ones(name):
    ph = phenomena.get(name)
    with pytest.raises(ValueError, match="transformer|can use architectures") as err:
        ph.specs("tiny", archs=["transformer"]) if "transformer" not in (ph.allowed_archs or ph.archs) else \
            ph.specs("tiny", archs=["deep_linear"])
    assert any(a in str(err.value) for a in (ph.allowed_archs or ph.archs))
    with pytest.raises(ValueError, match="can use datasets") as err:
        ph.specs("tiny", datasets=["circles"])
    assert any(d in str(err.value) for d in (ph.allowed_datasets or ph.datasets))
    with pytest.raises(ValueError, match="size must be one of"):
        ph.specs("huge")


# ------------------------------------------------------------------------------------------------
# grokking


@pytest.fixture(scope="module")
def grok_runs():
    return _tiny("grokking")


def test_grokking_tiny_verdict_from_data(grok_runs):
    ph = phenomena.get("grokking")
    v = ph.verdict(grok_runs)
    row = v.per_run[0]
    assert grok_runs[0].status == "ok"
    assert row["step_train_99"] < row["step_test_90"]
    assert v.passed, v.explanation
    assert v.measured == pytest.approx(row["step_test_90"] / row["step_train_99"])
    assert v.measured >= 5.0 and row["final_test_acc"] >= 0.95
    assert row["fourier_at_jump"] > 1.5 * row["fourier_at_memorisation"]
    # the Fourier probe wrote one power per frequency 0..p//2 at each probe step
    power = grok_runs[0].spectra.query("kind == 'fourier_power'")
    assert set(power["index"]) == set(range(grok_runs[0].spec.data.modulus // 2 + 1))
    _check_figures(ph, grok_runs, v)


def test_grokking_doctored_runs_fail(grok_runs):
    ph = phenomena.get("grokking")
    early = _doctored(grok_runs)
    h = early[0].history
    s_train = h.loc[h["train_acc"] >= 0.99, "step"].min()
    h.loc[h["step"] >= s_train, "test_acc"] = 0.97  # test accuracy jumps with train accuracy: no delay
    v = ph.verdict(early)
    assert not v.passed and v.measured == pytest.approx(1.0)
    flat = _doctored(grok_runs)
    flat[0].history["fourier_concentration"] = flat[0].history["fourier_concentration"].where(
        flat[0].history["fourier_concentration"].isna(), 0.3)
    v = ph.verdict(flat)
    assert not v.passed and v.per_run[0]["fourier_rise"] == pytest.approx(1.0)


def test_fourier_concentration_of_a_pure_frequency_is_one():
    from learnmech_core.phenomena.grokking import fourier_concentration, random_concentration

    p = 31
    tokens = np.arange(p)
    rows = np.stack([np.cos(2 * np.pi * k * tokens / p + k) for k in (1, 5, 9)])
    assert fourier_concentration(rows) == pytest.approx(1.0)
    assert 0.1 < random_concentration(p) < 0.35


# ------------------------------------------------------------------------------------------------
# critical batch size


def _synthetic_cbs_runs(b_crit: float, b_noise: float, s_min: float = 10.0) -> list[Run]:
    """Runs whose histories reach the target exactly at S(B) = S_min (1 + B_crit x(B)) for the best lr (0.8).

    Along the full-batch runs (which measure the noise scales) B_noise is constant: b_noise on the tuned
    one (lr 0.8), 10 b_noise on the others. B_simple grows as the loss falls (its value at the target is
    b_noise, its step mean smaller).
    """
    from learnmech_core.phenomena import critical_batch_size as cbs

    runs = []
    for spec in phenomena.get("critical_batch_size").specs("tiny"):
        n = spec.data.n_train
        target = cbs.target_loss(spec.data.name)
        steps = np.arange(spec.optim.steps + 1, dtype=float)
        b = spec.optim.batch_size or n
        s_hit = s_min * (1.0 + b_crit * cbs.effective_inverse_batch(b, n)) * (1.0 + abs(math.log2(spec.optim.lr / 0.8)))
        loss = target ** (steps / s_hit)  # log-linear: crosses the target exactly at s_hit
        history = pd.DataFrame({"step": steps, "loss": loss, "train_loss": loss})
        run = Run(spec=spec, history=history)
        if cbs.is_noise_run(run):
            scale = b_noise if spec.optim.lr == 0.8 else 10.0 * b_noise
            history["b_simple"] = scale * (loss / target) ** -0.5
            history["b_noise"] = scale
        runs.append(run)
    return runs


def test_critical_batch_size_verdict_recovers_the_hyperbola():
    from learnmech_core.phenomena import critical_batch_size as cbs

    ph = phenomena.get("critical_batch_size")
    runs = _synthetic_cbs_runs(b_crit=60.0, b_noise=80.0)
    assert sum(cbs.is_noise_run(r) for r in runs) == 3  # every full-batch run measures the noise scales
    good = ph.verdict(runs)
    assert good.passed, good.explanation
    assert good.details["b_crit"] == pytest.approx(60.0, rel=1e-3)
    assert good.details["s_min"] == pytest.approx(10.0, rel=1e-3)
    assert good.details["r2"] > 0.999
    # read from the tuned (fastest) full-batch run, not the others (which carry 10x the noise scale)
    assert good.details["noise_lr"] == 0.8
    assert good.details["b_noise_mean"] == pytest.approx(80.0, rel=1e-9)
    assert good.details["b_noise_mean_by_lr"] == pytest.approx({"0.4": 800.0, "0.8": 80.0, "1.6": 800.0})
    assert good.details["b_simple"] == pytest.approx(80.0, rel=1e-6)
    assert good.details["b_simple_mean"] < 80.0 * 0.9  # B_simple grows to 80 at the target: its step mean is lower
    assert good.measured == pytest.approx(60.0 / 80.0, rel=1e-3)
    assert "lr 0.4: 800 (S 20)" in good.explanation
    assert "Mean B_noise differs 10x between full-batch runs" in good.explanation
    bad = ph.verdict(_synthetic_cbs_runs(b_crit=60.0, b_noise=600.0))
    assert not bad.passed and bad.measured == pytest.approx(0.1, rel=1e-3)
    assert "not within" in bad.explanation
    assert cbs.steps_to_target(pd.DataFrame({"step": [0, 10], "train_loss": [1.0, 0.01]})) == pytest.approx(5.0)


def test_mean_to_target_matches_a_dense_integral():
    from learnmech_core.phenomena import critical_batch_size as cbs

    steps = np.arange(0, 21, 2, dtype=float)  # measured every 2 steps
    loss = 2.0 * np.exp(-0.25 * steps)  # crosses 0.1 at 4 ln 20 = 11.98 (log-linear, so exactly)
    value = 30.0 + 5.0 * steps**1.5
    h = pd.DataFrame({"step": steps, "train_loss": loss, "b_noise": value})
    s_end = 4.0 * math.log(20.0)
    assert cbs.steps_to_target(h, 0.1) == pytest.approx(s_end, rel=1e-9)
    # brute force: the piecewise-linear interpolant of the measurements averaged on a fine grid over [0, s_end]
    grid = np.linspace(0.0, s_end, 200_001)
    brute = float(np.mean(np.interp(grid, steps, value)))
    assert cbs.mean_to_target(h, "b_noise", 0.1) == pytest.approx(brute, rel=1e-6)
    assert 30.0 < cbs.mean_to_target(h, "b_noise", 0.1) < cbs.value_at_loss(h, "b_noise", 0.1)
    assert math.isnan(cbs.mean_to_target(h, "b_noise", 1e-6))  # never reaches the target
    assert math.isnan(cbs.mean_to_target(h.iloc[:3], "b_noise", 0.1))  # measurements end before the target
    assert math.isnan(cbs.mean_to_target(h, "b_simple", 0.1))  # no such column


@pytest.fixture(scope="module")
def cbs_runs():
    return _tiny("critical_batch_size")


def test_critical_batch_size_tiny_measures_and_doctoring_fails(cbs_runs):
    ph = phenomena.get("critical_batch_size")
    v = ph.verdict(cbs_runs)
    d = v.details
    assert all(r.status in ("ok", "diverged") for r in cbs_runs)
    assert len(d["best_steps"]) == 3 and d["r2"] > 0.9
    assert 1.0 < d["s_min"] < 40.0 and d["b_crit"] > 1.0
    assert 5.0 < d["b_simple_init"] < 100.0 < d["b_simple"]  # the noise scale grows as the loss falls
    assert d["b_simple_init"] < d["b_simple_mean"] < d["b_simple"]
    assert v.measured == pytest.approx(d["b_crit"] / d["b_noise_mean"])
    _check_figures(ph, cbs_runs, v)
    doctored = _doctored(cbs_runs)
    for run in doctored:
        if run.spec.probes.extra:  # every full-batch run, so whichever is the tuned one
            run.history["b_noise"] *= 1000.0
    assert not ph.verdict(doctored).passed
    assert ph.verdict(doctored).measured == pytest.approx(v.measured / 1000.0, rel=1e-6)


# ------------------------------------------------------------------------------------------------
# scaling law and loss-curve collapse


@pytest.fixture(scope="module")
def scaling_runs():
    return _tiny("scaling_collapse")


def test_scaling_tiny_verdict_from_data(scaling_runs):
    from learnmech_core.phenomena.scaling_collapse import final_loss, param_count

    ph = phenomena.get("scaling_collapse")
    v = ph.verdict(scaling_runs)
    assert v.passed, v.explanation
    assert v.measured == pytest.approx(v.details["r2"]) and v.measured >= 0.95
    assert v.details["collapse_reduction"] >= 3.0 and 0.0 < v.details["alpha"] < 2.0
    params = [param_count(r) for r in scaling_runs]
    losses = [final_loss(r) for r in scaling_runs]
    assert params == sorted(params) and losses[0] > losses[-1]  # bigger students end lower
    _check_figures(ph, scaling_runs, v)


def test_scaling_doctored_runs_fail(scaling_runs):
    ph = phenomena.get("scaling_collapse")
    shuffled = _doctored(scaling_runs)
    finals = [r.history["test_loss"].dropna().iloc[-1] for r in shuffled]
    for r, value in zip(shuffled, [finals[0], finals[3], finals[1], finals[4], finals[2]]):
        r.history.loc[r.history["test_loss"].notna(), "test_loss"] = value  # loss no longer monotone in size
    v = ph.verdict(shuffled)
    assert not v.passed and v.details["r2"] < 0.95
    uncollapsed = _doctored(scaling_runs)
    for i, r in enumerate(uncollapsed):  # curves whose shapes differ by size: normalising cannot collapse them
        tau = r.history["step"] / r.spec.optim.steps
        r.history["test_loss"] = r.history["test_loss"] * np.exp(3.0 * (i - 2) * (1.0 - tau))
    v = ph.verdict(uncollapsed)
    assert not v.passed and v.details["collapse_reduction"] < 3.0


def test_scaling_law_fit_recovers_a_power_law():
    from learnmech_core.phenomena.scaling_collapse import fit_scaling_law

    p = np.array([100.0, 300.0, 1000.0, 3000.0, 10000.0])
    fit = fit_scaling_law(p, 0.05 + 4.0 * p**-0.5)
    assert fit["r2"] > 0.9999 and fit["alpha"] == pytest.approx(0.5, rel=1e-2)
    assert fit["l0"] == pytest.approx(0.05, rel=2e-2) and not fit["l0_pinned"]
    assert math.isnan(fit_scaling_law(p, np.full(5, 0.01))["r2"])  # a flat curve has no power law to fit


def test_curve_collapse_of_curves_that_differ_by_a_factor():
    from learnmech_core import DataSpec, ModelSpec, OptimSpec, RunSpec
    from learnmech_core.phenomena.scaling_collapse import curve_collapse

    runs = []
    for c in (1.0, 2.0, 4.0):
        spec = RunSpec(model=ModelSpec(width=8), data=DataSpec(n_train=64, n_test=16), optim=OptimSpec(steps=100))
        steps = np.linspace(0, 100, 21)
        runs.append(Run(spec=spec, history=pd.DataFrame({"step": steps, "test_loss": c * (np.exp(-steps / 50) + 0.1)})))
    score = curve_collapse(runs)
    assert score["normalised_spread"] < 1e-9 and score["raw_spread"] > 0.5 and score["reduction"] > 1e6


# ------------------------------------------------------------------------------------------------
# representation convergence


@pytest.fixture(scope="module")
def rep_runs():
    return _tiny("representation_convergence")


def test_representation_tiny_verdict_from_data(rep_runs):
    ph = phenomena.get("representation_convergence")
    v = ph.verdict(rep_runs)
    assert v.passed, v.explanation
    seed_trained, seed_init = v.details["seed_pairs"]
    cross_trained, cross_init = v.details["cross_pairs"]
    assert seed_trained > seed_init and cross_trained > cross_init
    by_width = v.details["cka_by_width"]
    assert by_width["64"] > by_width["8"]
    assert v.measured > 0.0 and all(0.0 <= x <= 1.0 for x in by_width.values())
    _check_figures(ph, rep_runs, v)


def test_representation_doctored_runs_fail(rep_runs):
    from learnmech_core.train import build_model

    ph = phenomena.get("representation_convergence")
    untrained = _doctored(rep_runs)
    for r in untrained:  # "trained" weights replaced by the initial ones: no gain over initialisation
        model, _ = build_model(r.spec)
        r.weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    v = ph.verdict(untrained)
    assert not v.passed and v.measured == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("arch", ["mlp", "cnn", "resnet"])
@pytest.mark.parametrize("param", ["sp", "ntk"])
def test_readout_features_are_the_readout_input(arch, param):
    """features @ (mult x W)^T + b reproduces the logits (forward multiplier and a non-zero bias included)."""
    import torch

    from learnmech_core import DataSpec, ModelSpec, OptimSpec, RunSpec
    from learnmech_core.phenomena.neural_collapse import readout_features
    from learnmech_core.models import weight_layers
    from learnmech_core.train import build_model

    spec = RunSpec(model=ModelSpec(arch=arch, width=16, depth=2, activation="relu", param=param, output_mult=0.3),
                   data=DataSpec(n_train=32, n_test=8), optim=OptimSpec(steps=1))
    model, data = build_model(spec)
    readout = weight_layers(model)[-1][1]
    with torch.no_grad():  # biases start at zero: give the read-out one so that leaving it out would show
        readout.bias.copy_(torch.linspace(-1.0, 1.0, readout.bias.numel()))
    assert readout.mult != 1.0
    feats, weight, bias = readout_features(model, data.x_train)
    logits = model(data.x_train).detach().double().numpy()
    np.testing.assert_allclose(feats @ weight.T + bias, logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(weight, readout.weight.detach().double().numpy() * readout.mult, rtol=1e-6)
    assert feats.shape == (32, 16 * 16 if arch == "cnn" else 16) and bias.shape == (10,)
    assert np.all(feats >= 0.0) or arch == "resnet"  # post-ReLU (and pooled) for mlp/cnn; a residual sum for resnet


# ------------------------------------------------------------------------------------------------
# neural collapse


@pytest.fixture(scope="module")
def nc_runs():
    return _tiny("neural_collapse", archs=["mlp"])


def test_neural_collapse_tiny_measures(nc_runs):
    from learnmech_core.phenomena.neural_collapse import collapse_summary

    ph = phenomena.get("neural_collapse")
    run = nc_runs[0]
    assert run.status == "ok" and not run.probe_errors
    s = collapse_summary(run.history)
    assert s["nc1_init"] > 0.5 and s["nc1_final"] < s["nc1_init"] / 5.0  # NC1 falls
    assert s["ncc_final"] >= 0.99 and 0.0 <= s["etf_final"] < s["nc1_init"]
    v = ph.verdict(nc_runs)
    assert v.details["min_fall_from_init"] == pytest.approx(s["fall_from_init"])
    assert v.measured == pytest.approx(s["etf_final"]) == pytest.approx(v.details["max_etf_distance"])
    _check_figures(ph, nc_runs, v)


def _collapsed_history(nc1_final: float, etf: float, agreement: float) -> pd.DataFrame:
    steps = np.arange(0, 1100, 100, dtype=float)
    nc1 = np.geomspace(1.0, nc1_final, len(steps))
    return pd.DataFrame({"step": steps, "train_acc": np.minimum(1.0, 0.5 + steps / 400.0), "nc1": nc1,
                         "nc2_etf_distance": np.geomspace(0.4, etf, len(steps)),
                         "nc4": np.full(len(steps), 1.0 - agreement)})


def test_neural_collapse_verdict_reads_the_numbers():
    ph = phenomena.get("neural_collapse")
    specs = ph.specs("quick")
    good = [Run(spec=s, history=_collapsed_history(0.01, 0.02, 1.0)) for s in specs]
    v = ph.verdict(good)
    assert v.passed and v.measured == pytest.approx(0.02) and v.details["archs_passed"] == ["cnn", "mlp", "resnet"]
    assert v.details["min_fall_from_init"] == pytest.approx(100.0)
    for doctor, fails in (((0.5, 0.02, 1.0), "fall"), ((0.01, 0.2, 1.0), "etf"), ((0.01, 0.02, 0.9), "ncc")):
        bad = list(good)
        bad[1] = Run(spec=specs[1], history=_collapsed_history(*doctor))
        v = ph.verdict(bad)
        assert not v.passed and fails in v.per_run[1]["failed_checks"]
    rising = _collapsed_history(0.01, 0.02, 1.0)
    rising.loc[rising.index[-1], "nc1"] = 0.45  # NC1 rises again in the terminal phase (0.40 at 100% accuracy)
    v = ph.verdict([Run(spec=specs[0], history=rising)] + good[1:])
    assert not v.passed and "no_rise" in v.per_run[0]["failed_checks"]


# ------------------------------------------------------------------------------------------------
# heavy-tailed spectra


@pytest.fixture(scope="module")
def ht_runs():
    return _tiny("heavy_tailed_spectra")


def test_heavy_tailed_tiny_verdict_from_data(ht_runs):
    from learnmech_core.phenomena.heavy_tailed_spectra import judged_layers

    ph = phenomena.get("heavy_tailed_spectra")
    v = ph.verdict(ht_runs)
    assert v.passed, v.explanation
    assert judged_layers(ht_runs[0]) == ["layers.0.weight", "layers.1.weight"]  # the 10-row read-out is left out
    for row in v.per_run:
        assert row["mp_ks_init"] < 0.1 and row["alpha_final"] < row["alpha_init"]
    assert v.measured == pytest.approx(max(r["alpha_final"] / r["alpha_init"] for r in v.per_run))
    assert "Spearman" in v.explanation
    _check_figures(ph, ht_runs, v)


def test_heavy_tailed_doctored_runs_fail(ht_runs):
    ph = phenomena.get("heavy_tailed_spectra")
    grown = _doctored(ht_runs)
    h = grown[0].history
    last = h["alpha_layers.1.weight"].last_valid_index()
    h.loc[last, ["alpha_layers.0.weight", "alpha_layers.1.weight"]] = 50.0  # alpha rises with training
    v = ph.verdict(grown)
    assert not v.passed and not v.per_run[0]["passed"] and v.measured > 1.0
    not_mp = _doctored(ht_runs)
    first = not_mp[1].history["mp_ks_layers.0.weight"].first_valid_index()
    not_mp[1].history.loc[first, ["mp_ks_layers.0.weight", "mp_ks_layers.1.weight"]] = 0.5
    assert not ph.verdict(not_mp).passed


def test_spearman_sign():
    from learnmech_core.phenomena.heavy_tailed_spectra import spearman

    assert spearman([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.5]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [0.5, 0.2, 0.1, 0.0]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2], [3, 4]))
