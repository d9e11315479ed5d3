"""Names shared by the specs, the CLI, URLs and stored runs (rename none, add freely)."""

from __future__ import annotations

ARCHITECTURES = ("mlp", "deep_linear", "cnn", "resnet", "transformer")
ACTIVATIONS = ("relu", "tanh", "gelu", "linear", "quadratic")
PARAMETRISATIONS = ("sp", "ntk", "mup")

SYNTHETIC_DATASETS = (
    "gaussian_mixture",
    "teacher_student",
    "moons",
    "spirals",
    "circles",
    "linear_lowrank",
    "modular_arithmetic",
)
SHIPPED_DATASETS = ("digits",)
DISK_DATASETS = ("mnist", "fashion_mnist", "cifar10")
DATASETS = SHIPPED_DATASETS + SYNTHETIC_DATASETS + DISK_DATASETS
# "upload:<sha>" names a user's own dataset registered at run time (see data.register_array_dataset).
UPLOAD_PREFIX = "upload:"

OPTIMIZERS = ("gd", "sgd", "momentum", "adam", "adamw")
LOSSES = ("mse", "ce")
SCHEDULES = ("constant", "warmup_cosine")
DEVICES = ("auto", "cpu", "cuda", "mps")
MODULAR_OPS = ("add", "sub", "mul", "div")


def allowed(name: str, value: object, options: tuple) -> None:
    """Raise ValueError naming the field, the value and the allowed names unless value is in options."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(str, options))} (got {value!r})")
