"""The unconstrained-features model: the solvable reference system of neural collapse.

Mixon, Parshall & Pi 2020 and Zhu et al. 2021 peel the network off: every training example's
last-layer feature h_i is a free parameter, trained with the classifier (W, b) by gradient descent on

    (1/N) sum_i CE(W h_i + b, y_i) + lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2 + lambda_b/2 ||b||^2.

Zhu et al. 2021 prove that with the feature dimension d >= C - 1 this landscape is benign and that
its only global minimisers are simplex ETFs: features on their class means (NC1 = 0), centred class
means with pairwise cosines -1/(C-1) (ETF deviation 0), W proportional to the class means (NC3 = 0).
Gradient descent therefore converges to an exact simplex ETF, which is what makes an absolute ETF
threshold meaningful here and nowhere else (real networks only approach it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# the reference system judged with every neural-collapse verdict: 10 classes like digits, 8 examples each,
# features in 16 dimensions, weight decay 5e-3 on all three blocks, full-batch GD (1,000 steps: ETF deviation
# ~1e-4, NC1 ~1e-14; about 0.1 s)
DEFAULTS = {"n_classes": 10, "per_class": 8, "dim": 16, "weight_decay": 5e-3, "lr": 2.0, "steps": 1000}


def ufm_gradients(h: np.ndarray, w: np.ndarray, b: np.ndarray, labels: np.ndarray, weight_decay: float
                  ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(objective, dH, dW, db) of the regularised cross-entropy, in closed form: with P = softmax(H W^T + b) and
    Y the one-hot labels, G = (P - Y) / N, dW = G^T H + lambda W, dH = G W + lambda H, db = sum_i G_i + lambda b."""
    n = h.shape[0]
    z = h @ w.T + b
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    ce = -float(np.mean(np.log(p[np.arange(n), labels])))
    g = p.copy()
    g[np.arange(n), labels] -= 1.0
    g /= n
    objective = ce + 0.5 * weight_decay * float((h**2).sum() + (w**2).sum() + (b**2).sum())
    return objective, g @ w + weight_decay * h, g.T @ h + weight_decay * w, g.sum(axis=0) + weight_decay * b


def unconstrained_features(n_classes: int = 10, per_class: int = 8, dim: int = 16, weight_decay: float = 5e-3,
                           lr: float = 2.0, steps: int = 1000, seed: int = 0, every: int = 50) -> pd.DataFrame:
    """Full-batch GD on the regularised cross-entropy of free features H, classifier W and bias b (float64).

    Returns one row per `every` steps (and the last): step, loss (the regularised objective), train_acc and
    the collapse metrics of `collapse.neural_collapse` on (H, W, b): nc1, nc2_etf_distance, nc3, nc4.
    """
    from ..collapse import neural_collapse

    if dim < n_classes - 1:
        raise ValueError(f"dim must be >= n_classes - 1 = {n_classes - 1} for a simplex ETF (got {dim})")
    rng = np.random.default_rng(int(seed))
    labels = np.repeat(np.arange(n_classes), per_class)
    h = 0.1 * rng.standard_normal((n_classes * per_class, dim))
    w = 0.1 * rng.standard_normal((n_classes, dim))
    b = np.zeros(n_classes)
    rows = []
    for step in range(steps + 1):
        loss, dh, dw, db = ufm_gradients(h, w, b, labels, weight_decay)
        if step % every == 0 or step == steps:
            m = neural_collapse(h, labels, w, b)
            acc = float(np.mean(np.argmax(h @ w.T + b, axis=1) == labels))
            rows.append({"step": step, "loss": loss, "train_acc": acc, "nc1": m.nc1,
                         "nc2_etf_distance": m.nc2_etf_distance, "nc3": m.nc3, "nc4": m.nc4_ncc_agreement})
        h, w, b = h - lr * dh, w - lr * dw, b - lr * db
    return pd.DataFrame(rows)


def reference_trajectory(seed: int = 0) -> pd.DataFrame:
    """The reference system at its default size (`DEFAULTS`), seeded."""
    return unconstrained_features(seed=seed, **DEFAULTS)


def final_etf_deviation(trajectory: pd.DataFrame) -> float:
    """ETF deviation (mean |cos + 1/(C-1)| of the centred class means) at the last step."""
    return float(np.asarray(trajectory["nc2_etf_distance"])[-1]) if len(trajectory) else float("nan")
