"""muP's coordinate check: how much each layer's output moves in the first steps, against width.

Yang et al. 2022 (Tensor Programs V, section 8 and the `mup` package's `get_coord_data`): train a few
steps at several widths and plot, per layer, the typical size of the change of its output coordinates
from initialisation, |h_t - h_0| (mean absolute value over a fixed batch and all units), against width
on log-log axes. Under muP every curve is flat (each coordinate moves by Theta(1) whatever the width);
under standard parametrisation the read-out's change (and with Adam the hidden layers') grows with
width -- a straight line of slope about 1 -- which is why SP's best learning rate shifts with width.

A layer's "output" is what its weight layer (`models.weight_layers`: PLinear / PConv2d / PEmbedding)
returns, before the activation, including the parametrisation's forward multiplier. The models,
their muP scalings and the optimiser's per-layer learning rates are `models.build` and
`train.make_optimizer`, the ones every run trains with. The learning rate is held constant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import models
from .config import RunSpec
from .data import load
from .representations import layer_features
from .train import device_split, loss_function, make_optimizer

COLUMNS = ["param", "width", "seed", "step", "layer", "role", "change", "size"]


def coord_check_run(spec: RunSpec, steps: int = 4, n_examples: int = 64, data=None) -> pd.DataFrame:
    """Rows (step, layer, role, change, size) of one model: after each of `steps` updates, the mean |h_t - h_0| and
    mean |h_t| of every weight layer's output on the first `n_examples` training examples."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= 100:
        raise ValueError(f"steps must be an integer between 1 and 100 (got {steps!r})")
    data = load(spec.data) if data is None else data
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    x_train, _, y_train, _ = device_split(data, spec.optim.loss, "cpu", dtype)
    generator = torch.Generator().manual_seed(spec.seed)
    model = models.build(spec.model, data.info, spec.optim.name, generator, "cpu", dtype)
    optimizer = make_optimizer(spec, model)
    loss_fn = loss_function(spec.optim.loss)
    layers = models.weight_layers(model)
    probe = x_train[:n_examples]
    names = [name for name, _ in layers]
    start = layer_features(model, probe, names)
    n, batch = len(x_train), spec.optim.batch_size
    rows = []
    for step in range(1, steps + 1):
        idx = torch.randperm(n, generator=generator)[:batch] if 0 < batch < n else slice(None)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x_train[idx]), y_train[idx]).backward()
        optimizer.step()
        now = layer_features(model, probe, names)
        for name, layer in layers:
            change = float(np.abs(now[name].astype(np.float64) - start[name]).mean())
            rows.append((step, name, layer.role, change, float(np.abs(now[name].astype(np.float64)).mean())))
    return pd.DataFrame(rows, columns=["step", "layer", "role", "change", "size"])


def coord_check(base: RunSpec, widths, params=("sp", "mup"), seeds=(0, 1, 2), steps: int = 4,
                n_examples: int = 64, on_progress=None) -> pd.DataFrame:
    """The coordinate check of `base` at every width x parametrisation x seed: tidy rows with COLUMNS.

    `base` fixes the architecture, depth, activation, base width (muP's reference), dataset,
    optimiser, learning rate and batch size; width, param and seed are set here. `on_progress(done,
    total)` is called after each model.
    """
    widths = sorted({int(w) for w in widths})
    if len(widths) < 2:
        raise ValueError(f"widths must hold at least two different widths (got {widths})")
    if not params or not seeds:
        raise ValueError("params and seeds must each name at least one value")
    data = load(base.data)
    grid = [(p, w, s) for p in params for w in widths for s in seeds]
    parts = []
    for i, (param, width, seed) in enumerate(grid):
        spec = base.replace(**{"model.width": width, "model.param": param, "seed": int(seed)})
        part = coord_check_run(spec, steps, n_examples, data=data)
        part.insert(0, "seed", int(seed))
        part.insert(0, "width", width)
        part.insert(0, "param", param)
        parts.append(part)
        if on_progress is not None:
            on_progress(i + 1, len(grid))
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def width_slopes(table: pd.DataFrame, step: int | None = None) -> pd.DataFrame:
    """Least-squares slope of log(mean change over seeds) against log(width), per parametrisation and layer.

    Slope 0: the layer's change does not depend on width (muP's promise); slope 1: it grows in
    proportion to width. `step` defaults to the last step in the table.
    """
    if not len(table):
        raise ValueError("the coordinate-check table is empty")
    step = int(table["step"].max()) if step is None else int(step)
    at = table[table["step"] == step]
    if not len(at):
        raise ValueError(f"step {step} is not in the table (steps: {sorted(table['step'].unique())})")
    mean = at.groupby(["param", "layer", "role", "width"], sort=False)["change"].mean().reset_index()
    rows = []
    for (param, layer, role), g in mean.groupby(["param", "layer", "role"], sort=False):
        ok = g["change"] > 0
        if ok.sum() < 2:
            slope = float("nan")
        else:
            slope = float(np.polyfit(np.log(g.loc[ok, "width"].to_numpy(float)), np.log(g.loc[ok, "change"]), 1)[0])
        rows.append({"param": param, "layer": layer, "role": role, "step": step, "slope": slope})
    return pd.DataFrame(rows, columns=["param", "layer", "role", "step", "slope"])
