"""Vectorised ensembles: runs that share architecture and data trained together with `torch.func`.

The members' parameters are stacked (`stack_module_state`) and one `vmap` over `functional_call`
runs every member's forward pass at once; the gradient of the summed member losses is each member's
own gradient. The loop reproduces `train.train` step for step: the same initial weights (each member's
model is built from `torch.Generator().manual_seed(seed)`), the same full-batch data, GD / SGD-momentum
/ Adam / AdamW updates written out on stacked tensors with the same arithmetic as `torch.optim`
(per-member learning rate, weight decay, momentum, betas and eps; per-parameter lr multipliers of
the parametrisation), and the same history rows. So an ensemble member's history equals the serial
run's to float rounding (about 1e-6 relative on CPU for tens of steps; chaotic, large-lr dynamics
amplify rounding like any change of summation order would).

Members may differ only in `MEMBER_FIELDS` (seed, learning rate, weight decay, momentum, betas, eps,
divergence factor, init scale except under NTK where it is a forward multiplier, save_weights);
`ensemble_group(spec)` is the key that must match, `unsupported_reason(spec)` says why a spec cannot
join any ensemble (minibatches, probes other than norms and sharpness). A member that diverges is
logged exactly as the serial loop would log it, frozen (dropped from the stack) and marked
"diverged"; the others go on. `should_stop()` is honoured between steps.

Sharpness is measured for all members at once: the Hessian of the summed loss is block diagonal, so
one double-backward product with stacked vectors gives every member's H v. Each member runs its own
`curvature.LanczosSolver` (the solver and residual stopping rule of `curvature.lanczos`, k = 1, at
`probes.sharpness_tol`; warm start from the member's previous top vector, the first start vector
drawn from the member's probe generator, as the serial SharpnessProbe does), in lockstep with the
others; a member that has converged waits while the rest finish.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call, stack_module_state

from . import models
from .config import RunSpec, current_caps
from .curvature import LanczosSolver
from .data import Dataset, load
from .probes import SharpnessProbe, precond_sharpness_columns, sgd_geometry_shift, sharpness_columns
from .records import MAX_SAVED_PARAMS, SPECTRA_COLUMNS, Run, StepRule
from .train import device_split, loss_function, lr_factor, probe_generator, resolve_device

MEMBER_FIELDS = ("seed", "optim.lr", "optim.weight_decay", "optim.momentum", "optim.beta1", "optim.beta2",
                 "optim.eps", "optim.diverge_factor", "model.init_scale", "probes.save_weights")
UNSUPPORTED_PROBES = ("topk_every", "precond_sharpness_every", "density_every", "esd_every", "ntk_every",
                      "noise_every", "collapse_every", "snapshot_every", "gauss_newton_k")
MAX_MEMBERS = 64  # larger groups are split into several ensembles


class EnsembleUnsupported(ValueError):
    """The specs cannot be trained as one ensemble (the caller falls back to serial runs)."""


# ------------------------------------------------------------------------------------------------
# which specs can share an ensemble


def unsupported_reason(spec: RunSpec) -> str | None:
    """Why this spec cannot be an ensemble member (None when it can)."""
    if 0 < spec.optim.batch_size < spec.data.n_train:
        return "minibatches (optim.batch_size) are trained serially"
    for name in UNSUPPORTED_PROBES:
        if getattr(spec.probes, name):
            return f"probes.{name} is not measured in ensembles"
    if spec.probes.layer_norms:
        return "probes.layer_norms is not measured in ensembles"
    return None


def ensemble_group(spec: RunSpec) -> str | None:
    """Key shared by specs that can train as one ensemble (None if this one cannot)."""
    if unsupported_reason(spec) is not None:
        return None
    data = spec.to_dict()
    for path in MEMBER_FIELDS:
        if path == "model.init_scale" and spec.model.param == "ntk":
            continue  # under NTK init_scale is a forward multiplier: members must share it
        _drop(data, path)
    data["optim"]["batch_size"] = 0  # batch_size >= n_train is full batch too
    return json.dumps(data, sort_keys=True)


def _drop(data: dict, path: str) -> None:
    """Remove a dotted path from a nested dict."""
    parts = path.split(".")
    for part in parts[:-1]:
        data = data[part]
    data.pop(parts[-1], None)


# ------------------------------------------------------------------------------------------------
# optimiser updates on stacked parameters


def _column(values: list[float], like: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
    """Per-member numbers as a tensor broadcasting against a stacked (members, ...) tensor."""
    key = (tuple(values), like.ndim, like.dtype)
    if cache is not None and key in cache:
        return cache[key]
    column = torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, *([1] * (like.ndim - 1)))
    if cache is not None:
        cache[key] = column
    return column


class StackedOptimizer:
    """GD / SGD-momentum / Adam / AdamW on stacked parameters with per-member hyper-parameters.

    The arithmetic follows torch.optim's single-tensor implementations (weight decay added to the
    gradient, momentum buffer started from the first gradient, Adam bias corrections per member,
    AdamW's decoupled decay `p *= 1 - lr * wd`).
    """

    def __init__(self, specs: list[RunSpec], lr_mults: dict[str, float]):
        self.name = specs[0].optim.name
        self.optims = [s.optim for s in specs]
        self.lr_mults = lr_mults
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        self.steps = 0
        self.columns: dict = {}  # per-member constants as tensors, reused while they do not change

    def select(self, keep: list[int]) -> None:
        """Keep only the members at these stack positions."""
        self.optims = [self.optims[i] for i in keep]
        self.columns = {}
        index = None
        for slots in self.state.values():
            for key, value in slots.items():
                index = torch.tensor(keep, device=value.device) if index is None else index
                slots[key] = value.index_select(0, index)

    @torch.no_grad()
    def step(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], lrs: list[float]) -> None:
        """One update of every member; lrs are the members' scheduled base learning rates."""
        self.steps += 1
        for name, p in params.items():
            lr = [base * self.lr_mults[name] for base in lrs]
            slots = self.state.setdefault(name, {})
            if self.name in ("gd", "sgd", "momentum"):
                self._sgd(p, grads[name], lr, slots)
            else:
                self._adam(p, grads[name], lr, slots)

    def _sgd(self, p, grad, lr, slots):
        """SGD / heavy-ball momentum update of one stacked parameter."""
        wds = [o.weight_decay for o in self.optims]
        if any(wds):
            grad = grad + _column(wds, p, self.columns) * p
        if self.name == "momentum":
            if "momentum_buffer" not in slots:
                slots["momentum_buffer"] = grad.detach().clone()
            else:
                slots["momentum_buffer"].mul_(_column([o.momentum for o in self.optims], p, self.columns)).add_(grad)
            grad = slots["momentum_buffer"]
        p.sub_(_column(lr, p, self.columns) * grad)

    def _adam(self, p, grad, lr, slots):
        """Adam / AdamW update of one stacked parameter."""
        optims, t = self.optims, self.steps
        wds = [o.weight_decay for o in optims]
        if any(wds):
            if self.name == "adamw":
                p.mul_(_column([1 - a * w for a, w in zip(lr, wds, strict=False)], p))
            else:
                grad = grad + _column(wds, p) * p
        if not slots:
            slots["exp_avg"] = torch.zeros_like(p)
            slots["exp_avg_sq"] = torch.zeros_like(p)
        exp_avg, exp_avg_sq = slots["exp_avg"], slots["exp_avg_sq"]
        exp_avg.lerp_(grad, _column([1 - o.beta1 for o in optims], p))
        exp_avg_sq.mul_(_column([o.beta2 for o in optims], p)).add_(
            _column([1 - o.beta2 for o in optims], p) * grad * grad)
        step_size = [a / (1 - o.beta1 ** t) for a, o in zip(lr, optims, strict=False)]
        bc2_sqrt = [(1 - o.beta2 ** t) ** 0.5 for o in optims]
        denom = (exp_avg_sq.sqrt() / _column(bc2_sqrt, p)).add_(_column([o.eps for o in optims], p))
        p.sub_(_column(step_size, p) * exp_avg / denom)


