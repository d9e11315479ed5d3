"""Curvature phenomena: specs at every size, tiny runs with values, verdicts computed from the data."""

import dataclasses

import numpy as np
import plotly.graph_objects as go
import pytest

from learnmech_core import phenomena, train
from learnmech_core.phenomena.base import DIRECTIONS

NAMES = ("edge_of_stability", "adaptive_edge_of_stability", "progressive_sharpening", "catapult", "hessian_outliers")
# tiny grids kept small for the test suite: (archs, datasets)
TINY = {
    "edge_of_stability": (("mlp",), ("digits",)),
    "adaptive_edge_of_stability": (("mlp",), ("digits",)),
    "progressive_sharpening": (("mlp",), ("gaussian_mixture",)),
    "catapult": (("deep_linear",), ("gaussian_mixture",)),
    "hessian_outliers": (("mlp",), ("gaussian_mixture",)),
}


def _doctor(run, **columns):
    """A copy of a run whose history columns are replaced by functions of the old ones."""
    history = run.history.copy()
    for name, fn in columns.items():
        history[name] = fn(history)
    return dataclasses.replace(run, history=history)


@pytest.fixture(scope="module")
def tiny_runs():
    cache = {}

    def get(name):
        if name not in cache:
            archs, datasets = TINY[name]
            cache[name] = [train(s) for s in phenomena.get(name).specs("tiny", archs, datasets)]
        return cache[name]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_card_and_specs_at_every_size(name):
    ph = phenomena.get(name)
    card = ph.card()
    assert card["title"].endswith("?") and card["direction"] in DIRECTIONS and card["sources"]
    assert any(ch.isdigit() for ch in card["prediction"])
    if name == "catapult":  # quick and full measure lambda_0 on the initial model: build only tiny and check quick
        sizes = {"tiny": ph.specs("tiny")}
    else:
        sizes = {size: ph.specs(size) for size in ("tiny", "quick", "full")}
        assert len(sizes["full"]) >= len(sizes["quick"]) >= 1
        assert max(s.optim.steps for s in sizes["full"]) >= max(s.optim.steps for s in sizes["quick"])
        assert all(s.replace(device="cuda").device == "cuda" for s in sizes["full"])
    for specs in sizes.values():
        assert len({s.key() for s in specs}) == len(specs)


@pytest.mark.parametrize("name", NAMES)
def test_bad_arch_or_dataset_names_the_allowed_ones(name):
    ph = phenomena.get(name)
    with pytest.raises(ValueError, match="can use architectures"):
        ph.specs("tiny", archs=["transformer"])
    with pytest.raises(ValueError, match="can use datasets"):
        ph.specs("tiny", datasets=["modular_arithmetic"])
    with pytest.raises(ValueError, match="size must be one of"):
        ph.specs("huge")


def test_edge_of_stability_grid_covers_archs_losses_and_rates():
    ph = phenomena.get("edge_of_stability")
    quick = ph.specs("quick")
    assert {(s.model.arch, s.model.activation) for s in quick} == {("mlp", "tanh"), ("mlp", "relu"), ("cnn", "relu")}
    assert {s.optim.loss for s in quick} == {"mse", "ce"} and len({s.optim.lr for s in quick}) >= 3
    assert all(s.optim.name == "gd" and s.optim.batch_size == 0 for s in quick)
    assert not any(s.model.arch == "cnn" and s.data.name == "gaussian_mixture" for s in quick)
    full = ph.specs("full")
    assert len(full) == 5 * 2 * 3  # 5 (system, dataset) pairs x 2 losses x 3 rates
    # the eta x step horizon is the same for every rate of a loss
    mse = {s.optim.lr: s.optim.lr * s.optim.steps for s in full if s.optim.loss == "mse"}
    assert max(mse.values()) / min(mse.values()) < 1.05
    with pytest.raises(ValueError, match="cnn needs an image dataset"):
        ph.specs("quick", archs=["cnn"], datasets=["gaussian_mixture"])


