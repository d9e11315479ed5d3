"""Normalisations and the collapse score, against exact values."""

import numpy as np
import pandas as pd
import pytest

from learnmech_core import OptimSpec, RunSpec
from learnmech_core.universality import (
    KINDS,
    collapse_score,
    compute_fraction_normalise,
    curve_spread,
    lr_time,
    normalise,
    stability_threshold,
    time_axis,
)


def _spec(**optim):
    return RunSpec(optim=OptimSpec(**{"lr": 0.2, "steps": 40, **optim}))


def _history():
    return pd.DataFrame({"step": [0, 10, 20, 30, 40], "lr": [0.2] * 5, "loss": [4.0, 2.0, 3.0, 1.0, 0.5],
                         "sharpness": [5.0, np.nan, 10.0, np.nan, 12.0]})


def test_stability_thresholds():
    assert stability_threshold(_spec()) == pytest.approx(10.0)
    assert stability_threshold(_spec(name="momentum", momentum=0.9)) == pytest.approx(19.0)
    assert stability_threshold(_spec(name="adam", lr=0.01, beta1=0.9)) == pytest.approx(3800.0)
    assert stability_threshold(_spec(name="adamw", lr=0.01, beta1=0.5)) == pytest.approx(600.0)
    np.testing.assert_allclose(stability_threshold(_spec(), np.array([0.1, 0.4])), [20.0, 5.0])


def test_lr_time_constant_and_scheduled():
    np.testing.assert_allclose(lr_time(_history()), [0, 2, 4, 6, 8])
    h = pd.DataFrame({"step": [0, 1, 3], "lr": [1.0, 0.5, 0.25]})
    # eta_0 = 1 for step 0->1, then eta_1 = 0.5 in force for steps 1->3
    np.testing.assert_allclose(lr_time(h), [0.0, 1.0, 2.0])


def test_time_axes():
    h = _history()
    np.testing.assert_allclose(time_axis(h, _spec(), "step"), [0, 10, 20, 30, 40])
    np.testing.assert_allclose(time_axis(h, _spec(), "fraction"), [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(time_axis(h, _spec(name="momentum", momentum=0.75), "effective_time"),
                               [0, 8, 16, 24, 32])
    np.testing.assert_allclose(time_axis(h, _spec(name="adam"), "effective_time"), [0, 2, 4, 6, 8])
    with pytest.raises(ValueError, match="time axis must be one of"):
        time_axis(h, _spec(), "wall")


def test_normalise_sharpness_drops_missing_rows():
    out = normalise(_history(), _spec(), "sharpness")
    assert list(out.columns) == ["step", "x", "y", "x_norm", "y_norm"]
    np.testing.assert_allclose(out["step"], [0, 20, 40])
    np.testing.assert_allclose(out["x_norm"], [0, 4, 8])
    np.testing.assert_allclose(out["y_norm"], [0.5, 1.0, 1.2])


def test_normalise_loss_kinds():
    h = _history()
    np.testing.assert_allclose(normalise(h, _spec(), "loss_initial")["y_norm"], [1, 0.5, 0.75, 0.25, 0.125])
    out = normalise(h, _spec(), "loss_final")
    np.testing.assert_allclose(out["y_norm"], [8, 4, 6, 2, 1])
    np.testing.assert_allclose(out["x_norm"], [0, 0.25, 0.5, 0.75, 1.0])
    cf = normalise(h, _spec(), "compute_fraction", irreducible=0.25)
    np.testing.assert_allclose(cf["y_norm"], [15, 7, 11, 3, 1])


def test_normalise_precond_uses_adam_threshold():
    h = pd.DataFrame({"step": [0, 10], "lr": [0.01, 0.01], "precond_sharpness": [1900.0, 3800.0]})
    out = normalise(h, _spec(name="adam", lr=0.01), "precond_sharpness")
    np.testing.assert_allclose(out["y_norm"], [0.5, 1.0])
    np.testing.assert_allclose(out["x_norm"], [0.0, 0.1])


def test_normalise_errors_name_the_problem():
    with pytest.raises(ValueError, match="normalisation kind must be one of"):
        normalise(_history(), _spec(), "nonsense")
    with pytest.raises(ValueError, match="no 'precond_sharpness' column"):
        normalise(_history(), _spec(), "precond_sharpness")
    assert set(KINDS) == {"sharpness", "precond_sharpness", "loss_initial", "loss_final", "compute_fraction"}


def test_compute_fraction_normalise_exact():
    x, y = compute_fraction_normalise([0, 50, 100], [3.0, 2.0, 1.5], irreducible=1.0)
    np.testing.assert_allclose(x, [0, 0.5, 1.0])
    np.testing.assert_allclose(y, [4.0, 2.0, 1.0])
    x, _ = compute_fraction_normalise([0, 50], [2.0, 1.0], total=200)
    np.testing.assert_allclose(x, [0, 0.25])
    with pytest.raises(ValueError, match="final loss minus irreducible"):
        compute_fraction_normalise([0, 1], [2.0, 1.0], irreducible=1.0)


def test_curve_spread_exact():
    x = np.linspace(0, 1, 5)
    assert curve_spread([(x, np.ones(5)), (x, 3 * np.ones(5))]) == pytest.approx(0.5)
    assert curve_spread([(x, 2 * x + 1), (x, 2 * x + 1)]) == pytest.approx(0.0)
    # different grids, unsorted x: y = x and y = 3x on the shared range [0.5, 1]: std/mean = 0.5 everywhere
    a = (np.array([1.0, 0.0, 0.5]), np.array([1.0, 0.0, 0.5]))
    b = (np.array([0.5, 2.0]), np.array([1.5, 6.0]))
    assert curve_spread([a, b]) == pytest.approx(0.5)


def test_curve_spread_errors():
    x = np.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="at least two curves"):
        curve_spread([(x, x)])
    with pytest.raises(ValueError, match="share an x range"):
        curve_spread([(x, x), (x + 2, x)])


def test_collapse_score_exact():
    x = np.linspace(0, 1, 11)
    raw = [(x, np.ones(11)), (x, 3 * np.ones(11))]  # spread 0.5
    norm = [(x, 2 * np.ones(11)), (x, 2.2 * np.ones(11))]  # spread 0.1 / 2.1
    assert collapse_score(raw, norm) == pytest.approx((0.1 / 2.1) / 0.5)
    assert collapse_score(raw, raw) == pytest.approx(1.0)
    assert collapse_score(norm, raw) > 1.0
