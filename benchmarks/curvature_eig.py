"""Top Hessian eigenvalue: learnmech_core.curvature.top_eigenvalues vs PyHessian vs scipy eigsh.

Same model and batch for every contender: an MLP 64-256-256-256-10 (tanh, cross-entropy,
150,794 parameters) and a small CNN (conv 8 - pool - conv 16 - pool - linear, 1,898 parameters)
on 2,048 seeded digits-like examples (sklearn digits resampled with replacement, standardised,
plus N(0, 0.1^2) noise so no two are identical; the CNN sees them as 1x8x8 images).

Contenders, interleaved within each repeat, medians over REPEATS:
  ours cold   top_eigenvalues(k=1, tol=TOL): Lanczos, full reorthogonalisation, float64 basis,
              start = seeded random + loss gradient; TOL chosen so the true error is <= 1e-3
  pyhessian   PyHessian 0.1 hessian(model, loss, data, cuda=False).eigenvalues(top_n=1) with its
              defaults (maxIter=100, tol=1e-3: stops when the Rayleigh quotient changes < 1e-3);
              global torch seed set per repeat (it draws from the global RNG); the .grad tensors
              its constructor leaves behind are set to None afterwards
  power->1e-3 the same power iteration continued until the true error is <= 1e-3 (cap 300 HVPs)
  eigsh       scipy.sparse.linalg.eigsh(LinearOperator, k=1, which='LA', tol=1e-3) over our HVP
              operator, inside threadpoolctl.threadpool_limits(1)
  ours warm   after one full-batch GD step (lr 0.1), top_eigenvalues warm-started from the
              pre-step top vector, against PyHessian run afresh on the stepped model
Reference ("true") values: our Lanczos at tol 1e-10 on the model itself (--check-reference
cross-checks them against our Lanczos and eigsh(tol=0) on a float64 copy; double-precision
convolution double-backward is very slow on CPU, hence float32 by default).
Times include building the gradient graph.

Run: python benchmarks/curvature_eig.py [--repeats 3] [--check-reference]
     (pip install pyhessian for the reference)

measured on <date>:

<paste>
"""

from __future__ import annotations

import argparse
import copy
import datetime
import importlib
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from learnmech_core import curvature  # noqa: E402

TOL = 1e-3  # our error estimate; the true error it gives here is <= 1e-3 (cold and warm)
PYHESSIAN_MAX_ITER, PYHESSIAN_TOL = 100, 1e-3
GD_LR = 0.1
N_EXAMPLES = 2048


def digits_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """2,048 seeded digits-like examples: resampled standardised digits plus small noise."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(x), (N_EXAMPLES,), generator=g)
    inputs = torch.tensor(x, dtype=torch.float32)[idx] + 0.1 * torch.randn(N_EXAMPLES, 64, generator=g)
    return inputs, torch.tensor(y, dtype=torch.long)[idx]


def make_mlp(seed: int = 0) -> nn.Module:
    """MLP 64-256-256-256-10, tanh, torch default init from a seeded generator."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh(),
                         nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 10))


def make_cnn(seed: int = 0) -> nn.Module:
    """Small CNN on 1x8x8 images: conv 8 - tanh - avgpool 2 - conv 16 - tanh - avgpool 2 - linear 10."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(16 * 2 * 2, 10))


def reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor, check: bool = False) -> float:
    """Tight top eigenvalue: our Lanczos at tol 1e-10 (check: also on a float64 copy and by eigsh tol=0)."""
    res = curvature.top_eigenvalues(model, nn.CrossEntropyLoss(), x, y, k=1, tol=1e-10)
    if check:
        from scipy.sparse.linalg import eigsh
        from threadpoolctl import threadpool_limits

        m64 = copy.deepcopy(model).double()
        res64 = curvature.top_eigenvalues(m64, nn.CrossEntropyLoss(), x.double(), y, k=1, tol=1e-10)
        op = curvature.hvp_operator(m64, nn.CrossEntropyLoss(), x.double(), y)
        with threadpool_limits(1):
            val = float(eigsh(op.to_scipy(), k=1, which="LA", tol=0,
                              v0=np.random.default_rng(0).standard_normal(op.n))[0][0])
        print(f"  reference check: ours float32 {res.values[0]:.10f}, ours float64 {res64.values[0]:.10f}, "
              f"eigsh(tol 0) float64 {val:.10f}", flush=True)
    return float(res.values[0])


# ----------------------------------------------------------------------------- contenders


def run_ours(model, x, y, seed: int, v0=None) -> tuple[float, int, torch.Tensor]:
    """Our Lanczos: (value, HVPs, top vector)."""
    res = curvature.top_eigenvalues(model, nn.CrossEntropyLoss(), x, y, k=1, tol=TOL, v0=v0,
                                    generator=torch.Generator().manual_seed(seed))
    return float(res.values[0]), res.n_hvp, res.vectors


def _counting_hvp(counter: list[int], fn: Callable) -> Callable:
    """Wrap PyHessian's hessian_vector_product to count calls."""

    def wrapped(*args, **kwargs):
        """Count and forward."""
        counter[0] += 1
        return fn(*args, **kwargs)

    return wrapped


