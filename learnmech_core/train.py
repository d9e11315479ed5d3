"""The one training loop: every architecture, dataset and optimiser; probes on a schedule.

Step t computes the loss on its batch at the weights theta_t, backpropagates, logs a history row
(every `probes.log_every` steps), runs the probes that are due (they see theta_t, its batch and the
optimiser state before the update) and only then updates to theta_{t+1}. After the last update a
final row is logged at step = `optim.steps`, so the history runs from step 0 to steps inclusive.

Divergence (a non-finite loss, or one above `diverge_factor` x max(initial loss, 1)) ends the run with
status "diverged" and keeps the history up to it; `should_stop()` returning True ends it with
"stopped"; an exception inside a probe is recorded (NaN plus a reason) and the run goes on; any other
exception ends it with "failed" and the message. No global RNG is touched: the run owns a CPU
`torch.Generator` seeded with `spec.seed` for initialisation and minibatch order.

`control(step, model)`, when given, is consulted at the start of every step before the last (before
the forward pass); it may block (a paused run) and may return a new base learning rate, used from that
step on. A change is recorded as `(step, lr)` in the returned run's `spec.optim.lr_changes` (and in the
history's `lr` column), so the returned spec replays the same run without a control.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from traceback import format_exc

import pandas as pd
import torch
import torch.nn.functional as F

from . import models
from .config import RunSpec, current_caps
from .data import Dataset, load
from .probes import ProbeContext, build_probes, collected_snapshots
from .records import MAX_SAVED_PARAMS, SPECTRA_COLUMNS, Progress, Run, StepRule  # also re-exported from here


def probe_generator(seed: int) -> torch.Generator:
    """Randomness of the measurements, a stream separate from initialisation and minibatch order,
    so that adding or removing a probe never changes the training trajectory."""
    return torch.Generator().manual_seed(seed + 2**31)


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda, else mps, else cpu; a named device that is missing is a ValueError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available (use cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was requested but Apple's MPS backend is not available (use cpu or auto)")
    return torch.device(name)


def loss_function(name: str) -> Callable:
    """mse: 0.5 x squared error summed over outputs, mean over examples; ce: mean cross-entropy."""
    if name == "mse":
        return lambda out, y: 0.5 * (out - y).pow(2).flatten(1).sum(dim=1).mean()
    return lambda out, y: F.cross_entropy(out, y)


def lr_factor(spec: RunSpec, step: int) -> float:
    """Schedule multiplier of the base learning rate at a step."""
    o = spec.optim
    if o.schedule == "constant":
        return 1.0
    if step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    span = max(o.steps - o.warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - o.warmup_steps, span) / span))


def base_lr(changes: dict[int, float], lr: float, step: int) -> float:
    """The base learning rate at a step: `lr`, or the value of the last change at or before the step."""
    due = [s for s in changes if s <= step]
    return changes[max(due)] if due else lr


def make_optimizer(spec: RunSpec, model: torch.nn.Module) -> torch.optim.Optimizer:
    """torch optimiser with one parameter group per parametrisation lr multiplier."""
    o = spec.optim
    groups = models.param_groups(model)
    for g in groups:
        g["lr"] = o.lr * g["lr_mult"]
    if o.name in ("gd", "sgd"):
        return torch.optim.SGD(groups, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "momentum":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
    return cls(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay)


def accuracy(outputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of argmax predictions equal to the labels (labels or one-hot)."""
    if labels.ndim > 1:
        labels = labels.argmax(dim=1)
    return (outputs.argmax(dim=1) == labels).double().mean().item()