def test_edge_of_stability_tiny_holds_and_doctored_fails(tiny_runs):
    ph = phenomena.get("edge_of_stability")
    runs = tiny_runs("edge_of_stability")
    v = ph.verdict(runs)
    assert v.passed, v.explanation
    assert abs(v.measured - 1.0) <= 0.1 and v.expected == 1.0 and v.tolerance == 0.1
    assert len(v.per_run) == 2 and all(r["points"] >= 4 for r in v.per_run)
    low = [_doctor(r, sharpness=lambda h: h["sharpness"] * 0.5) for r in runs]
    bad = ph.verdict(low)
    assert not bad.passed
    assert bad.measured == pytest.approx(0.5 * v.measured, rel=1e-9)
    assert "Stayed below" in bad.explanation
    # one doctored run out of two: the median moves, the fraction within falls to 50%
    mixed = ph.verdict([runs[0], _doctor(runs[1], sharpness=lambda h: h["sharpness"] * 1.5)])
    assert not mixed.passed and mixed.details["fraction_within"] == 0.5


def test_edge_of_stability_ce_window_ends_at_loss_floor(tiny_runs):
    from learnmech_core.phenomena.edge_of_stability import CE_LOSS_FLOOR, eos_ratio

    run = tiny_runs("edge_of_stability")[0]
    spec = run.spec.replace(**{"optim.loss": "ce"})
    as_ce = dataclasses.replace(run, spec=spec)
    # push the loss below the floor from step 60 on: only steps <= 60 count, its second half is 30..60
    cut = _doctor(as_ce, loss=lambda h: np.where(h["step"] >= 60, CE_LOSS_FLOOR / 2, h["loss"] + 1.0))
    ratio, points, end = eos_ratio(cut)
    assert end == 60
    table = run.history.dropna(subset=["sharpness"])
    window = table[(table["step"] >= 30) & (table["step"] <= 60)]
    assert points == len(window)
    assert ratio == pytest.approx(float(np.median(window["sharpness"] * run.spec.optim.lr / 2)))


def test_adaptive_edge_of_stability_tiny_holds_and_doctored_fails(tiny_runs):
    ph = phenomena.get("adaptive_edge_of_stability")
    runs = tiny_runs("adaptive_edge_of_stability")
    assert all(s.optim.name == "adam" and s.optim.batch_size == 0 for s in (r.spec for r in runs))
    v = ph.verdict(runs)
    assert v.passed, v.explanation
    assert abs(v.measured - 1.0) <= 0.1
    high = ph.verdict([_doctor(r, precond_sharpness=lambda h: h["precond_sharpness"] * 2.0) for r in runs])
    assert not high.passed and high.measured == pytest.approx(2 * v.measured, rel=1e-9)


def test_progressive_sharpening_tiny_holds_and_doctored_fails(tiny_runs):
    ph = phenomena.get("progressive_sharpening")
    runs = tiny_runs("progressive_sharpening")
    v = ph.verdict(runs)
    assert v.passed, v.explanation
    assert v.measured > 0.8 and all(r["tested"] and r["strength"] > 1.0 for r in v.per_run)

    def reversed_sharpness(h):
        values = h["sharpness"].copy()
        mask = values.notna()
        values[mask] = values[mask].to_numpy()[::-1]
        return values

    falling = ph.verdict([_doctor(r, sharpness=reversed_sharpness) for r in runs])
    assert not falling.passed and falling.measured < -0.8
    # a run that reaches 2/eta is at the edge of stability: left out, so nothing is tested
    at_eos = ph.verdict([_doctor(r, sharpness=lambda h: h["sharpness"] * 100) for r in runs])
    assert not at_eos.passed and "nothing tests the claim" in at_eos.explanation


