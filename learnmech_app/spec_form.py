"""The Explore form: widgets (bound to the URL) -> a set of RunSpecs, with errors in the user's words.

Widget keys are the spec's own dotted field names (`model.width`, `optim.lr`, ...), so the page's
address is the same query string `RunSpec.to_query()` writes, with three differences: `model.arch` and
`data.name` may repeat (several architectures or datasets run as a set), measurements are chosen as
`measure=sharpness&measure=esd&every=10`, and spec fields without a widget (from a link made of a
stored run) are kept as they came and applied to every run of the set.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import streamlit as st

from learnmech_core.config import OptimSpec, RunSpec, _encode, _field_types, _flatten, _lookup
from learnmech_core.data import describe
from learnmech_core.models import param_count
from learnmech_core.registry import ACTIVATIONS, ARCHITECTURES, LOSSES, OPTIMIZERS, PARAMETRISATIONS, SCHEDULES

from . import datasets as ds
from .urlstate import choice

MEASURES = {
    "sharpness": ("probes.sharpness_every", "Sharpness λ_max (top Hessian eigenvalue)"),
    "topk": ("probes.topk_every", "Top-k Hessian eigenvalues"),
    "density": ("probes.density_every", "Hessian spectral density"),
    "esd": ("probes.esd_every", "Weight spectra (ESD, power-law α, Marchenko–Pastur)"),
    "ntk": ("probes.ntk_every", "Empirical NTK"),
    "noise": ("probes.noise_every", "Gradient noise scale"),
    "collapse": ("probes.collapse_every", "Neural collapse NC1–NC4"),
    "precond": ("probes.precond_sharpness_every", "Preconditioned sharpness (Adam)"),
    "snapshots": ("probes.snapshot_every", "Weight snapshots (trajectory landscape on Spectra)"),
}
LAYER_NORMS = "layer_norms"
# history columns drawn automatically when a measurement is recorded (spectra go to the Spectra page)
MEASURE_METRICS = {"esd": ["alpha_mean"], "ntk": ["ntk_distance"], "noise": ["noise_scale"], "collapse": ["nc1"],
                   "precond": ["precond_sharpness"], LAYER_NORMS: ["balance_0"]}
MEASURE_OPTIONS = list(MEASURES) + [LAYER_NORMS]
MEASURE_LABELS = {k: v[1] for k, v in MEASURES.items()} | {LAYER_NORMS: "Per-layer weight norms (conservation laws)"}

# widget key -> label (errors name the widget the user sees)
LABELS = {
    "model.arch": "Architecture", "model.width": "Width", "model.depth": "Depth", "model.activation": "Activation",
    "model.param": "Parametrisation", "model.head_width": "Dense layer before read-out (cnn)",
    "data.name": "Dataset", "data.n_train": "Training examples",
    "data.n_test": "Test examples", "optim.name": "Optimiser", "optim.loss": "Loss", "optim.lr": "Learning rate",
    "optim.steps": "Steps", "optim.batch_size": "Batch size", "optim.weight_decay": "Weight decay",
    "optim.schedule": "Schedule", "optim.momentum": "Momentum", "seed": "Seed", "device": "Device",
    "every": "Measure every", "probes.log_every": "Log every",
}
WIDGET_KEYS = set(LABELS) | {"measure"}
SPEC_FIELDS = set(_field_types())

# Explore's first Run shows the headline phenomenon: full-batch GD on digits (the default tanh MLP 64-128-128-10,
# MSE) at eta = 0.2. The gradient flow settles at sharpness ~8.6 after the first steps, so 2/eta = 10 sits just
# above it: sharpness starts at 0.86 x 2/eta, reaches 2/eta near step 180 and hovers there (median over the
# second half 1.04 x 2/eta; 500 steps with sharpness every 10 take ~5 s on one busy core). Measured in
# notes/measured.md ("Edge of stability shows quickly on digits"); checked by tests/test_browser_classroom.py.
DEFAULT = RunSpec(optim=OptimSpec(lr=0.2, steps=500))
DEFAULT_EVERY = 10
BATCH_SIZES = (0, 8, 16, 32, 64, 128, 256, 512)  # 0: full batch, shown by name


def batch_label(size: int) -> str:
    return "full batch" if size == 0 else f"{size:,} examples"


def friendly(message: str) -> str:
    """Prefix a spec error with the label of the widget it is about: 'Width: model.width must be ...'."""
    first = message.split(" ", 1)[0]
    for key, label in LABELS.items():
        if first == key or first.startswith(key + " ") or first == key.rstrip("s"):
            return f"{label}: {message}"
    return message


@dataclass
class FormResult:
    specs: list[RunSpec] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # nothing can run
    skipped: list[str] = field(default_factory=list)  # combinations that cannot run
    overrides: dict = field(default_factory=dict)  # spec fields set by the link without a widget
    notes: list[str] = field(default_factory=list)  # link values that could not be used
    measure: list[str] = field(default_factory=list)


def link_overrides() -> dict[str, str]:
    """Spec fields in the URL that no widget shows (kept from a link of a stored run)."""
    out = {}
    for k in st.query_params:
        if k in SPEC_FIELDS and k not in WIDGET_KEYS and not _is_measure_field(k):
            out[k] = st.query_params.get(k)
    return out


def _is_measure_field(k: str) -> bool:
    return k == "probes.layer_norms" or any(k == f for f, _ in MEASURES.values())


def explore_params(spec: RunSpec, archs=None, datasets=None) -> dict:
    """Query parameters that open Explore on a spec (measurements as measure/every)."""
    q = spec.to_query()
    for path, value in _flatten(DEFAULT.to_dict()):  # where Explore's defaults are not RunSpec's, say so
        if value != _lookup(RunSpec().to_dict(), path):
            mine = _lookup(spec.to_dict(), path)
            if mine == value:
                q.pop(path, None)
            else:
                q[path] = _encode(mine)
    measure, every = [], []
    for name, (fld, _) in MEASURES.items():
        value = int(getattr(spec.probes, fld.split(".")[1]))
        q.pop(fld, None)
        if value:
            measure.append(name)
            every.append(value)
    if spec.probes.layer_norms:
        measure.append(LAYER_NORMS)
    q.pop("probes.layer_norms", None)
    params: dict = dict(q)
    if measure != ["sharpness"] or (every and min(every) != DEFAULT_EVERY):
        params["measure"] = measure or [""]
    if every and min(every) != DEFAULT_EVERY:
        params["every"] = str(min(every))
    if archs:
        params["model.arch"] = list(archs)
    if datasets:
        params["data.name"] = list(datasets)
    return params


def available_devices() -> list[str]:
    """cpu first (the default), auto, then the accelerators this machine has."""
    import torch

    out = ["cpu", "auto"]
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        out.append("mps")
    return out


def form(container=None) -> FormResult:
    """Draw the Explore settings and build the set of specs (one per architecture x dataset)."""
    d = DEFAULT
    c = container or st
    result = FormResult()
    dataset_options = ds.dataset_options()
    missing = [n for n in st.query_params.get_all("data.name") if n and n not in dataset_options]
    if missing:
        result.notes.append(f"This link names datasets that are not available here: {', '.join(missing)}. "
                            "Uploaded data stays in the session that uploaded it (unless saved); upload it on "
                            "'Your own data', or set LEARNMECH_DATA_DIR for mnist, fashion_mnist and cifar10.")
    bind = {"bind": "query-params"}
    cols = c.columns(4, gap="medium")
    with cols[0]:
        st.markdown("**Model**")
        archs = st.multiselect(LABELS["model.arch"], ARCHITECTURES, default=[d.model.arch], key="model.arch",
                               help="Several architectures run as a set; each has its own colour everywhere.", **bind)
        width = st.number_input(LABELS["model.width"], value=d.model.width, step=8, key="model.width",
                                help="Hidden units (channels for cnn, d_model for transformer).", **bind)
        depth = st.number_input(LABELS["model.depth"], value=d.model.depth, step=1, key="model.depth",
                                help="Hidden layers (conv layers, residual or transformer blocks).", **bind)
        activation = st.selectbox(LABELS["model.activation"], ACTIVATIONS, index=ACTIVATIONS.index(d.model.activation),
                                  key="model.activation", **bind)
        param = choice(st.selectbox, LABELS["model.param"], PARAMETRISATIONS, key="model.param",
                       format_func=lambda p: {"sp": "standard (SP)", "ntk": "NTK", "mup": "μP"}[p],
                       help="How initialisation and learning rates scale with width.")
    with cols[1]:
        st.markdown("**Data**")
        names = choice(st.multiselect, LABELS["data.name"], list(dataset_options), default=[d.data.name],
                       key="data.name", format_func=lambda n: dataset_options.get(n, n),
                       help="Several datasets run as a set; each has its own dash everywhere. "
                            "Your own data appears here once uploaded on 'Your own data'.")
        n_train = st.number_input(LABELS["data.n_train"], value=d.data.n_train, step=64, key="data.n_train", **bind)
        n_test = st.number_input(LABELS["data.n_test"], value=d.data.n_test, step=64, key="data.n_test", **bind)
        seed = st.number_input(LABELS["seed"], value=0, step=1, key="seed",
                               help="Initialisation and minibatch order; the same seed gives the same numbers.", **bind)
    with cols[2]:
        st.markdown("**Optimiser**")
        opt = choice(st.selectbox, LABELS["optim.name"], OPTIMIZERS, key="optim.name",
                     format_func=lambda o: {"gd": "GD (full batch)", "sgd": "SGD", "momentum": "SGD + momentum",
                                            "adam": "Adam", "adamw": "AdamW"}[o])
        loss = choice(st.selectbox, LABELS["optim.loss"], LOSSES, key="optim.loss",
                      format_func=lambda v: {"mse": "squared error (MSE)", "ce": "cross-entropy"}[v])
        lr = st.number_input(LABELS["optim.lr"], value=d.optim.lr, step=0.01, format="%g", key="optim.lr", **bind)
        steps = st.number_input(LABELS["optim.steps"], value=d.optim.steps, step=50, key="optim.steps", **bind)
        linked = st.query_params.get("optim.batch_size", "")
        sizes = sorted(set(BATCH_SIZES) | ({int(linked)} if linked.isdigit() else set()))
        batch = choice(st.selectbox, LABELS["optim.batch_size"], sizes, key="optim.batch_size", default=0,
                       format_func=batch_label,
                       help="Examples per step. Full batch (every training example) is what GD uses; SGD and "
                            "Adam take minibatches.")
    with cols[3]:
        st.markdown("**Measure**")
        measure = choice(st.multiselect, "Record", MEASURE_OPTIONS, default=["sharpness"], key="measure",
                         format_func=MEASURE_LABELS.get,
                         help="Loss, accuracy and norms are always recorded. Curvature costs time.")
        every = st.number_input(LABELS["every"], value=DEFAULT_EVERY, step=5, key="every",
                                help="Steps between measurements (the first and last step are always measured).",
                                **bind)
        with st.popover("More settings", icon=":material/settings:"):
            wd = st.number_input(LABELS["optim.weight_decay"], value=0.0, step=1e-4, format="%g",
                                 key="optim.weight_decay", **bind)
            momentum = st.number_input(LABELS["optim.momentum"], value=d.optim.momentum, step=0.05, format="%g",
                                       key="optim.momentum", help="For SGD + momentum.", **bind)
            head = st.number_input(LABELS["model.head_width"], value=d.model.head_width, step=64,
                                   key="model.head_width", help="Units of a fully connected hidden layer between the "
                                   "flattened convolutions and the read-out (LeNet/VGG style); 0 = none. Other "
                                   "architectures ignore it.", **bind)
            schedule = st.selectbox(LABELS["optim.schedule"], SCHEDULES, key="optim.schedule", **bind)
            device = st.selectbox(LABELS["device"], available_devices(), key="device",
                                  help="auto: a GPU when there is one, else the CPU.", **bind)
    result.measure = list(measure)
    overrides = link_overrides()
    result.overrides = overrides
    if not archs:
        result.errors.append("Architecture: choose at least one architecture")
    if not names:
        result.errors.append("Dataset: choose at least one dataset")
    if result.errors:
        return result
    try:
        base = RunSpec.from_query(overrides).to_dict() if overrides else RunSpec().to_dict()
    except ValueError as err:
        result.errors.append(f"Link: {err}")
        return result
    base["model"].update(width=width, depth=depth, activation=activation, param=param)
    base["data"].update(n_train=n_train, n_test=n_test)
    base["optim"].update(name=opt, loss=loss, lr=lr, steps=steps, batch_size=batch, weight_decay=wd,
                         momentum=momentum, schedule=schedule)
    base.update(seed=seed, device=device)
    for name, (fld, _) in MEASURES.items():
        base["probes"][fld.split(".")[1]] = every if name in measure else 0
    base["probes"]["layer_norms"] = LAYER_NORMS in measure
    problems: dict[tuple, str] = {}
    for arch, data_name in itertools.product(archs, names):
        model = {**base["model"], "arch": arch, "head_width": head if arch == "cnn" else 0}
        spec_dict = {**base, "model": model, "data": {**base["data"], "name": data_name}}
        try:
            result.specs.append(RunSpec.from_dict(spec_dict))
        except ValueError as err:
            problems[(arch, data_name)] = friendly(str(err))
    if problems and not result.specs:
        messages = list(dict.fromkeys(problems.values()))
        result.errors.extend(messages if len(messages) <= 3 else messages[:3])
    elif problems:
        result.skipped = [f"{a} × {n}: {m}" for (a, n), m in problems.items()]
    return result


def measured_metrics(measure: list[str]) -> list[str]:
    """Charts that recording these measurements adds on Explore."""
    return [m for name in measure for m in MEASURE_METRICS.get(name, [])]


def describe_set(specs: list[RunSpec]) -> str:
    """'2 runs · 17,802 parameters (mlp on digits) · ...' for a caption."""
    if not specs:
        return ""
    s = specs[0]
    try:
        n = param_count(s.model, describe(s.data))
        params = f"{n:,} parameters ({s.model.arch} on {s.data.name})"
    except Exception:
        params = ""
    runs = f"{len(specs)} run{'s' if len(specs) != 1 else ''}"
    return f"{runs} · {params} · {s.optim.steps:,} steps each"
