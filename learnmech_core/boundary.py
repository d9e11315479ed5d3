"""Decision boundary of a classifier of 2-D inputs: its predictions on a grid (TensorFlow Playground style).

`grid_axes` spans the training inputs (plus a margin); `predict_grid` evaluates the model on every grid
point. For two classes the value is a signed score whose zero level is the decision boundary:
p(class 1) - p(class 0) for cross-entropy, and the output difference o_1 - o_0 clipped to [-1, 1] for
MSE on one-hot targets (which the model regresses, so 0 is again where the argmax flips). For more
classes it is the predicted class. `from_run` recomputes it from a finished run's saved weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import DataInfo

GRID_POINTS = 48


@dataclass
class Boundary:
    """Predictions on a grid: z[i, j] at (xs[j], ys[i]); `step` is the training step they were taken at."""

    xs: np.ndarray
    ys: np.ndarray
    z: np.ndarray
    n_classes: int
    step: int = 0


def supports(info: DataInfo) -> bool:
    """Whether a dataset has 2-D inputs and classes (moons, circles, spirals, 2-D Gaussian mixtures, uploads)."""
    return info.task == "classification" and info.kind == "vector" and tuple(info.input_shape) == (2,)


def grid_axes(x: np.ndarray | torch.Tensor, points: int = GRID_POINTS, margin: float = 0.1) -> tuple[np.ndarray, ...]:
    """Grid coordinates covering the inputs' bounding box, widened by `margin` of its size on each side."""
    x = np.asarray(x, dtype=float)
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    return tuple(np.linspace(lo[k] - pad[k], hi[k] + pad[k], points) for k in range(2))


@torch.no_grad()
def predict_grid(model: torch.nn.Module, xs: np.ndarray, ys: np.ndarray, loss: str, n_classes: int,
                 step: int = 0) -> Boundary:
    """The model's decision values on the grid xs x ys (see the module docstring)."""
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        gx, gy = np.meshgrid(xs, ys)
        points = torch.as_tensor(np.c_[gx.ravel(), gy.ravel()], dtype=param.dtype, device=param.device)
        out = model(points).detach().to("cpu", torch.float64)
    finally:
        model.train(was_training)
    if n_classes == 2:
        if loss == "ce":
            prob = torch.softmax(out, dim=1)
            z = (prob[:, 1] - prob[:, 0]).numpy()
        else:
            z = np.clip((out[:, 1] - out[:, 0]).numpy(), -1.0, 1.0)
    else:
        z = out.argmax(dim=1).numpy().astype(float)
    return Boundary(np.asarray(xs, float), np.asarray(ys, float), z.reshape(len(ys), len(xs)).astype(np.float32),
                    n_classes, step)


def from_run(run, points: int = GRID_POINTS) -> Boundary | None:
    """The boundary of a finished run's final weights (None without saved weights or 2-D classes)."""
    from .data import describe
    from .train import build_model

    if run.weights is None or not supports(describe(run.spec.data)):
        return None
    model, data = build_model(run.spec, weights=run.weights)
    xs, ys = grid_axes(data.x_train, points)
    step = int(run.history["step"].max()) if len(run.history) else 0
    return predict_grid(model, xs, ys, run.spec.optim.loss, data.info.n_outputs, step)
