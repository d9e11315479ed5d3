"""Curvature numerics against exact answers: dense Hessians of tiny float64 models (torch.func.hessian)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from learnmech_core import curvature as C

RTOL = 1e-4


def _data(n: int = 40, d: int = 5, classes: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded float64 classification batch."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)


def _mlp(act: type[nn.Module], seed: int = 0) -> nn.Module:
    """Tiny float64 MLP 5-12-12-3 (267 parameters)."""
    torch.manual_seed(seed)  # module init only; the library never touches the global RNG
    return nn.Sequential(nn.Linear(5, 12), act(), nn.Linear(12, 12), act(), nn.Linear(12, 3)).double()


def _cnn(seed: int = 0) -> nn.Module:
    """Tiny float64 CNN on 1x6x6 images (177 parameters)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(48, 3)).double()


def _case(name: str):
    """(model, loss_fn, inputs, targets) for a named tiny problem."""
    if name == "regression":  # many outputs: a Hessian of high effective rank, where probing is accurate
        g = torch.Generator().manual_seed(1)
        X = torch.randn(200, 20, generator=g, dtype=torch.float64)
        Y = torch.randn(200, 30, generator=g, dtype=torch.float64)
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(20, 10), nn.Tanh(), nn.Linear(10, 30)).double(), nn.MSELoss(), X, Y
    if name == "cnn":
        g = torch.Generator().manual_seed(2)
        X = torch.randn(30, 1, 6, 6, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (30,), generator=g)
        return _cnn(), nn.CrossEntropyLoss(), X, y
    X, y = _data()
    return _mlp(nn.Tanh if name == "tanh" else nn.ReLU), nn.CrossEntropyLoss(), X, y


CASES = ("tanh", "relu", "cnn")


@pytest.fixture(scope="module")
def exact() -> dict:
    """Dense Hessian and its eigendecomposition per case, computed once."""
    out = {}
    for name in CASES + ("regression",):
        model, lf, X, y = _case(name)
        H = C.full_hessian(model, lf, X, y)
        evals, evecs = torch.linalg.eigh(H)
        out[name] = (H, evals.numpy(), evecs)
    return out


def _no_grads(model: nn.Module) -> bool:
    """True when no parameter has a .grad."""
    return all(p.grad is None for p in model.parameters())


def _probe_rel_std(H: torch.Tensor, n_probes: int) -> float:
    """Relative standard error of Hutchinson's estimate of trace(H) with Rademacher probes."""
    off = (H**2).sum() - (torch.diag(H) ** 2).sum()
    return float(torch.sqrt(2 * off / n_probes) / torch.trace(H).abs())


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """Largest relative difference."""
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))))


# ----------------------------------------------------------------------------- HVPs


@pytest.mark.parametrize("name", CASES)
def test_hvp_equals_dense_hessian_times_v(name, exact):
    model, lf, X, y = _case(name)
    H = exact[name][0]
    assert torch.allclose(H, H.T, atol=1e-12)
    op = C.hvp_operator(model, lf, X, y)
    assert op.n == H.shape[0] == sum(p.numel() for p in model.parameters())
    assert op.dtype == torch.float64 and op.device == torch.device("cpu")
    assert len(op.params) == len(list(model.parameters()))
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        v = torch.randn(op.n, generator=g, dtype=torch.float64)
        assert (op(v) - H @ v).abs().max().item() <= 1e-10 * max(1.0, H.abs().max().item())
    assert op.n_calls == 3
    assert _no_grads(model)