def test_spearman_exact():
    from learnmech_core.phenomena.progressive_sharpening import spearman

    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4, 5], [1, 3, 2, 5, 4]) == pytest.approx(0.8)
    assert np.isnan(spearman([1, 2], [1, 2]))


def test_catapult_tiny_phases_and_doctored_fails(tiny_runs):
    from learnmech_core.phenomena.catapult import classify

    ph = phenomena.get("catapult")
    runs = tiny_runs("catapult")
    phases = [classify(r)["phase"] for r in runs]
    assert phases[0] == "lazy" and phases[-1] == "diverged" and "catapult" in phases
    v = ph.verdict(runs)
    assert v.passed, v.explanation
    assert abs(v.measured - 1.0) <= 0.1
    # c is recomputed from each run's own step-0 sharpness
    for r, row in zip(runs, v.per_run, strict=True):
        s0 = r.history.dropna(subset=["sharpness"])["sharpness"].iloc[0]
        assert row["c"] == pytest.approx(r.spec.optim.lr * s0 / 2)
    # flatten every spike: no catapult phase is left and the verdict fails
    smooth = [_doctor(r, loss=lambda h: np.minimum.accumulate(h["loss"].to_numpy())) if r.status == "ok" else r
              for r in runs]
    bad = ph.verdict(smooth)
    assert not bad.passed and "out of order" in bad.explanation


def test_catapult_specs_are_a_pure_function():
    ph = phenomena.get("catapult")
    a = [s.key() for s in ph.specs("tiny", ["deep_linear"], ["gaussian_mixture"])]
    b = [s.key() for s in ph.specs("tiny", ["deep_linear"], ["gaussian_mixture"])]
    assert a == b and len(set(a)) == len(a)


def test_hessian_outliers_tiny_holds_and_doctored_fails(tiny_runs):
    ph = phenomena.get("hessian_outliers")
    runs = tiny_runs("hessian_outliers")
    assert sorted(r.spec.probes.topk for r in runs) == [6, 10]
    v = ph.verdict(runs)
    assert v.passed, v.explanation
    assert {r["classes"] for r in v.per_run} == {3, 5}
    assert all(r["gap_rank"] in (r["classes"] - 1, r["classes"]) for r in v.per_run)

    def flat_spectrum(run):
        sp = run.spectra.copy()
        last = (sp["step"] == sp["step"].max()) & (sp["kind"] == "hessian_topk")
        sp.loc[last, "value"] = np.where(sp.loc[last, "index"] == 0, 10.0, 1.0 / (1 + sp.loc[last, "index"]))
        return dataclasses.replace(run, spectra=sp)

    bad = ph.verdict([flat_spectrum(r) for r in runs])
    assert not bad.passed and all(r["gap_rank"] == 1 for r in bad.per_run)


@pytest.mark.parametrize("name", NAMES)
def test_figures_draw_the_prediction(name, tiny_runs):
    ph = phenomena.get(name)
    runs = tiny_runs(name)
    v = ph.verdict(runs)
    for normalised in (True, False):
        figs = ph.figures(runs, v, normalised=normalised, presentation=not normalised)
        assert figs and all(isinstance(f, go.Figure) for f in figs)
        for fig in figs:
            assert fig.layout.title.text.endswith("?")
            assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
            assert len(fig.layout.shapes) >= 1  # the prediction: a reference line or band
            assert len(fig.data) >= 1
    first = ph.figures(runs, v, normalised=True)[0]
    if name in ("edge_of_stability", "adaptive_edge_of_stability"):
        assert any(s.y0 == 1.0 and s.y1 == 1.0 for s in first.layout.shapes)
        raw = ph.figures(runs, v, normalised=False)[0]
        assert raw.layout.yaxis.type == "log"
        threshold = 2 / runs[0].spec.optim.lr if name == "edge_of_stability" else 38 / runs[0].spec.optim.lr
        assert any(s.y0 == pytest.approx(threshold, rel=1e-6) for s in raw.layout.shapes)
        colours = {t.line.color for t in first.data}
        assert len(colours) == 1  # both runs are MLPs: one colour per architecture


