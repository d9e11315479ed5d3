"""Sweep tables: varying fields found, final metrics read exactly, seeds averaged; the figures built from them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from learnmech_core import DataSpec, ModelSpec, OptimSpec, RunSpec
from learnmech_core.hparams import aggregate_seeds, final_metrics, hparams_table, log_scaled, varying_fields
from learnmech_core.plots.hparams import hparams_scatter_figure, parallel_coordinates_figure
from learnmech_core.train import Run


def spec(lr=0.1, width=16, seed=0, opt="gd", activation="tanh") -> RunSpec:
    return RunSpec(model=ModelSpec(width=width, depth=1, activation=activation), data=DataSpec(name="moons"),
                   optim=OptimSpec(name=opt, lr=lr, steps=4), seed=seed)


def fake_run(s: RunSpec, final_loss: float, sharpness: float = float("nan"), status="ok") -> Run:
    history = pd.DataFrame({"step": [0, 2, 4], "loss": [1.0, 0.5 * final_loss, final_loss],
                            "train_acc": [0.5, 0.6, 0.9], "sharpness": [1.0, np.nan, sharpness]})
    return Run(spec=s, history=history, status=status)


def sweep() -> list[Run]:
    runs = []
    for lr in (0.01, 0.1, 1.0):
        for width in (16, 64):
            for seed in (0, 1):
                runs.append(fake_run(spec(lr, width, seed), final_loss=lr * width / 16 + seed, sharpness=1.5 / lr))
    return runs


def test_varying_fields_are_found_in_spec_order():
    runs = sweep()
    assert varying_fields([r.spec for r in runs]) == ["model.width", "optim.lr", "seed"]
    assert varying_fields([spec(), spec()]) == []
    assert varying_fields([spec(activation="relu"), spec()]) == ["model.activation"]


def test_final_metrics_are_read_from_the_history():
    m = final_metrics(fake_run(spec(lr=0.1), final_loss=0.25, sharpness=12.0))
    assert m["final_loss"] == 0.25 and m["min_loss"] == 0.125 and m["final_train_acc"] == 0.9
    assert m["final_sharpness"] == 12.0 and m["sharpness_ratio"] == pytest.approx(12.0 * 0.1 / 2)
    assert m["steps_done"] == 4 and math.isnan(m["final_test_acc"])
    momentum = final_metrics(fake_run(spec(lr=0.1, opt="momentum"), 0.2, sharpness=38.0))
    assert momentum["sharpness_ratio"] == pytest.approx(38.0 / ((2 + 2 * 0.9) / 0.1))
    assert math.isnan(final_metrics(fake_run(spec(opt="adam"), 0.2, sharpness=5.0))["sharpness_ratio"])


def test_table_and_seed_average():
    runs = sweep()
    table = hparams_table(runs)
    assert list(table.columns[:5]) == ["key", "status", "model.width", "optim.lr", "seed"]
    assert "final_test_acc" not in table  # no run recorded it
    assert len(table) == 12 and set(table["key"]) == {r.key for r in runs}
    row = table[(table["optim.lr"] == 0.1) & (table["model.width"] == 64) & (table["seed"] == 1)].iloc[0]
    assert row["final_loss"] == pytest.approx(0.1 * 4 + 1) and row["sharpness_ratio"] == pytest.approx(0.75)
    mean = aggregate_seeds(table, ["model.width", "optim.lr", "seed"])
    assert len(mean) == 6 and set(mean["seeds"]) == {2}
    row = mean[(mean["optim.lr"] == 1.0) & (mean["model.width"] == 16)].iloc[0]
    assert row["final_loss"] == pytest.approx(1.5) and row["final_loss_std"] == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ValueError, match="only in seed"):
        aggregate_seeds(table, ["seed"])


def test_log_scale_rule():
    assert log_scaled([0.01, 0.1, 1.0]) and log_scaled([16, 256])
    assert not log_scaled([1, 2, 4]) and not log_scaled([0, 1, 100]) and not log_scaled(["a", "b"])


def test_parallel_coordinates_axes():
    unmeasured = Run(spec=spec(lr=0.1, width=16, seed=5), history=pd.DataFrame({"step": [0, 4], "loss": [1.0, 0.3]}))
    table = hparams_table(sweep() + [unmeasured])
    fig = parallel_coordinates_figure(table, ["model.width", "optim.lr", "status"], ["final_loss"], "sharpness_ratio")
    dims = {d.label: d for d in fig.data[0].dimensions}
    np.testing.assert_allclose(sorted(set(dims["optim.lr (log)"].values)), [-2.0, -1.0, 0.0])
    assert list(dims["optim.lr (log)"].ticktext) == ["0.01", "0.1", "1"]
    assert list(dims["status"].ticktext) == ["ok"] and len(dims["final loss (log)"].values) == 12
    assert "1 run without every metric left out" in fig.layout.title.text


def test_scatter_one_line_per_group_on_log_axes():
    table = aggregate_seeds(hparams_table(sweep()), ["model.width", "optim.lr", "seed"])
    fig = hparams_scatter_figure(table, "optim.lr", "final_loss", group="model.width")
    assert [t.name for t in fig.data] == ["model.width=16", "model.width=64"]
    assert list(fig.data[0].x) == [0.01, 0.1, 1.0] and fig.data[0].error_y.array is not None
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type is None  # losses 0.51-4.5 span < 10x
    with pytest.raises(ValueError, match="not a column"):
        hparams_scatter_figure(table, "optim.momentum", "final_loss")


def test_log_ticks_are_whole_numbers_at_1_2_5_steps():
    from learnmech_core.plots.log_ticks import log_tick_values

    assert log_tick_values([0.3, 4.0]) == [0.2, 0.5, 1.0, 2.0, 5.0]
    assert log_tick_values([1e-4, 1e3]) == [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0]  # decades only
    assert log_tick_values([0.0, -1.0]) == []