def test_block_operator_equals_sub_block(exact):
    model, lf, X, y = _case("tanh")
    H = exact["tanh"][0]
    sizes = [p.numel() for p in model.parameters()]
    start = sum(sizes[:2])  # module "2" = third and fourth parameter tensors (weight, bias)
    stop = start + sizes[2] + sizes[3]
    block = H[start:stop, start:stop]
    by_module = C.hvp_operator(model, lf, X, y, params=["2"])
    by_names = C.hvp_operator(model, lf, X, y, params=["2.bias", "2.weight"])  # order follows the model
    by_tensors = C.hvp_operator(model, lf, X, y, params=[model[2].weight, model[2].bias])
    eye = torch.eye(block.shape[0], dtype=torch.float64)
    for op in (by_module, by_names, by_tensors):
        assert op.n == block.shape[0]
        dense = torch.stack([op(e) for e in eye], dim=1)
        assert (dense - block).abs().max().item() < 1e-10
    top = C.top_eigenvalues(model, lf, X, y, k=2, tol=1e-10, params=["2"])
    assert _rel(top.values, torch.linalg.eigvalsh(block).numpy()[::-1][:2]) < RTOL


def test_dense_operator_and_thick_restart():
    g = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(300, 300, generator=g, dtype=torch.float64))
    lam = torch.cat([torch.tensor([10.0, 9.0, 8.5, -12.0]), torch.linspace(-3, 3, 296, dtype=torch.float64)])
    A = (Q * lam) @ Q.T
    op = C.DenseOperator(A)
    res = C.lanczos(op, k=3, tol=1e-10, max_basis=12)  # forces several thick restarts
    assert res.converged and res.n_hvp > 12
    assert _rel(res.values, [10.0, 9.0, 8.5]) < 1e-8
    mag = C.lanczos(op, k=2, tol=1e-10, mode="magnitude", max_basis=12)
    assert _rel(mag.values, [10.0, -12.0]) < 1e-8
    small = C.lanczos(op, k=1, tol=1e-10, mode="smallest")
    assert _rel(small.values, [-12.0]) < 1e-8
    resid = A @ res.vectors.T - res.vectors.T * torch.from_numpy(res.values)
    assert resid.norm(dim=0).max().item() < 1e-4


# ----------------------------------------------------------------------------- top eigenvalues


@pytest.mark.parametrize("name", CASES)
def test_top_k_matches_dense_eigvalsh(name, exact):
    model, lf, X, y = _case(name)
    H, evals, _ = exact[name]
    res = C.top_eigenvalues(model, lf, X, y, k=3, tol=1e-8)
    assert res.converged
    assert _rel(res.values, evals[::-1][:3]) < RTOL
    assert list(res.values) == sorted(res.values, reverse=True)
    assert res.vectors.shape == (3, H.shape[0]) and res.vectors.dtype == torch.float64
    for lam, u in zip(res.values, res.vectors, strict=False):
        assert abs(u.norm().item() - 1) < 1e-8
        assert (H @ u - lam * u).norm().item() < 1e-3 * abs(lam)
    assert _no_grads(model)


@pytest.mark.parametrize("name", CASES)
def test_smallest_mode_finds_negative_eigenvalues(name, exact):
    model, lf, X, y = _case(name)
    evals = exact[name][1]
    assert evals[0] < 0  # these Hessians are indefinite
    res = C.top_eigenvalues(model, lf, X, y, k=2, tol=1e-8, mode="smallest")
    assert _rel(res.values, np.sort(evals[:2])[::-1]) < RTOL


@pytest.mark.parametrize("name", CASES)
def test_magnitude_mode_includes_negative_eigenvalues(name, exact):
    model, lf, X, y = _case(name)
    evals = exact[name][1]
    k = 1 + int(np.argmax(evals[np.argsort(-np.abs(evals))] < 0))  # smallest k whose set holds a negative value
    want = np.sort(evals[np.argsort(-np.abs(evals))[:k]])[::-1]
    assert want.min() < 0
    res = C.top_eigenvalues(model, lf, X, y, k=k, tol=1e-8, mode="magnitude")
    assert _rel(res.values, want) < RTOL


def test_float32_model_agrees_with_float64_reference(exact):
    model, lf, X, y = _case("tanh")
    model32 = model.float()
    res = C.top_eigenvalues(model32, lf, X.float(), y, k=2, tol=1e-6)
    assert res.vectors.dtype == torch.float32
    assert _rel(res.values, exact["tanh"][1][::-1][:2]) < RTOL