# ------------------------------------------------------------------------------------------------
# the ensemble


@dataclass
class _Member:
    """Book-keeping of one ensemble member (its spec, rows, status, generator, previous sharpness result)."""

    spec: RunSpec
    generator: torch.Generator
    rows: list = field(default_factory=list)
    status: str = "ok"
    message: str = ""
    rule: StepRule | None = None  # when its steps are logged, evaluated and end it as diverged (train's rule)
    sharpness_prev: object = None  # the previous sharpness EigResult: its Ritz vectors seed the next solve
    precond_prev: object = None  # the same for precond_sharpness
    probe_errors: list = field(default_factory=list)
    weights: dict | None = None
    sharpness_s: float = 0.0
    probe_generator: torch.Generator | None = None  # the trainer's probe stream (train.probe_generator)


class Ensemble:
    """Stacked parameters, buffers and optimiser state of the live members; one vmapped forward."""

    def __init__(self, specs: list[RunSpec], data: Dataset, device: torch.device, dtype: torch.dtype):
        self.members = [_Member(s, torch.Generator().manual_seed(s.seed), rule=StepRule(s),
                                probe_generator=probe_generator(s.seed)) for s in specs]
        built = [models.build(s.model, data.info, s.optim.name, m.generator, device, dtype)
                 for s, m in zip(specs, self.members, strict=False)]
        self.state_keys = list(built[0].state_dict())
        mults = {id(p): g["lr_mult"] for g in models.param_groups(built[0]) for p in g["params"]}
        lr_mults = {name: mults[id(p)] for name, p in built[0].named_parameters()}
        params, self.buffers = stack_module_state(built)
        self.params = {k: v.detach().requires_grad_() for k, v in params.items()}
        self.init_flat = _flatten(self.params).clone()  # (members, n): theta_0 of every member
        self.init_norms = self.init_flat.norm(dim=1)
        self.base = copy.deepcopy(built[0]).to("meta")
        self.live = list(range(len(specs)))  # stack position -> member index
        self.optimizer = StackedOptimizer(specs, lr_mults)
        self.n_params = sum(p[0].numel() for p in self.params.values())

    def forward(self, x: torch.Tensor, params: dict | None = None) -> torch.Tensor:
        """Outputs of every live member on the same inputs: (members, batch, ...)."""
        params = self.params if params is None else params
        call = lambda p, b, xb: functional_call(self.base, (p, b), (xb,))  # noqa: E731
        return torch.vmap(call, in_dims=(0, 0, None))(params, self.buffers, x)

    def drop(self, positions: set[int]) -> None:
        """Freeze the members at these stack positions (remove them from the stack)."""
        keep = [i for i in range(len(self.live)) if i not in positions]
        index = torch.tensor(keep, device=next(iter(self.params.values())).device)
        self.params = {k: v.detach().index_select(0, index).requires_grad_() for k, v in self.params.items()}
        self.buffers = {k: v.index_select(0, index) for k, v in self.buffers.items()}
        self.init_flat = self.init_flat.index_select(0, index)
        self.init_norms = self.init_norms.index_select(0, index)
        self.optimizer.select(keep)
        self.live = [self.live[i] for i in keep]

    def weights(self, position: int) -> dict[str, np.ndarray]:
        """state_dict of one live member as numpy arrays."""
        stacked = {**self.params, **self.buffers}
        return {k: stacked[k][position].detach().cpu().numpy().copy() for k in self.state_keys}