def run_pyhessian(model, x, y, seed: int) -> tuple[float, int]:
    """PyHessian 0.1 eigenvalues(top_n=1) with its defaults: (value, HVPs)."""
    ph = importlib.import_module("pyhessian.hessian")  # the module (the package re-exports a class of that name)
    counter = [0]
    original = ph.hessian_vector_product
    ph.hessian_vector_product = _counting_hvp(counter, original)
    was_training = model.training
    try:
        torch.manual_seed(seed)  # PyHessian draws its start vector from the global RNG
        h = ph.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        values, _ = h.eigenvalues(maxIter=PYHESSIAN_MAX_ITER, tol=PYHESSIAN_TOL, top_n=1)
        del h
    finally:
        ph.hessian_vector_product = original
        for p in model.parameters():
            p.grad = None
        model.train(was_training)
    return float(values[0]), counter[0]


def run_power_reimplementation(model, x, y, seed: int) -> tuple[float, int]:
    """PyHessian's power iteration re-implemented on our HVP operator (used when pyhessian is missing)."""
    op = curvature.hvp_operator(model, nn.CrossEntropyLoss(), x, y)
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(op.n, generator=g)
    v = v / v.norm()
    value = None
    for _ in range(PYHESSIAN_MAX_ITER):
        hv = op(v)
        new = float(hv @ v)
        v = hv / hv.norm()
        if value is not None and abs(value - new) / (abs(value) + 1e-6) < PYHESSIAN_TOL:
            value = new
            break
        value = new
    return value, op.n_calls


def run_power_to_target(model, x, y, seed: int, true: float, cap: int = 300) -> tuple[float, int]:
    """Power iteration (PyHessian's update) until the true relative error is <= 1e-3: (value, HVPs)."""
    op = curvature.hvp_operator(model, nn.CrossEntropyLoss(), x, y)
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(op.n, generator=g)
    v = v / v.norm()
    value = 0.0
    while op.n_calls < cap:
        hv = op(v)
        value = float(hv @ v)
        v = hv / hv.norm()
        if abs(value - true) / abs(true) <= 1e-3:
            break
    return value, op.n_calls


def run_eigsh(model, x, y, seed: int) -> tuple[float, int]:
    """scipy eigsh(k=1, 'LA', tol=1e-3) over our HVP operator, BLAS limited to one thread."""
    from scipy.sparse.linalg import eigsh
    from threadpoolctl import threadpool_limits

    op = curvature.hvp_operator(model, nn.CrossEntropyLoss(), x, y)
    v0 = np.random.default_rng(seed).standard_normal(op.n)
    with threadpool_limits(1):
        val = eigsh(op.to_scipy(), k=1, which="LA", tol=1e-3, v0=v0, return_eigenvectors=False)
    return float(val[0]), op.n_calls


# ----------------------------------------------------------------------------- driver


def timed(fn: Callable, *args) -> tuple[float, tuple]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def gd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    """A copy of model after one full-batch GD step at GD_LR."""
    stepped = copy.deepcopy(model)
    loss = nn.CrossEntropyLoss()(stepped(x), y)
    grads = torch.autograd.grad(loss, list(stepped.parameters()))
    with torch.no_grad():
        for p, g in zip(stepped.parameters(), grads):
            p -= GD_LR * g
    return stepped