# ---- clause by clause: synthetic runs where each clause must hold or fail ------------------------------------------

def _synthetic(spec, sharpness, loss=None, status="ok", every=10):
    """A Run of `spec` with the given sharpness (a function of t in [0, 1], measured every `every` steps) and loss."""
    import pandas as pd

    from learnmech_core.train import Run

    steps = np.arange(spec.optim.steps + 1)
    t = steps / spec.optim.steps
    history = pd.DataFrame({"step": steps, "lr": spec.optim.lr,
                            "loss": loss(t) if loss is not None else np.exp(-3 * t),
                            "sharpness": np.where(steps % every == 0, sharpness(t), np.nan)})
    return Run(spec=spec, history=history, status=status)


def _sharpening_runs(seed=0, growth=None):
    """Synthetic runs of progressive sharpening's quick grid: sharpness 1 + g t (g by pair variant)."""
    growth = {"base": 1.0, "narrow": 1.5, "shallow": 0.5, "ce": 0.5, **(growth or {})}

    def variant(s):
        if s.model.arch != "mlp" or s.data.name != "gaussian_mixture" or s.model.activation != "tanh":
            return "other"
        if s.optim.loss == "ce":
            return "ce"
        return {32: "narrow"}.get(s.model.width) or {1: "shallow"}.get(s.model.depth) or "base"

    specs = phenomena.get("progressive_sharpening").specs("quick", seed=seed)
    return [_synthetic(s, (lambda g: lambda t: 1.0 + g * t)(growth.get(variant(s), 1.0)), every=40) for s in specs]


def _clause(verdict, word):
    return next(c for c in verdict.clauses if word in c.claim)


def test_progressive_sharpening_comparisons_are_clauses_that_can_fail():
    from learnmech_core.phenomena.progressive_sharpening import sharpening

    ph = phenomena.get("progressive_sharpening")
    runs = _sharpening_runs()
    v = ph.verdict(runs)
    assert v.passed, v.explanation
    assert [c.passed for c in v.clauses] == [True] * 5
    # the ratio is exactly strength(narrow) / strength(base), each S_final / S(first step >= 10%)
    by = {(r.spec.model.width, r.spec.model.depth, r.spec.optim.loss, r.spec.model.activation, r.spec.data.name): r
          for r in runs}
    base, narrow = by[(64, 3, "mse", "tanh", "gaussian_mixture")], by[(32, 3, "mse", "tanh", "gaussian_mixture")]
    first = next(t for t in np.arange(0, 801, 40) / 800 if t >= 0.1)
    assert sharpening(narrow)["strength"] == pytest.approx(2.5 / (1 + 1.5 * first))
    assert _clause(v, "narrower").measured == pytest.approx(
        sharpening(narrow)["strength"] / sharpening(base)["strength"], rel=1e-12)
    # the figure of the pairs draws both members' strengths, the predicted one first, for the three comparisons
    pair_fig = ph.figures(runs, v)[-1]
    assert pair_fig.layout.title.text.endswith("?") and len(pair_fig.layout.shapes) >= 1
    more, other = pair_fig.data
    i = next(k for k, x in enumerate(more.x) if x.startswith("narrower / wider"))
    assert len(more.x) == 3 and more.y[i] == pytest.approx(sharpening(narrow)["strength"])
    assert other.y[i] == pytest.approx(sharpening(base)["strength"])
    # the wider net sharpens more: only the narrower clause fails, and with it the verdict
    wide_wins = ph.verdict(_sharpening_runs(growth={"narrow": 0.5}))
    assert not wide_wins.passed and _clause(wide_wins, "narrower").passed is False
    assert _clause(wide_wins, "narrower").measured < 1
    assert all(c.passed for c in wide_wins.clauses if "narrower" not in c.claim)
    # cross-entropy sharpens more: the MSE clause fails
    ce_wins = ph.verdict(_sharpening_runs(growth={"ce": 3.0}))
    assert _clause(ce_wins, "MSE").passed is False and not ce_wins.passed
    # a member of a pair at the edge of stability is left out: its comparison has no number and fails
    runs = _sharpening_runs()
    runs = [_doctor(r, sharpness=lambda h: h["sharpness"] * 30) if r.spec.model.width == 32 else r for r in runs]
    left_out = ph.verdict(runs)
    assert _clause(left_out, "narrower").measured is None and _clause(left_out, "narrower").passed is False


