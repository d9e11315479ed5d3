"""Checks that need more than one part of a spec: model vs data, loss vs task, and the size caps.

They need the dataset and model registries, which sit above `config`; importing this module (which
`learnmech_core/__init__.py` does) appends `check_compatible` to `config.CROSS_CHECKS`, which every
`RunSpec` runs at construction.
"""

from __future__ import annotations

from .config import CROSS_CHECKS, RunSpec, current_caps
from .data import describe
from .models import ARCH_INPUTS, param_count


def check_compatible(spec: RunSpec) -> None:
    """Raise ValueError naming the field when the parts of a spec do not fit together or exceed a cap."""
    caps = current_caps()
    info = describe(spec.data)
    if info.kind not in ARCH_INPUTS[spec.model.arch]:
        names = ("token datasets (modular_arithmetic)" if spec.model.arch == "transformer"
                 else "image datasets (digits, mnist, fashion_mnist, cifar10)")
        raise ValueError(f"model.arch {spec.model.arch!r} needs {names} (got data.name {spec.data.name!r})")
    if spec.model.head_width and spec.model.arch != "cnn":
        raise ValueError(f"model.head_width applies only to model.arch 'cnn' (got {spec.model.arch!r}); set it to 0")
    if spec.optim.loss == "ce" and info.task != "classification":
        raise ValueError(f"optim.loss 'ce' needs a classification dataset; {spec.data.name} is regression (use mse)")
    n_wanted = spec.data.n_train + spec.data.n_test
    if info.n_available is not None and n_wanted > info.n_available and not spec.data.classes:
        raise ValueError(
            f"data.n_train + data.n_test must be at most {info.n_available} for {spec.data.name} "
            f"(got {n_wanted})"
        )
    if spec.optim.batch_size > spec.data.n_train:
        raise ValueError(
            f"optim.batch_size must be at most data.n_train={spec.data.n_train} (got {spec.optim.batch_size})")
    n_params = param_count(spec.model, info)
    if n_params > caps.max_params:
        raise ValueError(
            f"model has {n_params:,} parameters; the {caps.profile} profile allows at most {caps.max_params:,} "
            f"(reduce model.width or model.depth)"
        )


if check_compatible not in CROSS_CHECKS:
    CROSS_CHECKS.append(check_compatible)