def bench_model(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int,
                pyhessian_fn: Callable, rows: list, check: bool) -> None:
    """Interleave all contenders on one model; append table rows."""
    print(f"[{name}] {sum(p.numel() for p in model.parameters()):,} parameters; references ...", flush=True)
    true = reference(model, x, y, check=check)
    stepped = gd_step(model, x, y)
    true_stepped = reference(stepped, x, y)
    print(f"  lambda_1 = {true:.6f}, after one GD step (lr {GD_LR}) {true_stepped:.6f}", flush=True)
    names = ["ours cold", "pyhessian", "power->1e-3", "eigsh", "ours warm", "pyhessian (stepped)"]
    samples: dict[str, list] = {n: [] for n in names}
    for r in range(repeats):
        t, (val, n_hvp, vec) = timed(run_ours, model, x, y, r)
        samples["ours cold"].append((t, val, n_hvp, true))
        t, (val, n_hvp) = timed(pyhessian_fn, model, x, y, r)
        samples["pyhessian"].append((t, val, n_hvp, true))
        t, (val, n_hvp) = timed(run_power_to_target, model, x, y, r, true)
        samples["power->1e-3"].append((t, val, n_hvp, true))
        t, (val, n_hvp) = timed(run_eigsh, model, x, y, r)
        samples["eigsh"].append((t, val, n_hvp, true))
        t, (val, n_hvp, _) = timed(run_ours, stepped, x, y, r, vec)
        samples["ours warm"].append((t, val, n_hvp, true_stepped))
        t, (val, n_hvp) = timed(pyhessian_fn, stepped, x, y, r)
        samples["pyhessian (stepped)"].append((t, val, n_hvp, true_stepped))
        last = {n: samples[n][-1] for n in names}
        line = ", ".join(f"{n} {t[2]} HVP {t[0]:.2f}s err {abs(t[1] - t[3]) / abs(t[3]):.1e}" for n, t in last.items())
        print(f"  repeat {r + 1}/{repeats}: {line}", flush=True)
    base = {"cold": statistics.median(s[0] for s in samples["pyhessian"]),
            "warm": statistics.median(s[0] for s in samples["pyhessian (stepped)"])}
    for n in names:
        ts = [s[0] for s in samples[n]]
        errs = [abs(s[1] - s[3]) / abs(s[3]) for s in samples[n]]
        hvps = [s[2] for s in samples[n]]
        ref_time = base["warm"] if n in ("ours warm", "pyhessian (stepped)") else base["cold"]
        rows.append((name, n, statistics.median(s[1] for s in samples[n]), min(errs), max(errs),
                     min(hvps), max(hvps), statistics.median(ts), statistics.median(ts) / ref_time))


def main() -> None:
    """Run both models and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check-reference", action="store_true", help="cross-check references in float64")
    parser.add_argument("--models", default="mlp,cnn", help="comma-separated subset of mlp,cnn")
    args = parser.parse_args()
    torch.set_num_threads(2)
    try:
        importlib.import_module("pyhessian.hessian")

        pyhessian_fn, source = run_pyhessian, "PyHessian 0.1 from PyPI"
    except Exception as exc:  # noqa: BLE001 - any import failure means the fallback
        pyhessian_fn, source = run_power_reimplementation, f"re-implementation of PyHessian's power iteration ({exc!r})"
    print(f"{datetime.date.today()}  torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"repeats {args.repeats}, ours tol {TOL}; pyhessian column = {source}")
    x, y = digits_batch()
    rows: list = []
    builders = {"mlp": make_mlp, "cnn": make_cnn}
    for name in args.models.split(","):
        bench_model(name, builders[name](), x, y, args.repeats, pyhessian_fn, rows, args.check_reference)
    print()
    print(f"{'model':5} {'method':21} {'value':>10} {'true rel. err (min-max)':>24} {'HVPs':>9} "
          f"{'median s':>9} {'/ pyhessian':>11}")
    for model, n, val, emin, emax, hmin, hmax, t, ratio in rows:
        hv = f"{hmin}" if hmin == hmax else f"{hmin}-{hmax}"
        print(f"{model:5} {n:21} {val:10.6f} {emin:11.1e} - {emax:9.1e} {hv:>9} {t:9.3f} {ratio:10.2f}x")
    print("'/ pyhessian': median time over PyHessian's median on the same model "
          "(warm rows: over PyHessian on the stepped model).")


if __name__ == "__main__":
    main()