def test_three_seeds_each_failing_a_different_clause_do_not_make_a_prediction_hold():
    from learnmech_core.phenomena.base import Clause, Verdict, at_least, combine_seeds

    def seed(fails: int | None) -> Verdict:
        return Verdict.of([Clause(f"clause {i}", f"q{i}", at_least(1.0), 0.5 if i == fails else 2.0,
                                  i != fails) for i in range(3)], "synthetic")

    per_seed = {0: seed(0), 1: seed(1), 2: seed(2)}
    combined = combine_seeds(per_seed)
    assert [c.passed for c in combined.clauses] == [True, True, True]  # each clause holds on 2 of 3 seeds
    assert not combined.passed and combined.details["pass_fraction"] == 0
    assert combined.summary().endswith("every clause together on 0 of 3 seeds: fails")
    per_seed[2] = seed(None)
    assert not combine_seeds(per_seed).passed  # the whole claim on 1 of 3 seeds
    per_seed[1] = seed(None)
    both = combine_seeds(per_seed)
    assert both.passed and both.details["pass_fraction"] == 2 / 3 and "holds on 2 of 3 (seed 1, 2)" in both.explanation


def test_progressive_sharpening_comparison_holds_on_two_of_three_seeds():
    from learnmech_core.phenomena.base import combine_seeds

    ph = phenomena.get("progressive_sharpening")
    per_seed = {0: ph.verdict(_sharpening_runs(0)), 1: ph.verdict(_sharpening_runs(1, {"narrow": 0.5})),
                2: ph.verdict(_sharpening_runs(2))}
    assert [per_seed[s].passed for s in (0, 1, 2)] == [True, False, True]
    combined = combine_seeds(per_seed)
    assert combined.passed and _clause(combined, "narrower").passed
    per_seed[2] = ph.verdict(_sharpening_runs(2, {"narrow": 0.9}))
    assert _clause(combine_seeds(per_seed), "narrower").passed is False


def _catapult_runs(phases: dict[str, dict[float, str]], final_ratio: float = 0.8, lambda0: float = 4.0):
    """Synthetic catapult sweeps: per arch, c -> phase; a catapult's loss spikes 5x then falls, its sharpness
    falls from lambda0 to final_ratio x 2/eta; a diverged run is stored with status diverged."""
    from learnmech_core.phenomena.catapult import base_spec

    runs = []
    for arch, sweep in phases.items():
        base = base_spec(arch, "gaussian_mixture", "tiny", 0)
        for c, phase in sweep.items():
            spec = base.replace(**{"optim.lr": c * 2 / lambda0})
            end = final_ratio * 2 / spec.optim.lr if phase == "catapult" else lambda0
            loss = {"lazy": lambda t: np.exp(-3 * t),
                    "catapult": lambda t: np.where(t < 0.1, 1 + 40 * t, 5 * np.exp(-8 * (t - 0.1))),
                    "diverged": lambda t: np.exp(20 * t)}[phase]
            runs.append(_synthetic(spec, (lambda e: lambda t: lambda0 + (e - lambda0) * np.minimum(t * 4, 1))(end),
                                   loss, status="diverged" if phase == "diverged" else "ok"))
    return runs