def test_warm_start_from_exact_top_vector_converges_in_three_hvps(exact):
    for name in CASES:
        model, lf, X, y = _case(name)
        _, evals, evecs = exact[name]
        res = C.top_eigenvalues(model, lf, X, y, k=1, tol=1e-8, v0=evecs[:, -1])
        assert res.n_hvp <= 3 and res.converged
        assert _rel(res.values, evals[-1:]) < RTOL
        block = C.top_eigenvalues(model, lf, X, y, k=3, tol=1e-8, v0=evecs[:, -3:].T)
        assert _rel(block.values, evals[::-1][:3]) < RTOL


def test_warm_start_after_one_gd_step_is_cheaper_than_cold():
    model, lf, X, y = _case("tanh")
    before = C.top_eigenvalues(model, lf, X, y, k=1, tol=1e-6)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    lf(model(X), y).backward()
    opt.step()
    model.zero_grad(set_to_none=True)
    cold = C.top_eigenvalues(model, lf, X, y, k=1, tol=1e-6)
    warm = C.top_eigenvalues(model, lf, X, y, k=1, tol=1e-6, v0=before.vectors)
    assert _rel(warm.values, cold.values) < 1e-5
    assert warm.n_hvp < cold.n_hvp


def _known_operator(gap: float = 0.5, n: int = 200, seed: int = 4) -> tuple:
    """(op, eigenvalues, eigenvectors) of a dense operator with eigenvalues 10, 10 - gap and a bulk in [-2, 2]."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.cat([torch.tensor([10.0, 10.0 - gap], dtype=torch.float64),
                     torch.linspace(-2, 2, n - 2, dtype=torch.float64)])
    return C.DenseOperator((Q * lam) @ Q.T), lam, Q


def test_errors_are_certified_residual_bounds():
    op, lam, _ = _known_operator()
    res = C.lanczos(op, k=2, tol=1e-6)
    assert res.converged and np.all(res.errors <= 1e-6)
    for value, vector, error in zip(res.values, res.vectors, res.errors, strict=True):
        residual = (op.matrix @ vector - value * vector).norm().item()
        assert residual / abs(value) == pytest.approx(error, rel=1e-6, abs=1e-12)
        assert np.min(np.abs(lam.numpy() - value)) <= error * abs(value)


def test_a_crossing_eigenvalue_is_found_from_a_warm_start():
    """The new top direction rose above the old top: the warm vector is the old top plus 5% of it."""
    op, lam, Q = _known_operator(gap=1.0)  # eigenvalues 10 and 9 (the bulk in [-2, 2])
    old_top, new_top = Q[:, 1], Q[:, 0]  # the old top (now 9) and the direction that rose to 10
    v = old_top + 0.05 * new_top
    # as the sharpness probe passes it: the whole previous result, which claimed the old top was certified
    prev = C.EigResult(values=np.array([9.0]), vectors=(v / v.norm())[None], n_hvp=5, converged=True,
                       errors=np.zeros(1))
    for tol in (1e-3, 1e-4, 1e-6):
        for v0 in (prev, prev.vectors):
            res = C.lanczos(op, k=1, tol=tol, v0=v0)
            assert res.converged and res.n_hvp > 1
            assert abs(res.values[0] - 10.0) / 10.0 <= tol


def test_a_scaled_crossing_matches_the_issue_case():
    """Eigenvalues 11 and 10, warm vector = old top + 5% of the new direction: its Rayleigh quotient is
    10.0025, which the carried-gap rule certified after one product even at tol 1e-4."""
    g = torch.Generator().manual_seed(8)
    n = 50
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.cat([torch.tensor([11.0, 10.0], dtype=torch.float64),
                     torch.linspace(-1, 1, n - 2, dtype=torch.float64)])
    op = C.DenseOperator((Q * lam) @ Q.T)
    v = Q[:, 1] + 0.05 * Q[:, 0]
    v = v / v.norm()
    assert float(v @ op(v)) == pytest.approx(10.0025, abs=1e-4)  # the one-product answer of the old rule
    res = C.lanczos(op, k=1, tol=1e-4, v0=C.EigResult(np.array([10.0]), v[None], 3, True, np.zeros(1)))
    assert res.converged and res.n_hvp > 1 and abs(res.values[0] - 11.0) <= 1e-4 * 11.0


def test_warm_start_from_previous_eig_result_on_a_model(exact):
    for name in CASES:
        model, lf, X, y = _case(name)
        evals = exact[name][1]
        cold = C.top_eigenvalues(model, lf, X, y, k=1, tol=1e-8)
        warm = C.top_eigenvalues(model, lf, X, y, k=1, tol=1e-8, v0=cold)
        assert warm.converged and warm.n_hvp <= 3
        assert _rel(warm.values, evals[-1:]) < RTOL
        block = C.top_eigenvalues(model, lf, X, y, k=2, tol=1e-8, v0=cold)  # k > 1: the vectors only
        assert _rel(block.values, evals[::-1][:2]) < RTOL


def test_deterministic_given_seed_and_global_rng_untouched():
    model, lf, X, y = _case("relu")
    state = torch.get_rng_state()
    a = C.top_eigenvalues(model, lf, X, y, k=2, tol=1e-3, generator=torch.Generator().manual_seed(7))
    b = C.top_eigenvalues(model, lf, X, y, k=2, tol=1e-3, generator=torch.Generator().manual_seed(7))
    c = C.top_eigenvalues(model, lf, X, y, k=2, tol=1e-3)
    d = C.top_eigenvalues(model, lf, X, y, k=2, tol=1e-3)
    assert np.array_equal(a.values, b.values) and torch.equal(a.vectors, b.vectors) and a.n_hvp == b.n_hvp
    assert np.array_equal(c.values, d.values) and c.n_hvp == d.n_hvp
    s1 = C.slq_nodes(model, lf, X, y, n_probes=2, n_iter=8)
    s2 = C.slq_nodes(model, lf, X, y, n_probes=2, n_iter=8)
    assert all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(s1, s2, strict=False))
    assert C.hessian_trace(model, lf, X, y, n_probes=4) == C.hessian_trace(model, lf, X, y, n_probes=4)
    assert torch.equal(state, torch.get_rng_state())


# ----------------------------------------------------------------------------- density and trace


def test_slq_density_integrates_to_one_and_moments_match(exact):
    model, lf, X, y = _case("regression")
    H, evals, _ = exact["regression"]
    n = H.shape[0]
    assert _probe_rel_std(H, 32) < 0.02 and _probe_rel_std(H @ H, 32) < 0.02  # so 6% is a 3-sigma bound
    pairs = C.slq_nodes(model, lf, X, y, n_probes=32, n_iter=12)
    assert len(pairs) == 32
    for nodes, weights in pairs:
        assert nodes.shape == weights.shape and abs(weights.sum() - 1) < 1e-10
        assert nodes.min() >= evals[0] - 1e-8 and nodes.max() <= evals[-1] + 1e-8
    for m in (1, 2):
        est = np.mean([np.sum(w * x**m) for x, w in pairs])
        true = float(np.sum(evals**m)) / n
        assert abs(est - true) / abs(true) < 0.06, (m, est, true)
    grid, density = C.spectral_density(model, lf, X, y, n_probes=4, n_iter=32)
    assert grid.shape == density.shape and np.all(density >= 0)
    assert abs(np.sum(np.diff(grid) * (density[1:] + density[:-1])) / 2 - 1) < 1e-10
    own = np.linspace(evals[0] - 0.1, evals[-1] + 0.1, 500)
    grid2, density2 = C.density_from_nodes(pairs, grid=own, sigma=0.01)
    assert np.array_equal(grid2, own)
    assert abs(np.sum(np.diff(grid2) * (density2[1:] + density2[:-1])) / 2 - 1) < 1e-10
    assert _no_grads(model)


def test_slq_is_exact_when_lanczos_exhausts_the_space():
    A = torch.diag(torch.tensor([3.0, 1.0, -2.0, 0.5], dtype=torch.float64))

    class Quadratic(nn.Module):
        """loss = 0.5 w^T A w, Hessian A."""

        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.tensor([0.1, -0.2, 0.3, 0.4], dtype=torch.float64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * self.w @ A @ self.w + 0 * x.sum()

    model = Quadratic()
    x = torch.zeros(1, 1, dtype=torch.float64)
    pairs = C.slq_nodes(model, lambda out, t: out, x, None, n_probes=3, n_iter=50)
    for nodes, weights in pairs:
        assert np.allclose(np.sort(nodes), [-2.0, 0.5, 1.0, 3.0])
        assert np.allclose(weights, 0.25)  # Rademacher probes see every eigenvector equally here
    res = C.top_eigenvalues(model, lambda out, t: out, x, None, k=4, tol=1e-12)
    assert res.converged and np.allclose(res.values, [3.0, 1.0, 0.5, -2.0])


def test_hutchinson_trace_within_five_percent(exact):
    model, lf, X, y = _case("regression")
    H = exact["regression"][0]
    assert _probe_rel_std(H, 64) < 0.015  # so 5% is a 3-sigma bound
    true = float(torch.trace(H))
    est, stderr = C.hessian_trace(model, lf, X, y, return_stderr=True)
    assert abs(est - true) / abs(true) < 0.05
    assert 0 < stderr < 0.05 * abs(true)
    assert C.hessian_trace(model, lf, X, y) == est
    assert _no_grads(model)


# ----------------------------------------------------------------------------- per layer, Adam


def test_layer_top_eigenvalues_match_diagonal_blocks(exact):
    model, lf, X, y = _case("tanh")
    H = exact["tanh"][0]
    df = C.layer_top_eigenvalues(model, lf, X, y, k=2, tol=1e-10)
    assert list(df.columns) == ["layer", "index", "value"]
    assert list(dict.fromkeys(df["layer"])) == ["0", "2", "4"]
    start = 0
    for layer in ("0", "2", "4"):
        size = sum(p.numel() for p in getattr(model, layer).parameters())
        block = H[start:start + size, start:start + size]
        start += size
        want = torch.linalg.eigvalsh(block).numpy()[::-1][:2]
        rows = df[df["layer"] == layer].sort_values("index")
        assert list(rows["index"]) == [0, 1]
        assert _rel(rows["value"].to_numpy(), want) < RTOL
    assert _no_grads(model)


def _dense_adam_sharpness(H: torch.Tensor, opt: torch.optim.Optimizer, model: nn.Module) -> float:
    """Top eigenvalue of P^{-1} H with P built here from the optimizer state (Cohen et al. 2022)."""
    parts = []
    for p in model.parameters():
        group = next(g for g in opt.param_groups if any(p is q for q in g["params"]))
        state = opt.state[p]
        b1, b2 = group["betas"]
        t = float(state["step"])
        parts.append((1 - b1**t) * ((state["exp_avg_sq"].reshape(-1) / (1 - b2**t)).sqrt() + group["eps"]))
    P = torch.cat(parts).double()
    return float(torch.linalg.eigvals(H / P[:, None]).real.max())  # P^{-1} H, not symmetric


@pytest.mark.parametrize("opt_cls", [torch.optim.Adam, torch.optim.AdamW])
def test_preconditioned_sharpness_matches_dense(opt_cls):
    model, lf, X, y = _case("tanh")
    opt = opt_cls(model.parameters(), lr=0.01, betas=(0.9, 0.99), eps=1e-6)
    with pytest.raises(ValueError, match="no Adam state"):
        C.preconditioned_sharpness(model, lf, X, y, opt)
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        lf(model(X), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    H = C.full_hessian(model, lf, X, y)
    value = C.preconditioned_sharpness(model, lf, X, y, opt, tol=1e-10)
    assert abs(value - _dense_adam_sharpness(H, opt, model)) / value < RTOL
    assert _no_grads(model)


def test_preconditioned_sharpness_rejects_other_optimizers():
    model, lf, X, y = _case("tanh")
    with pytest.raises(ValueError, match="optimizer"):
        C.preconditioned_sharpness(model, lf, X, y, torch.optim.RMSprop(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="optimizer"):
        C.adam_preconditioner(torch.optim.SGD(model.parameters(), lr=0.1), list(model.parameters()))


# ----------------------------------------------------------------------------- side effects, bad inputs


def test_batchnorm_buffers_are_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3)).double().train()
    X, y = _data()
    before = [b.clone() for b in model.buffers()]
    C.top_eigenvalues(model, nn.CrossEntropyLoss(), X, y, k=1, tol=1e-3)
    C.hessian_trace(model, nn.CrossEntropyLoss(), X, y, n_probes=2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers(), strict=False))
    assert _no_grads(model)


def test_non_finite_loss_raises_floating_point_error():
    model, lf, X, y = _case("tanh")
    X = X.clone()
    X[0, 0] = float("nan")
    with pytest.raises(FloatingPointError):
        C.top_eigenvalues(model, lf, X, y)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"k": 0}, "k"),
        ({"k": 10_000}, "k"),
        ({"k": 1.5}, "k"),
        ({"tol": 0.0}, "tol"),
        ({"mode": "largest"}, "mode"),
        ({"v0": torch.ones(7, dtype=torch.float64)}, "v0"),
        ({"v0": torch.zeros(267, dtype=torch.float64)}, "v0"),
        ({"max_iter": 0}, "max_iter"),
        ({"params": ["nope"]}, "params"),
        ({"params": []}, "params"),
        ({"precond": torch.ones(3, dtype=torch.float64)}, "precond"),
        ({"precond": -torch.ones(267, dtype=torch.float64)}, "precond"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, argument):
    model, lf, X, y = _case("tanh")
    with pytest.raises(ValueError, match=argument):
        C.top_eigenvalues(model, lf, X, y, **kwargs)
    assert _no_grads(model)


def test_bad_batches_and_losses_raise_value_error_naming_them():
    model, lf, X, y = _case("tanh")
    with pytest.raises(ValueError, match="loss_fn"):
        C.top_eigenvalues(model, nn.CrossEntropyLoss(reduction="none"), X, y)
    with pytest.raises(ValueError, match="inputs"):
        C.top_eigenvalues(model, lf, X[:0], y[:0])
    with pytest.raises(ValueError, match="targets"):
        C.hvp_operator(model, lf, X, y[:0])
    with pytest.raises(ValueError, match="inputs"):
        C.hessian_trace(model, lf, X.to("meta"), y)
    with pytest.raises(ValueError, match="targets"):
        C.spectral_density(model, lf, X, y.to("meta"))
    with pytest.raises(ValueError, match="n_probes"):
        C.slq_nodes(model, lf, X, y, n_probes=0)
    with pytest.raises(ValueError, match="sigma"):
        C.spectral_density(model, lf, X, y, n_probes=1, n_iter=4, sigma=-1.0)
    with pytest.raises(ValueError, match="k"):
        C.layer_top_eigenvalues(model, lf, X, y, k=0)
    with pytest.raises(ValueError, match="v"):
        C.hvp_operator(model, lf, X, y)(torch.ones(3, dtype=torch.float64))
    assert _no_grads(model)


def test_scipy_linear_operator_matches_hvp(exact):
    from scipy.sparse.linalg import eigsh

    model, lf, X, y = _case("cnn")
    op = C.hvp_operator(model, lf, X, y)
    lin = op.to_scipy()
    v = np.random.default_rng(0).standard_normal(op.n)
    assert np.allclose(lin @ v, exact["cnn"][0].numpy() @ v, atol=1e-10)
    top = eigsh(lin, k=1, which="LA", tol=0, v0=v, return_eigenvectors=False)
    assert _rel(top, exact["cnn"][1][-1:]) < 1e-8
