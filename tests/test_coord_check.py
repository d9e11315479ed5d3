"""muP coordinate check: slopes against width under SP and muP; per-layer numbers equal a hand-computed step."""

from __future__ import annotations

import pytest
import torch

from learnmech_core import DataSpec, ModelSpec, OptimSpec, RunSpec
from learnmech_core.coord_check import coord_check, coord_check_run, width_slopes
from learnmech_core.data import load
from learnmech_core.train import build_model


def base(opt="adam", lr=0.01, **model) -> RunSpec:
    return RunSpec(model=ModelSpec(arch="mlp", width=16, depth=2, activation="tanh", base_width=16, **model),
                   data=DataSpec(name="gaussian_mixture", n_train=64, n_test=0, dim=8, n_classes=4),
                   optim=OptimSpec(name=opt, lr=lr, loss="ce", steps=10))


def test_readout_change_grows_with_width_under_sp_and_stays_flat_under_mup():
    """A priori, with Adam: its first updates are sign-like (entries +-lr), so the read-out's change
    dW_out h sums `width` aligned terms and grows like width (slope 1) under SP; the hidden layer's likewise
    (slope 1, less at these small widths). muP divides those learning rates by width / base width: slope 0.
    Measured here (widths 16-128, 2 seeds, step 3): SP read-out 1.03, SP hidden 0.66, SP input -0.11,
    muP 0.01 / -0.02 / -0.03."""
    table = coord_check(base(), [16, 32, 64, 128], seeds=(0, 1), steps=3, n_examples=64)
    assert set(table["layer"]) == {"layers.0", "layers.1", "layers.2"} and len(table) == 2 * 4 * 2 * 3 * 3
    slopes = width_slopes(table).set_index(["param", "role"])["slope"]
    assert slopes["sp", "output"] > 0.75
    assert slopes["sp", "hidden"] > 0.4
    for role in ("input", "hidden", "output"):
        assert abs(slopes["mup", role]) < 0.15, (role, slopes["mup", role])


@pytest.mark.parametrize("param", ["sp", "mup"])
def test_one_step_equals_a_hand_computed_forward(param):
    spec = RunSpec(model=ModelSpec(arch="mlp", width=6, depth=1, activation="tanh", param=param, base_width=3),
                   data=DataSpec(name="gaussian_mixture", n_train=10, n_test=0, dim=4, n_classes=3),
                   optim=OptimSpec(name="gd", lr=0.3, loss="mse", steps=1), dtype="float64")
    table = coord_check_run(spec, steps=1, n_examples=10)
    model, _ = build_model(spec)  # the same seed: the same initial weights
    data = load(spec.data)
    x = data.x_train.double()
    y = data.targets(data.y_train, "mse").double()
    w0, b0 = model.layers[0].weight.detach().clone(), model.layers[0].bias.detach().clone()
    w1, b1 = model.layers[1].weight.detach().clone(), model.layers[1].bias.detach().clone()
    m = 6 / 3  # muP's width multiplier; its SGD learning rates are input x m, output x 1/m (Tensor Programs V)
    lr0, lr1 = (0.3 * m, 0.3 / m) if param == "mup" else (0.3, 0.3)
    z0 = x @ w0.T + b0
    h = torch.tanh(z0)
    out = h @ w1.T + b1
    d_out = (out - y) / len(x)  # loss 0.5 sum over outputs, mean over examples
    d_z0 = (d_out @ w1) * (1 - h**2)
    w1n, b1n = w1 - lr1 * d_out.T @ h, b1 - lr1 * d_out.sum(0)
    w0n, b0n = w0 - lr0 * d_z0.T @ x, b0 - lr0 * d_z0.sum(0)
    z0n = x @ w0n.T + b0n
    outn = torch.tanh(z0n) @ w1n.T + b1n
    got = table.set_index("layer")
    assert got.loc["layers.0", "change"] == pytest.approx(float((z0n - z0).abs().mean()), rel=1e-12)
    assert got.loc["layers.1", "change"] == pytest.approx(float((outn - out).abs().mean()), rel=1e-12)
    assert got.loc["layers.1", "size"] == pytest.approx(float(outn.abs().mean()), rel=1e-12)
    assert list(got["role"]) == ["input", "output"]


def test_slopes_of_exact_power_laws_and_bad_arguments():
    import pandas as pd

    rows = [("sp", w, s, 1, "out", "output", 0.1 * w**1.0, 1.0) for w in (8, 16, 32) for s in (0, 1)]
    rows += [("mup", w, s, 1, "out", "output", 0.5, 1.0) for w in (8, 16, 32) for s in (0, 1)]
    table = pd.DataFrame(rows, columns=["param", "width", "seed", "step", "layer", "role", "change", "size"])
    slopes = width_slopes(table).set_index("param")["slope"]
    assert slopes["sp"] == pytest.approx(1.0) and slopes["mup"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="at least two different widths"):
        coord_check(base(), [32, 32])
    with pytest.raises(ValueError, match="steps must be"):
        coord_check_run(base(), steps=0)
    with pytest.raises(ValueError, match="step 7 is not in the table"):
        width_slopes(table, step=7)