def test_catapult_clauses_each_can_fail():
    ph = phenomena.get("catapult")
    relu = {0.5: "lazy", 0.9: "lazy", 1.2: "catapult", 1.5: "diverged", 3.0: "diverged"}
    linear = {0.5: "lazy", 0.9: "lazy", 1.2: "catapult", 1.8: "catapult", 2.2: "diverged", 3.0: "diverged"}
    v = ph.verdict(_catapult_runs({"mlp": relu, "deep_linear": linear}))
    assert v.passed and [c.passed for c in v.clauses] == [True] * 4, v.explanation
    # first boundary: median over systems of sqrt(largest lazy c x smallest catapult c)
    assert v.measured == pytest.approx(np.sqrt(0.9 * 1.2), rel=1e-9)
    assert _clause(v, "\u03b7_max").measured == pytest.approx(np.sqrt(1.8 * 2.2), rel=1e-9)
    # the linear model diverges at 1.5: eta_max lies at sqrt(1.2 x 1.5) = 1.34, outside 10% of 2
    early = ph.verdict(_catapult_runs({"mlp": relu, "deep_linear": {**linear, 1.5: "diverged", 1.8: "diverged"}}))
    assert _clause(early, "\u03b7_max").passed is False and not early.passed
    assert _clause(early, "\u03b7_max").measured == pytest.approx(np.sqrt(1.2 * 1.5), rel=1e-9)
    assert _clause(early, "phase transition").passed and _clause(early, "in order").passed
    # catapults that end above 2/eta (at the edge of stability, not in a flatter region): landing fails
    high = ph.verdict(_catapult_runs({"mlp": relu, "deep_linear": linear}, final_ratio=1.05))
    assert _clause(high, "flatter").passed is False and _clause(high, "flatter").measured == pytest.approx(1.05)
    # a lazy run above a catapult run: out of order
    reversed_ = ph.verdict(_catapult_runs({"mlp": {**relu, 1.5: "lazy"}, "deep_linear": linear}))
    assert _clause(reversed_, "in order").measured == 0.5 and _clause(reversed_, "in order").passed is False
    # without the linear model eta_max = 4/lambda_0 is not tested, and the verdict says so
    relu_only = ph.verdict(_catapult_runs({"mlp": relu}))
    assert _clause(relu_only, "\u03b7_max").passed is None and "deep_linear" in _clause(relu_only, "\u03b7_max").needs
    assert relu_only.passed and relu_only.word() == "holds here; 1 clause(s) not tested"


def _gn(run, share=None, converged=None, drop=False):
    """A copy of a run with its Gauss-Newton split doctored: shares replaced by share(index), or removed."""
    sp, hist = run.spectra.copy(), run.history.copy()
    gn = sp["kind"].str.startswith("gn_")
    if drop:
        sp, hist = sp[~gn], hist.drop(columns=["gn_converged", "gn_products"])
    if share is not None:
        rows = sp["kind"] == "gn_share"
        sp.loc[rows, "value"] = [share(i) for i in sp.loc[rows, "index"]]
    if converged is not None:
        hist["gn_converged"] = hist["gn_converged"].where(hist["gn_converged"].isna(), float(converged))
    return dataclasses.replace(run, spectra=sp, history=hist)