class _Batches:
    """Full batch, or minibatches in a fresh random order each epoch (from the run's generator)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.order, self.pos = None, n

    def next(self):
        if self.batch_size == 0 or self.batch_size >= self.n:
            return None  # full batch
        if self.pos + self.batch_size > self.n:
            self.order, self.pos = torch.randperm(self.n, generator=self.generator), 0
        idx = self.order[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx


def train(spec: RunSpec, on_progress: Callable[[Progress], None] | None = None,
          should_stop: Callable[[], bool] | None = None, data: Dataset | None = None,
          control: Callable[[int, torch.nn.Module], float | None] | None = None) -> Run:
    """Train the model a spec describes; never raises for divergence, stops or probe failures."""
    started = time.perf_counter()
    rows: list[dict] = []
    spectra_rows: list[tuple] = []
    run = Run(spec=spec, history=pd.DataFrame())
    changes = dict(spec.optim.lr_changes)
    try:
        _loop(spec, run, rows, spectra_rows, on_progress, should_stop, data, started, control, changes)
    except Exception as err:  # a failed run is an outcome to show, with its reason
        run.status, run.message = "failed", f"{type(err).__name__}: {err}"
        run.traceback = format_exc()
    if changes != dict(spec.optim.lr_changes):  # changed while training: the spec that replays this run
        run.spec = spec.replace(**{"optim.lr_changes": tuple(sorted(changes.items()))})
    run.history = pd.DataFrame(rows)
    run.spectra = pd.DataFrame(spectra_rows, columns=SPECTRA_COLUMNS)
    run.timings["total_s"] = time.perf_counter() - started
    return run


def get_or_train(store, spec: RunSpec, on_progress: Callable[[Progress], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, tags: Iterable[str] = ()) -> Run:
    """The run `store` (a `store.RunStore`) holds for this spec, else train it and store it (not when stopped)."""
    key = spec.key()
    if store.has(key):
        run = store.get(key)
        if run is not None:
            if tags and not store.readonly:
                store.tag(key, tags)
            return run
    run = train(spec, on_progress=on_progress, should_stop=should_stop)
    if run.status != "stopped" and not store.readonly:
        store.put(run, tags=tags)
    return run


def device_split(data, loss: str, device, dtype) -> tuple[torch.Tensor, ...]:
    """(x_train, x_test, y_train, y_test) on the run's device, floating tensors in its dtype, targets for the loss."""

    def on_device(x):
        return x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)

    return (on_device(data.x_train), on_device(data.x_test), on_device(data.targets(data.y_train, loss)),
            on_device(data.targets(data.y_test, loss)))