def _flatten(stacked: dict[str, torch.Tensor]) -> torch.Tensor:
    """All stacked tensors as one (members, n) matrix, in parameter order."""
    return torch.cat([v.detach().flatten(1) for v in stacked.values()], dim=1)


def _accuracies(outputs: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Per-member fraction of argmax predictions equal to the labels (labels or one-hot)."""
    if labels.ndim > 1:
        labels = labels.argmax(dim=1)
    return (outputs.argmax(dim=-1) == labels).double().mean(dim=1).tolist()


def check_members(specs: list[RunSpec]) -> None:
    """Raise EnsembleUnsupported unless the specs can train as one ensemble."""
    if not specs:
        raise EnsembleUnsupported("an ensemble needs at least one spec")
    groups = {ensemble_group(s) for s in specs}
    if None in groups:
        reason = next(unsupported_reason(s) for s in specs if unsupported_reason(s))
        raise EnsembleUnsupported(reason)
    if len(groups) > 1:
        raise EnsembleUnsupported(f"ensemble members may differ only in {', '.join(MEMBER_FIELDS)}")


def train_ensemble(specs: list[RunSpec], should_stop: Callable[[], bool] | None = None,
                   on_step: Callable[[int, int], None] | None = None, data: Dataset | None = None) -> list[Run]:
    """Train compatible specs as one vmapped ensemble; one Run per spec, equal to `train(spec)`'s.

    Raises EnsembleUnsupported when the specs cannot share an ensemble or the model cannot be
    vmapped; any later error fails every member (status "failed"), like an error in `train`.
    """
    check_members(specs)
    started = time.perf_counter()
    spec0 = specs[0]
    device = resolve_device(spec0.device)
    dtype = torch.float64 if spec0.dtype == "float64" else torch.float32
    data = load(spec0.data) if data is None else data
    try:
        ens = Ensemble(specs, data, device, dtype)
    except Exception as err:
        raise EnsembleUnsupported(f"could not build the ensemble: {type(err).__name__}: {err}") from err
    timings = {"train_s": 0.0, "eval_s": 0.0, "probe_s": {}}
    try:
        _loop(ens, data, device, dtype, timings, should_stop, on_step, started)
    except EnsembleUnsupported:
        raise
    except Exception as err:  # a failed run is an outcome to show, with its reason
        for i in ens.live:
            ens.members[i].status, ens.members[i].message = "failed", f"{type(err).__name__}: {err}"
    return _runs(ens, timings, started)


def _runs(ens: Ensemble, timings: dict, started: float) -> list[Run]:
    """One Run per member; timings are the member's equal share of the ensemble's."""
    size = len(ens.members)
    total = time.perf_counter() - started
    runs = []
    for member in ens.members:
        share = {"train_s": timings["train_s"] / size, "eval_s": timings["eval_s"] / size,
                 "probe_s": {k: v / size for k, v in timings["probe_s"].items()},
                 "total_s": total / size, "backend": "vmap", "ensemble_size": size}
        steps_done = member.rows[-1]["step"] if member.rows else 0
        share["steps_per_s"] = steps_done / timings["train_s"] if timings["train_s"] > 0 else float("nan")
        runs.append(Run(spec=member.spec, history=pd.DataFrame(member.rows),
                        spectra=pd.DataFrame(columns=SPECTRA_COLUMNS), status=member.status, timings=share,
                        message=member.message, weights=member.weights, probe_errors=member.probe_errors))
    return runs


def _loop(ens: Ensemble, data: Dataset, device, dtype, timings, should_stop, on_step, started):
    """The training loop of train._loop, for all live members at once."""
    caps = current_caps()
    spec0 = ens.members[0].spec
    loss_fn = loss_function(spec0.optim.loss)
    member_loss = torch.vmap(loss_fn, in_dims=(0, None))

    x_train, x_test, y_train, y_test = device_split(data, spec0.optim.loss, device, dtype)
    classification = data.info.task == "classification"
    n_probe = spec0.probes.probe_batch or len(x_train)
    steps = spec0.optim.steps
    sharpness_every = spec0.probes.sharpness_every
    try:
        ens.forward(x_train[:1])  # fail early (EnsembleUnsupported) when the model does not vmap
    except Exception as err:
        raise EnsembleUnsupported(f"the model cannot be vmapped: {type(err).__name__}: {err}") from err
    t0 = time.perf_counter()

    for step in range(steps + 1):
        last = step == steps
        tick = time.perf_counter()
        members = [ens.members[i] for i in ens.live]
        lrs = [m.spec.optim.lr * lr_factor(m.spec, min(step, steps - 1)) for m in members]
        outputs = ens.forward(x_train)
        losses = member_loss(outputs, y_train)
        grads = None
        if not last:
            names = list(ens.params)
            grads = dict(zip(names, torch.autograd.grad(losses.sum(), [ens.params[k] for k in names]), strict=False))
        outputs, losses = outputs.detach(), losses.detach()
        loss_values = losses.tolist()
        timings["train_s"] += time.perf_counter() - tick
        diverged = {pos for pos, (m, value) in enumerate(zip(members, loss_values, strict=True))
                    if m.rule.diverged(value)}
        logging = members[0].rule.logs(step, last, False)  # the members' shared cadence (NormsProbe's too)
        log_pos = [pos for pos, m in enumerate(members) if m.rule.logs(step, last, pos in diverged)]
        if log_pos:
            rows = _rows(ens, members, log_pos, step, t0, lrs, loss_values, outputs, y_train, classification)
            healthy = [p for p in log_pos if p not in diverged]
            evaluated = [p for p in log_pos if members[p].rule.evaluates(step, last, p in diverged)]
            if evaluated:
                tick = time.perf_counter()
                _evaluate(ens, rows, evaluated, loss_values, x_test, y_test, classification)
                timings["eval_s"] += time.perf_counter() - tick
            if logging:  # NormsProbe's cadence is log_every (and the last step)
                tick = time.perf_counter()
                _norms(ens, rows, grads, last)
                timings["probe_s"]["norms"] = timings["probe_s"].get("norms", 0.0) + time.perf_counter() - tick
            if sharpness_every and (step % sharpness_every == 0 or last) and healthy:
                tick = time.perf_counter()
                _sharpness(ens, members, rows, healthy, x_train[:n_probe], y_train[:n_probe], loss_fn, step)
                timings["probe_s"]["sharpness"] = (timings["probe_s"].get("sharpness", 0.0)
                                                   + time.perf_counter() - tick)
            for pos in log_pos:
                members[pos].rows.append(rows[pos])
        if on_step is not None:
            on_step(step, steps)
        if diverged:
            for pos in sorted(diverged):
                m = members[pos]
                m.status = "diverged"
                m.message = m.rule.message(loss_values[pos], step)
                m.weights = _saved_weights(ens, pos, m.spec)
            if len(diverged) == len(members):
                return
            keep = [pos for pos in range(len(members)) if pos not in diverged]
            lrs = [lrs[pos] for pos in keep]
            if grads is not None:
                index = torch.tensor(keep, device=x_train.device)
                grads = {k: g.index_select(0, index) for k, g in grads.items()}
            ens.drop(diverged)
            members = [ens.members[i] for i in ens.live]
        if last:
            break
        if should_stop is not None and should_stop():
            for m in members:
                m.status, m.message = "stopped", f"stopped by the user at step {step}"
            return _save_all(ens)
        if time.perf_counter() - started > caps.max_wall_s:
            for m in members:
                m.status = "stopped"
                m.message = f"stopped at the {caps.profile} wall-time cap of {caps.max_wall_s:g} s"
            return _save_all(ens)
        tick = time.perf_counter()
        ens.optimizer.step(ens.params, grads, lrs)
        timings["train_s"] += time.perf_counter() - tick
    _save_all(ens)


def _save_all(ens: Ensemble) -> None:
    """Final weights of every live member (when its spec keeps them)."""
    for pos, i in enumerate(ens.live):
        ens.members[i].weights = _saved_weights(ens, pos, ens.members[i].spec)


def _saved_weights(ens: Ensemble, pos: int, spec: RunSpec):
    """The member's final weights, when its spec keeps them and the model is small enough."""
    if spec.probes.save_weights and ens.n_params <= MAX_SAVED_PARAMS:
        return ens.weights(pos)
    return None


def _rows(ens, members, log_pos, step, t0, lrs, loss_values, outputs, y_train, classification):
    """History rows {step, time_s, lr, loss, train_acc} for the logged stack positions."""
    now = time.perf_counter() - t0
    accs = _accuracies(outputs, y_train) if classification else None
    rows = {}
    for pos in log_pos:
        rows[pos] = StepRule.row(step, now, lrs[pos], loss_values[pos], accs[pos] if classification else None)
    return rows


@torch.no_grad()
def _evaluate(ens, rows, positions, loss_values, x_test, y_test, classification):
    """train_loss (the full-batch loss) and test loss/accuracy for the members at these positions."""
    if not positions:
        return
    test_out = test_losses = accs = None
    if len(x_test):
        test_out = ens.forward(x_test)
        test_losses = torch.vmap(loss_function(ens.members[0].spec.optim.loss), in_dims=(0, None))(
            test_out, y_test).tolist()
        accs = _accuracies(test_out, y_test) if classification else None
    for pos in positions:
        rows[pos]["train_loss"] = loss_values[pos]
        if test_out is not None:
            rows[pos]["test_loss"] = test_losses[pos]
            if classification:
                rows[pos]["test_acc"] = accs[pos]


@torch.no_grad()
def _norms(ens, rows, grads, last):
    """grad_norm (not at the last step), param_norm, weight_change, as NormsProbe measures them."""
    grad_norms = _flatten(grads).norm(dim=1).tolist() if grads is not None and not last else None
    flat = _flatten(ens.params)
    param_norms, changes = flat.norm(dim=1).tolist(), (flat - ens.init_flat).norm(dim=1).tolist()
    init_norms = ens.init_norms.tolist()
    for pos, row in rows.items():
        if grad_norms is not None:
            row["grad_norm"] = grad_norms[pos]
        row["param_norm"] = param_norms[pos]
        row["weight_change"] = changes[pos] / init_norms[pos] if init_norms[pos] > 0 else float("nan")


def _sharpness(ens, members, rows, positions, inputs, targets, loss_fn, step):
    """Top Hessian eigenvalue of each member's loss on the probe batch, by batched HVPs, as SharpnessProbe.

    Under SGD-like optimisers whose geometry is not plain GD, also the top eigenvalue of
    D^{1/2} (H + wd I) D^{1/2} (D the lr multipliers): `precond_sharpness`, exactly as the serial probe
    computes it (`curvature.optimizer_top_eigenvalues`), after the plain solve and from the same generator.
    """
    index = torch.tensor(positions, device=inputs.device)
    leaves = {k: v.detach().index_select(0, index).requires_grad_() for k, v in ens.params.items()}
    buffers = {k: v.index_select(0, index) for k, v in ens.buffers.items()}
    call = lambda p, b, xb: functional_call(ens.base, (p, b), (xb,))  # noqa: E731
    with torch.enable_grad():
        outputs = torch.vmap(call, in_dims=(0, 0, None))(leaves, buffers, inputs)
        losses = torch.vmap(loss_fn, in_dims=(0, None))(outputs, targets)
        plist = list(leaves.values())
        grads = torch.autograd.grad(losses.sum(), plist, create_graph=True)
    flat_grad = torch.cat([g.reshape(len(positions), -1) for g in grads], dim=1)
    loss_values = losses.detach().tolist()
    dtype = plist[0].dtype

    def solver(m, v0):
        return LanczosSolver(ens.n_params, k=1, tol=m.spec.probes.sharpness_tol, v0=v0, generator=m.probe_generator,
                             dtype=dtype, device=flat_grad.device)

    solvers = {}
    for j, pos in enumerate(positions):
        m = members[pos]
        if not math.isfinite(loss_values[j]):
            _probe_failed(m, rows[pos], step, f"FloatingPointError: loss_fn returned a non-finite loss "
                                              f"({loss_values[j]}); the Hessian is undefined")
            continue
        solvers[j] = solver(m, m.sharpness_prev)
    _drive(solvers, flat_grad, plist, members, rows, positions, step)
    mults = ens.optimizer.lr_mults
    d = torch.cat([torch.full((p[0].numel(),), mults[k], dtype=torch.float64) for k, p in leaves.items()])
    second = {}
    for j, s in solvers.items():
        m = members[positions[j]]
        res = s.result(dtype=dtype)
        m.sharpness_prev = res
        row = rows[positions[j]]
        row.update(sharpness_columns(res))
        if m.spec.optim.name not in models.SGD_LIKE:
            continue
        shift = sgd_geometry_shift(mults.values(), [m.spec.optim.weight_decay])
        if shift is None:
            second[j] = solver(m, m.precond_prev)
        elif shift:
            row.update({"precond_sharpness": row["sharpness"] + shift,
                        "precond_sharpness_converged": row["sharpness_converged"]})
    if second:
        scale = d.sqrt().to(device=flat_grad.device, dtype=dtype)
        shifts = {j: (members[positions[j]].spec.optim.weight_decay * d).to(device=flat_grad.device, dtype=dtype)
                  for j in second}
        _drive(second, flat_grad, plist, members, rows, positions, step, scale=scale, shifts=shifts)
        for j, s in second.items():
            m = members[positions[j]]
            m.precond_prev = s.result(dtype=dtype)
            rows[positions[j]].update(precond_sharpness_columns(m.precond_prev))


def _drive(solvers: dict, flat_grad, plist, members, rows, positions, step, scale=None, shifts=None) -> None:
    """Run the members' solvers in lockstep on batched products (of scale H scale + shift when given)."""
    n = flat_grad.shape[1]
    while any(not s.done for s in solvers.values()):
        vectors = torch.zeros(len(positions), n, dtype=flat_grad.dtype, device=flat_grad.device)
        for j, s in solvers.items():
            if not s.done:
                vectors[j] = s.pending
        products = _batched_hvp(flat_grad, plist, vectors if scale is None else vectors * scale).detach()
        if scale is not None:
            products = products * scale
        for j, s in list(solvers.items()):
            if s.done:
                continue
            w = products[j] if shifts is None else products[j] + shifts[j] * vectors[j]
            try:
                s.feed(w)  # checks that the product is finite
            except FloatingPointError as err:
                _probe_failed(members[positions[j]], rows[positions[j]], step, f"FloatingPointError: {err}")
                del solvers[j]


def _batched_hvp(flat_grad: torch.Tensor, params: list[torch.Tensor], vectors: torch.Tensor) -> torch.Tensor:
    """Every member's H_m v_m from the create_graph gradient of the summed loss: (members, n)."""
    if not flat_grad.requires_grad:  # the loss is (at most) linear in the parameters
        return torch.zeros_like(vectors)
    with torch.enable_grad():
        parts = torch.autograd.grad((flat_grad * vectors).sum(), params, retain_graph=True, allow_unused=True,
                                    materialize_grads=True)
    return torch.cat([p.reshape(len(vectors), -1) for p in parts], dim=1)


def _probe_failed(member: _Member, row: dict, step: int, reason: str) -> None:
    """Record a failed sharpness measurement as the serial loop does (NaN plus a reason)."""
    row.update({name: float("nan") for name in SharpnessProbe.columns})
    member.probe_errors.append(f"step {step}: sharpness: {reason}")