def test_hessian_outliers_gauss_newton_clause_can_hold_and_fail(tiny_runs):
    ph = phenomena.get("hessian_outliers")
    runs = tiny_runs("hessian_outliers")
    v = ph.verdict(runs)
    assert [c.passed for c in v.clauses] == [True, True, True] and v.word() == "holds"
    # the tiny runs' split: G carries the outliers (the research branch measured 1.000 at quick)
    shares = [r["gn_share_min"] for r in v.per_run]
    assert v.clauses[2].measured == pytest.approx(min(shares)) and min(shares) > 0.95
    assert all(r["gn_converged"] and r["gn_residual_rel"] < 0.1 for r in v.per_run)
    c = runs[0].spec.data.n_classes  # 3: the outliers are ranks 1 and 2
    # a residual carrying half of one outlier direction fails the clause; a bulk direction (rank C) does not count
    half = ph.verdict([_gn(runs[0], share=lambda i: 0.5 if i == c - 2 else 1.0)] + list(runs[1:]))
    assert half.clauses[2].measured == 0.5 and half.clauses[2].passed is False and not half.passed
    assert half.clauses[0].passed and half.clauses[1].passed
    bulk = ph.verdict([_gn(runs[0], share=lambda i: 0.1 if i >= c - 1 else 0.95)] + list(runs[1:]))
    assert bulk.clauses[2].measured == pytest.approx(0.95) and bulk.clauses[2].passed
    at_bound = ph.verdict([_gn(r, share=lambda i: 0.9) for r in runs])
    assert at_bound.clauses[2].measured == pytest.approx(0.9) and at_bound.clauses[2].passed
    # an uncertified (unconverged) or missing split is not a measurement: the clause fails and says why
    unconverged = ph.verdict([_gn(runs[0], converged=False)] + list(runs[1:]))
    assert unconverged.clauses[2].measured is None and unconverged.clauses[2].passed is False
    assert "not converged" in unconverged.clauses[2].note
    missing = ph.verdict([_gn(r, drop=True) for r in runs])
    assert missing.clauses[2].passed is False and "no Gauss-Newton split" in missing.clauses[2].note
    assert missing.per_run[0]["gn_converged"] is None

    def flat(run):
        sp = run.spectra.copy()
        last = (sp["step"] == sp["step"].max()) & (sp["kind"] == "hessian_topk")
        sp.loc[last, "value"] = np.where(sp.loc[last, "index"] == 0, 10.0, 1.0 / (1 + sp.loc[last, "index"]))
        return dataclasses.replace(run, spectra=sp)

    # four runs (a reseeded copy of each); one loses its gap: 75% of runs still hold, but only one class count
    # holds in every run
    copies = [dataclasses.replace(r, spec=r.spec.replace(seed=r.spec.seed + 7)) for r in runs]
    one_bad = ph.verdict([flat(runs[0])] + list(runs[1:]) + copies)
    assert one_bad.clauses[0].measured == 0.75 and one_bad.clauses[0].passed
    assert one_bad.clauses[1].measured == 1.0 and one_bad.clauses[1].passed is False and not one_bad.passed
    assert one_bad.clauses[2].passed  # the split is untouched


def test_hessian_outliers_figure_draws_g_over_h(tiny_runs):
    ph = phenomena.get("hessian_outliers")
    runs = tiny_runs("hessian_outliers")
    v = ph.verdict(runs)
    fig = ph.figures(runs, v, normalised=True)[0]
    rings = [t for t in fig.data if t.legendgroup == "gauss_newton"]
    lines = [t for t in fig.data if t.legendgroup != "gauss_newton"]
    assert len(rings) == len(lines) == len(runs) and sum(bool(t.showlegend) for t in rings) == 1
    for run, ring, line in zip(runs, rings, lines, strict=True):
        c = run.spec.data.n_classes
        assert "G carries" in line.name and ring.marker.symbol.endswith("-open")
        # G's outliers sit on H's (both divided by H's top eigenvalue)
        np.testing.assert_allclose(ring.y[: c - 1], line.y[: c - 1], rtol=0.02)
        assert "v\u1d40Gv/\u03bb" in ring.hovertext[0]


def test_curvature_phenomena_quote_their_source_and_write_math():
    for name in ("progressive_sharpening", "catapult", "hessian_outliers", "adaptive_edge_of_stability"):
        ph = phenomena.get(name)
        assert ph.source is not None and len(ph.source.quote) > 80 and ph.source.citation
        assert "$" in ph.prediction and ph.prediction.count("$") % 2 == 0
    assert "38/\u03b7" in phenomena.get("adaptive_edge_of_stability").source.quote
    assert len(phenomena.get("adaptive_edge_of_stability").tried) >= 2