def _loop(spec, run, rows, spectra_rows, on_progress, should_stop, data, started, control, changes):
    caps = current_caps()
    device = resolve_device(spec.device)
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    generator = torch.Generator().manual_seed(spec.seed)
    data = load(spec.data) if data is None else data
    loss_fn = loss_function(spec.optim.loss)

    x_train, x_test, y_train, y_test = device_split(data, spec.optim.loss, device, dtype)
    classification = data.info.task == "classification"
    model = models.build(spec.model, data.info, spec.optim.name, generator, device, dtype)
    optimizer = make_optimizer(spec, model)
    params = [p for p in model.parameters()]
    init_params = [p.detach().clone() for p in params]
    init_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(init_params))).item()
    probes = build_probes(spec.probes)
    n_probe = spec.probes.probe_batch or len(x_train)
    ctx = ProbeContext(model=model, loss_fn=loss_fn, inputs=x_train[:n_probe], targets=y_train[:n_probe],
                       x_test=x_test, y_test=y_test, optimizer=optimizer, spec=spec,
                       generator=probe_generator(spec.seed), init_params=init_params, init_norm=init_norm,
                       classification=classification)
    batches = _Batches(len(x_train), spec.optim.batch_size, generator)
    model.train()
    timings = run.timings
    timings.update(train_s=0.0, eval_s=0.0, probe_s={})
    o, steps = spec.optim, spec.optim.steps
    rule = StepRule(spec)
    t0 = time.perf_counter()

    for step in range(steps + 1):
        last = step == steps
        if control is not None and not last:
            new_lr = control(step, model)
            if new_lr is not None and new_lr != base_lr(changes, o.lr, step):
                changes[step] = float(new_lr)
        idx = batches.next() if not last else None
        xb, yb = (x_train, y_train) if idx is None else (x_train[idx], y_train[idx])
        tick = time.perf_counter()
        lr = base_lr(changes, o.lr, min(step, steps - 1)) * lr_factor(spec, min(step, steps - 1))
        outputs = model(xb)
        loss = loss_fn(outputs, yb)
        if not last:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        else:
            outputs, loss = outputs.detach(), loss.detach()
        loss_value = loss.item()
        timings["train_s"] += time.perf_counter() - tick
        diverged = rule.diverged(loss_value)
        if rule.logs(step, last, diverged):
            acc = accuracy(outputs.detach(), yb) if idx is None and classification else None
            row = rule.row(step, time.perf_counter() - t0, lr, loss_value, acc)
            if rule.evaluates(step, last, diverged):
                tick = time.perf_counter()
                row.update(_evaluate(model, loss_fn, x_train, y_train, x_test, y_test, classification,
                                     full_done=idx is None, train_loss=loss_value))
                timings["eval_s"] += time.perf_counter() - tick
            ctx.step, ctx.lr, ctx.last = step, lr, last
            for probe in probes:
                if not probe.due(step, last) or (diverged and probe.needs_finite):
                    continue
                tick = time.perf_counter()
                try:
                    scalars, spec_rows = probe.measure(ctx)
                except Exception as err:  # recorded, never fatal
                    scalars = {name: float("nan") for name in probe.columns}
                    spec_rows = []
                    run.probe_errors.append(f"step {step}: {probe.name}: {type(err).__name__}: {err}")
                row.update(scalars)
                spectra_rows.extend((step, *r) for r in spec_rows)
                timings["probe_s"][probe.name] = timings["probe_s"].get(probe.name, 0.0) + time.perf_counter() - tick
            rows.append(row)
            if on_progress is not None:
                on_progress(Progress(step=step, total=steps, row=row, elapsed_s=time.perf_counter() - started))
        if diverged:
            run.status, run.message = "diverged", rule.message(loss_value, step)
            break
        if last:
            break
        if should_stop is not None and should_stop():
            run.status, run.message = "stopped", f"stopped by the user at step {step}"
            break
        if time.perf_counter() - started > caps.max_wall_s:
            run.status, run.message = "stopped", f"stopped at the {caps.profile} wall-time cap of {caps.max_wall_s:g} s"
            break
        tick = time.perf_counter()
        if o.schedule != "constant" or changes:
            for g in optimizer.param_groups:
                g["lr"] = lr * g["lr_mult"]
        optimizer.step()
        timings["train_s"] += time.perf_counter() - tick

    steps_done = rows[-1]["step"] if rows else 0
    timings["steps_per_s"] = steps_done / timings["train_s"] if timings["train_s"] > 0 else float("nan")
    run.snapshots = collected_snapshots(ctx.state)
    if spec.probes.save_weights and sum(p.numel() for p in params) <= MAX_SAVED_PARAMS:
        run.weights = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


@torch.no_grad()
def _evaluate(model, loss_fn, x_train, y_train, x_test, y_test, classification, full_done, train_loss):
    """Full training loss/accuracy (reused when the step was full batch) and test loss/accuracy."""
    model.eval()
    try:
        return _evaluate_metrics(model, loss_fn, x_train, y_train, x_test, y_test, classification, full_done,
                                 train_loss)
    finally:
        model.train()


def _evaluate_metrics(model, loss_fn, x_train, y_train, x_test, y_test, classification, full_done, train_loss):
    out = {}
    if full_done:
        out["train_loss"] = train_loss
    else:
        train_out = model(x_train)
        out["train_loss"] = loss_fn(train_out, y_train).item()
        if classification:
            out["train_acc"] = accuracy(train_out, y_train)
    if len(x_test):
        test_out = model(x_test)
        out["test_loss"] = loss_fn(test_out, y_test).item()
        if classification:
            out["test_acc"] = accuracy(test_out, y_test)
    return out


def build_model(spec: RunSpec, data: Dataset | None = None, weights: dict | None = None):
    """The run's model (initial weights from the seed, or the given state dict) and its dataset."""
    data = load(spec.data) if data is None else data
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    model = models.build(spec.model, data.info, spec.optim.name, torch.Generator().manual_seed(spec.seed),
                         "cpu", dtype)
    if weights is not None:
        model.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
    return model, data
