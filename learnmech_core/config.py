"""Frozen run specifications: validation at construction, stable keys, JSON and URL round-trips.

A run is described by one `RunSpec`. Two specs with the same `key()` give the same result, so the
key is the cache and storage key. Every field is validated when the spec is built: a bad value raises
`ValueError` naming the field, the value and what is allowed. Size caps (parameters, samples, steps,
width) come from the active profile, `LEARNMECH_PROFILE=local|hosted`, read at validation time.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import typing
from dataclasses import dataclass, field

from .registry import (
    ACTIVATIONS,
    ARCHITECTURES,
    DATASETS,
    DEVICES,
    LOSSES,
    MODULAR_OPS,
    OPTIMIZERS,
    PARAMETRISATIONS,
    SCHEDULES,
    UPLOAD_PREFIX,
    allowed,
)

SPEC_VERSION = 1  # bump when the meaning of a field changes: old keys then stop matching
# fields added since version 1 -> default; at their default they stay out of RunSpec.key()
ADDED_FIELDS = {("model", "head_width"): 0, ("probes", "snapshot_every"): 0, ("probes", "gauss_newton_k"): 0,
                ("optim", "lr_changes"): []}


@dataclass(frozen=True)
class Caps:
    """Resource limits a spec must respect (the hosted profile is stricter)."""

    profile: str
    max_params: int
    max_width: int
    max_depth: int
    max_samples: int
    max_steps: int
    max_wall_s: float
    max_upload_mb: float
    max_concurrent_runs: int
    max_worker_mb: float = 8192.0  # resident memory of one training process (its run refused / stopped above)


PROFILES = {
    "local": Caps("local", 20_000_000, 4096, 32, 70_000, 200_000, 24 * 3600.0, 200.0, 4, max_worker_mb=8192.0),
    "hosted": Caps("hosted", 300_000, 1024, 8, 5_000, 5_000, 180.0, 5.0, 2, max_worker_mb=600.0),
}


def current_caps() -> Caps:
    """Caps of the profile named by LEARNMECH_PROFILE (default local).

    On Streamlit Community Cloud, a root-level secret `LEARNMECH_PROFILE = "hosted"` in the app's
    settings becomes this environment variable (Streamlit copies root-level secrets into os.environ
    when the server starts; the app also copies them itself, see `learnmech_app.resources`).
    """
    name = os.environ.get("LEARNMECH_PROFILE", "local").strip().lower() or "local"
    if name not in PROFILES:
        raise ValueError(f"LEARNMECH_PROFILE must be one of {', '.join(PROFILES)} (got {name!r})")
    return PROFILES[name]


def _int(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError(f"{name} must be an integer (got {value!r})")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ValueError(f"{name} must be {rng} (got {value})")
    return value


def _float(name: str, value, lo: float, hi: float, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number (got {value!r})")
    value = float(value)
    bad_lo = value <= lo if lo_open else value < lo
    if value != value or bad_lo or value > hi:
        left = "greater than" if lo_open else "at least"
        raise ValueError(f"{name} must be {left} {lo:g} and at most {hi:g} (got {value:g})")
    return value


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class ModelSpec:
    """Architecture, size and parametrisation.

    `depth` counts hidden layers for mlp/resnet/cnn (conv layers or residual blocks), weight matrices
    for deep_linear, and transformer blocks for transformer. `width` is hidden units, channels or
    d_model. `param`: sp (standard), ntk, or mup (relative to `base_width`). `output_mult` scales the
    read-out (Chizat's lazy-training alpha); `init_scale` multiplies every initial weight. `head_width`
    (cnn only) puts a fully connected hidden layer of that many units between the flattened
    convolutions and the read-out, as in LeNet and VGG; 0 reads the convolutions out directly.
    """

    arch: str = "mlp"
    width: int = 128
    depth: int = 2
    activation: str = "tanh"
    param: str = "sp"
    base_width: int = 64
    init_scale: float = 1.0
    output_mult: float = 1.0
    bias: bool = True
    heads: int = 4
    head_width: int = 0

    def __post_init__(self):
        caps = current_caps()
        allowed("model.arch", self.arch, ARCHITECTURES)
        allowed("model.activation", self.activation, ACTIVATIONS)
        allowed("model.param", self.param, PARAMETRISATIONS)
        _set(self, "width", _int("model.width", self.width, 1, caps.max_width))
        _set(self, "depth", _int("model.depth", self.depth, 1, caps.max_depth))
        _set(self, "base_width", _int("model.base_width", self.base_width, 1, caps.max_width))
        _set(self, "init_scale", _float("model.init_scale", self.init_scale, 0.0, 100.0, lo_open=True))
        _set(self, "output_mult", _float("model.output_mult", self.output_mult, 0.0, 1e4, lo_open=True))
        _set(self, "heads", _int("model.heads", self.heads, 1, 64))
        _set(self, "head_width", _int("model.head_width", self.head_width, 0, caps.max_width))
        if not isinstance(self.bias, bool):
            raise ValueError(f"model.bias must be true or false (got {self.bias!r})")
        if self.arch == "transformer" and self.width % self.heads:
            raise ValueError(f"model.width must be divisible by model.heads={self.heads} for a transformer "
                             f"(got {self.width})")
        if self.arch == "transformer" and self.depth > 4:
            raise ValueError(f"model.depth must be between 1 and 4 for a transformer (got {self.depth})")


@dataclass(frozen=True)
class DataSpec:
    """Dataset by registry name, its size and generator settings.

    Generator settings apply to the datasets that use them: `dim`, `n_classes`, `separation`,
    `noise` (gaussian_mixture: noise added to the unit-variance clusters), `dim`, `teacher_width`, `noise`
    (teacher_student), `dim`, `singular_values`,
    `noise` (linear_lowrank), `noise` (moons, spirals, circles), `modulus`, `op` (modular_arithmetic:
    n_train + n_test pairs drawn without replacement from all pairs). `classes` keeps only those labels.
    """

    name: str = "digits"
    n_train: int = 512
    n_test: int = 256
    classes: tuple[int, ...] | None = None
    standardize: bool = True
    seed: int = 0
    noise: float = 0.0
    dim: int = 8
    n_classes: int = 4
    separation: float = 3.0
    teacher_width: int = 64
    singular_values: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5)
    modulus: int = 47
    op: str = "add"

    def __post_init__(self):
        caps = current_caps()
        if not (isinstance(self.name, str) and self.name.startswith(UPLOAD_PREFIX)):
            allowed("data.name", self.name, DATASETS)
        _set(self, "n_train", _int("data.n_train", self.n_train, 1, caps.max_samples))
        _set(self, "n_test", _int("data.n_test", self.n_test, 0, caps.max_samples))
        if self.classes is not None:
            classes = tuple(_int("data.classes", c, 0, 1000) for c in self.classes)
            if len(classes) < 2 or len(set(classes)) != len(classes):
                raise ValueError(f"data.classes must list at least two distinct labels (got {self.classes!r})")
            _set(self, "classes", tuple(sorted(classes)))
        _set(self, "seed", _int("data.seed", self.seed, 0, 2**31 - 1))
        _set(self, "noise", _float("data.noise", self.noise, 0.0, 100.0))
        _set(self, "dim", _int("data.dim", self.dim, 1, 4096))
        _set(self, "n_classes", _int("data.n_classes", self.n_classes, 2, 100))
        _set(self, "separation", _float("data.separation", self.separation, 0.0, 100.0))
        _set(self, "teacher_width", _int("data.teacher_width", self.teacher_width, 1, 4096))
        svals = tuple(_float("data.singular_values", s, 0.0, 1e3, lo_open=True) for s in self.singular_values)
        if not svals or len(svals) > self.dim:
            raise ValueError(f"data.singular_values must have between 1 and data.dim={self.dim} entries "
                             f"(got {len(svals)})")
        _set(self, "singular_values", svals)
        _set(self, "modulus", _int("data.modulus", self.modulus, 3, 211))
        allowed("data.op", self.op, MODULAR_OPS)
        if not isinstance(self.standardize, bool):
            raise ValueError(f"data.standardize must be true or false (got {self.standardize!r})")
        if self.name == "modular_arithmetic":
            n_pairs = self.modulus * (self.modulus - 1 if self.op == "div" else self.modulus)
            if self.n_train + self.n_test > n_pairs:
                raise ValueError(
                    f"data.n_train + data.n_test must be at most {n_pairs} pairs for modulus {self.modulus} "
                    f"(got {self.n_train + self.n_test})"
                )


@dataclass(frozen=True)
class OptimSpec:
    """Optimiser, loss, schedule and run length. `batch_size=0` means full batch (required for gd).

    `loss="mse"` is 0.5 x squared error summed over outputs, averaged over examples (the convention
    under which GD's stability threshold is 2/eta on the Hessian of this loss). The run counts as
    diverged when the loss is not finite or exceeds `diverge_factor` x max(initial loss, 1).
    `lr_changes` lists `(step, lr)` pairs, steps increasing: from that step on the base learning rate
    is `lr` (a teacher's change of a live run is recorded here, so the spec replays it).
    """

    name: str = "gd"
    lr: float = 0.05
    steps: int = 300
    loss: str = "mse"
    batch_size: int = 0
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    eval_every: int = 10
    diverge_factor: float = 1e3
    lr_changes: tuple[tuple[int, float], ...] = ()

    def __post_init__(self):
        caps = current_caps()
        allowed("optim.name", self.name, OPTIMIZERS)
        allowed("optim.loss", self.loss, LOSSES)
        allowed("optim.schedule", self.schedule, SCHEDULES)
        _set(self, "lr", _float("optim.lr", self.lr, 0.0, 1e4, lo_open=True))
        _set(self, "steps", _int("optim.steps", self.steps, 1, caps.max_steps))
        _set(self, "batch_size", _int("optim.batch_size", self.batch_size, 0, caps.max_samples))
        _set(self, "momentum", _float("optim.momentum", self.momentum, 0.0, 0.9999))
        _set(self, "beta1", _float("optim.beta1", self.beta1, 0.0, 0.9999))
        _set(self, "beta2", _float("optim.beta2", self.beta2, 0.0, 0.999999))
        _set(self, "eps", _float("optim.eps", self.eps, 0.0, 1.0, lo_open=True))
        _set(self, "weight_decay", _float("optim.weight_decay", self.weight_decay, 0.0, 100.0))
        _set(self, "warmup_steps", _int("optim.warmup_steps", self.warmup_steps, 0, self.steps))
        _set(self, "eval_every", _int("optim.eval_every", self.eval_every, 0, caps.max_steps))
        _set(self, "diverge_factor", _float("optim.diverge_factor", self.diverge_factor, 1.0, 1e12))
        _set(self, "lr_changes", _lr_changes(self.lr_changes, self.steps))
        if self.name == "gd" and self.batch_size != 0:
            raise ValueError(
                f"optim.batch_size must be 0 (full batch) for gd (got {self.batch_size}); use sgd for minibatches"
            )


def _lr_changes(value, steps: int) -> tuple[tuple[int, float], ...]:
    """Validated `optim.lr_changes`: (step, lr) pairs with 1 <= step < steps, steps strictly increasing."""
    if not isinstance(value, (tuple, list)):
        raise ValueError(f"optim.lr_changes must be a list of (step, lr) pairs (got {value!r})")
    out: list[tuple[int, float]] = []
    for item in value:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"optim.lr_changes entries must be (step, lr) pairs (got {item!r})")
        step = _int("optim.lr_changes step", item[0], 1, max(steps - 1, 1))
        if out and step <= out[-1][0]:
            raise ValueError(f"optim.lr_changes steps must increase (got {step} after {out[-1][0]})")
        out.append((step, _float("optim.lr_changes lr", item[1], 0.0, 1e4, lo_open=True)))
    return tuple(out)


@dataclass(frozen=True)
class ProbeSpec:
    """What to measure and how often (0 = never). Scalars go to run.history, spectra to run.spectra.

    `log_every` sets the history cadence; measurement cadences should be multiples of it.
    `norms` logs grad_norm, param_norm and weight_change at every logged step (on by default).
    `probe_batch` limits curvature/NTK/noise probes to the first N training examples (0 = all).
    `extra` names further probes as 'learnmech_core.module:ProbeClass' (a `probes.Probe` subclass built
    as `cls(every)`), measured every `extra_every` steps (0: every `log_every`).
    `snapshot_every` keeps the flattened weights every that many steps (and at the last step) for the
    trajectory's PCA landscape (`learnmech_core.trajectory`).
    `gauss_newton_k` > 0 splits the Hessian's top-k eigenpairs into Gauss-Newton and residual parts at the
    last step only (`gauss_newton.curvature_split`; spectra rows `gn_*`).
    """

    log_every: int = 1
    sharpness_every: int = 0
    sharpness_tol: float = 1e-3
    topk_every: int = 0
    topk: int = 5
    precond_sharpness_every: int = 0
    density_every: int = 0
    esd_every: int = 0
    ntk_every: int = 0
    ntk_points: int = 64
    noise_every: int = 0
    collapse_every: int = 0
    layer_norms: bool = False
    norms: bool = True
    probe_batch: int = 0
    save_weights: bool = True
    extra: tuple[str, ...] = ()
    extra_every: int = 0
    snapshot_every: int = 0
    gauss_newton_k: int = 0

    def __post_init__(self):
        caps = current_caps()
        for name in ("log_every",):
            _set(self, name, _int(f"probes.{name}", getattr(self, name), 1, caps.max_steps))
        for name in ("sharpness_every", "topk_every", "precond_sharpness_every", "density_every",
                     "esd_every", "ntk_every", "noise_every", "collapse_every", "snapshot_every"):
            _set(self, name, _int(f"probes.{name}", getattr(self, name), 0, caps.max_steps))
        _set(self, "sharpness_tol", _float("probes.sharpness_tol", self.sharpness_tol, 0.0, 0.5, lo_open=True))
        _set(self, "topk", _int("probes.topk", self.topk, 1, 100))
        _set(self, "gauss_newton_k", _int("probes.gauss_newton_k", self.gauss_newton_k, 0, 100))
        _set(self, "ntk_points", _int("probes.ntk_points", self.ntk_points, 2, 1024))
        _set(self, "probe_batch", _int("probes.probe_batch", self.probe_batch, 0, caps.max_samples))
        _set(self, "extra_every", _int("probes.extra_every", self.extra_every, 0, caps.max_steps))
        extra = tuple(self.extra)
        for path in extra:
            if not (isinstance(path, str) and path.startswith("learnmech_core.") and ":" in path):
                raise ValueError(f"probes.extra entries must be 'learnmech_core.module:ProbeClass' (got {path!r})")
        _set(self, "extra", extra)
        for name in ("layer_norms", "norms", "save_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"probes.{name} must be true or false (got {getattr(self, name)!r})")


# Checks across the parts of a spec (model vs data, the built model's size) need the dataset and model
# registries, which import this module; compat.py registers them here when `learnmech_core` is imported,
# so every RunSpec is checked at construction while this module imports neither.
CROSS_CHECKS: list[typing.Callable[[RunSpec], None]] = []


@dataclass(frozen=True)
class RunSpec:
    """One training run: model, data, optimiser, probes, seed and device. `key()` identifies its result."""

    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    optim: OptimSpec = field(default_factory=OptimSpec)
    probes: ProbeSpec = field(default_factory=ProbeSpec)
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self):
        for name, kind in (("model", ModelSpec), ("data", DataSpec), ("optim", OptimSpec), ("probes", ProbeSpec)):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"{name} must be a {kind.__name__} (got {type(getattr(self, name)).__name__})")
        _set(self, "seed", _int("seed", self.seed, 0, 2**31 - 1))
        allowed("device", self.device, DEVICES)
        allowed("dtype", self.dtype, ("float32", "float64"))
        for check in CROSS_CHECKS:
            check(self)

    # --- identity -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain nested dict (tuples as lists), the canonical content of the spec."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self, indent: int | None = None) -> str:
        """Canonical JSON (sorted keys) of the spec."""
        if indent is None:
            return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    def key(self) -> str:
        """Stable 16-hex-digit hash of the canonical JSON (and SPEC_VERSION).

        Fields added after SPEC_VERSION 1 enter the hash only when they differ from their default, so
        adding a field leaves the keys of every stored run unchanged.
        """
        data = self.to_dict()
        for (part, name), default in ADDED_FIELDS.items():
            if data[part][name] == default:
                del data[part][name]
        payload = f"v{SPEC_VERSION}:" + json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict) -> RunSpec:
        """Build (and validate) a spec from a nested dict; unknown fields are an error."""
        return _from_dict(cls, data, "")

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """Inverse of to_json."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"spec JSON is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ValueError("spec JSON must be an object")
        return cls.from_dict(data)

    # --- shareable links ----------------------------------------------------------------------
    def to_query(self) -> dict[str, str]:
        """Compact dict of strings for URL query parameters: only fields that differ from the defaults."""
        out = {}
        default = RunSpec().to_dict() if _defaults_valid() else {}
        mine = self.to_dict()
        for path, value in _flatten(mine):
            if _lookup(default, path) != value or not default:
                out[path] = _encode(value)
        return out

    @classmethod
    def from_query(cls, params: typing.Mapping[str, str]) -> RunSpec:
        """Inverse of to_query; keys are dotted field paths (`model.width`), values strings."""
        data = RunSpec().to_dict()
        hints = _field_types()
        for path, raw in params.items():
            if path not in hints:
                continue  # other view state shares the query string
            value = raw[-1] if isinstance(raw, list) else raw
            _assign(data, path, _decode(path, value, hints[path]))
        return cls.from_dict(data)

    def flat(self) -> dict[str, object]:
        """Every field by dotted path ("model.arch", "optim.lr", "seed"), lists as tuples: one table row."""
        return {path: tuple(v) if isinstance(v, list) else v for path, v in _flatten(self.to_dict())}

    def replace(self, **changes) -> RunSpec:
        """A copy with dotted-path fields changed: spec.replace(**{"optim.lr": 0.1})."""
        data = self.to_dict()
        hints = _field_types()
        for path, value in changes.items():
            if path not in hints:
                raise ValueError(f"unknown spec field {path!r}; fields are: {', '.join(sorted(hints))}")
            _assign(data, path, value)
        return RunSpec.from_dict(data)


# --- helpers for dict / query conversions -----------------------------------------------------------

_NESTED = {"model": ModelSpec, "data": DataSpec, "optim": OptimSpec, "probes": ProbeSpec}


@functools.cache
def _type_hints(cls) -> dict:
    """typing.get_type_hints of a spec class (slow to compute, fixed per class)."""
    return typing.get_type_hints(cls)


def _from_dict(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise ValueError(f"{prefix.rstrip('.') or 'spec'} must be an object (got {type(data).__name__})")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown field {prefix}{unknown[0]}; allowed: {', '.join(sorted(names))}")
    kwargs = {}
    hints = _type_hints(cls)
    for name, value in data.items():
        if cls is RunSpec and name in _NESTED:
            value = _from_dict(_NESTED[name], value, f"{name}.")
        elif "tuple" in str(hints[name]) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _flatten(data: dict, prefix: str = ""):
    for name, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def _lookup(data: dict, path: str):
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _assign(data: dict, path: str, value) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        data = data[part]
    data[parts[-1]] = value


def _encode(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return ",".join(":".join(_encode(x) for x in v) for v in value)  # lr_changes: step:lr,step:lr
    if isinstance(value, list):
        return ",".join(_encode(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _decode(path: str, raw: str, hint) -> object:
    text = str(raw).strip()
    hint_s = str(hint)
    if text.lower() == "none" and "None" in hint_s:
        return None
    try:
        if hint_s.startswith("tuple[tuple"):  # lr_changes: step:lr,step:lr
            return [[float(x) for x in pair.split(":")] for pair in text.split(",") if pair.strip()]
        if "tuple" in hint_s:
            item = float if "float" in hint_s else str if "str" in hint_s else int
            return [item(t) for t in text.split(",") if t.strip()]
        if hint is bool or hint_s == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if hint is int or hint_s == "int":
            return int(float(text)) if float(text).is_integer() else float(text)
        if hint is float or hint_s == "float":
            return float(text)
    except ValueError:
        raise ValueError(f"{path} could not be read from the link (got {raw!r})") from None
    return text


@functools.cache
def _field_types() -> dict[str, object]:
    """Dotted field path -> type hint (computed once; callers only read it)."""
    hints = {}
    for name, cls in _NESTED.items():
        for fname, hint in _type_hints(cls).items():
            hints[f"{name}.{fname}"] = hint
    for fname in ("seed", "device", "dtype"):
        hints[fname] = _type_hints(RunSpec)[fname]
    return hints


def _defaults_valid() -> bool:
    try:
        RunSpec()
        return True
    except ValueError:
        return False


def _changed_fields_repr(spec) -> str:
    """`ModelSpec(width=8, depth=1)`: only the fields that differ from their defaults (a full repr of a
    RunSpec runs to ~1,500 characters); still valid Python that rebuilds the spec."""
    changed = []
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if value != default:
            changed.append(f"{f.name}={value!r}")
    return f"{type(spec).__name__}({', '.join(changed)})"


for _spec_class in (ModelSpec, DataSpec, OptimSpec, ProbeSpec, RunSpec):
    _spec_class.__repr__ = _changed_fields_repr
