"""Which parameters a curvature tool looks at, and the checked loss it differentiates.

* ``loss_fn(outputs, targets)`` must return a 0-d tensor; ``inputs`` is a tensor (or a tuple/list of
  tensors passed as ``model(*inputs)``).
* The flattened parameter vector is the concatenation of the selected trainable parameters in
  ``model.named_parameters()`` order, whatever order ``params=`` names them in. ``params`` may be
  parameter tensors, parameter names (``"layers.0.weight"``) or module names (``"layers.0"`` = all its
  parameters).
* The model is used in whatever mode it is in (``train()``/``eval()``); its buffers (BatchNorm running
  statistics) are restored after the forward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ParamSelection = Sequence[torch.Tensor] | Sequence[str] | None


def as_tuple(inputs: object) -> tuple:
    """The positional arguments passed to the model."""
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


def check_batch(inputs: object, targets: object, device: torch.device) -> None:
    """Raise ValueError naming inputs/targets when the batch is empty or on another device than the model."""
    tensors = [t for t in as_tuple(inputs) if isinstance(t, torch.Tensor)]
    if not tensors:
        raise ValueError("inputs must be a tensor or a tuple/list of tensors (got no tensor)")
    for t in tensors:
        if t.numel() == 0:
            raise ValueError(f"inputs must be a non-empty batch (got shape {tuple(t.shape)})")
        if t.device != device:
            raise ValueError(f"inputs are on {t.device} but the model parameters are on {device}; "
                             "move them to one device")
    if isinstance(targets, torch.Tensor):
        if targets.numel() == 0:
            raise ValueError(f"targets must be a non-empty batch (got shape {tuple(targets.shape)})")
        if targets.device != device:
            raise ValueError(f"targets are on {targets.device} but the model parameters are on {device}; "
                             "move them to one device")


def select_params(model: nn.Module, params: ParamSelection) -> tuple[list[str], list[torch.Tensor]]:
    """Names and tensors of the selected trainable parameters, in model.named_parameters() order."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters (requires_grad=True)")
    if params is None:
        return [n for n, _ in named], [p for _, p in named]
    if isinstance(params, (str, torch.Tensor)) or not isinstance(params, Sequence) or len(params) == 0:
        raise ValueError("params must be None or a non-empty list of parameters, parameter names or module names")
    wanted: set[int] = set()
    by_name = dict(model.named_parameters())
    modules = dict(model.named_modules())
    for item in params:
        if isinstance(item, torch.Tensor):
            if not any(item is p for _, p in named):
                raise ValueError("params contains a tensor that is not a trainable parameter of model")
            wanted.add(id(item))
        elif isinstance(item, str):
            if item in by_name:
                if not by_name[item].requires_grad:
                    raise ValueError(f"params names {item!r}, which does not require grad")
                wanted.add(id(by_name[item]))
            elif item in modules:
                found = [id(p) for p in modules[item].parameters() if p.requires_grad]
                if not found:
                    raise ValueError(f"params names module {item!r}, which has no trainable parameters")
                wanted.update(found)
            else:
                sample = ", ".join(list(by_name)[:6])
                raise ValueError(f"params names {item!r}, which is neither a parameter nor a module of model "
                                 f"(e.g. {sample})")
        else:
            raise ValueError(f"params must contain tensors or names (got {type(item).__name__})")
    chosen = [(n, p) for n, p in named if id(p) in wanted]
    return [n for n, _ in chosen], [p for _, p in chosen]


def model_device(params: list[torch.Tensor]) -> torch.device:
    """The one device all selected parameters live on."""
    devices = {p.device for p in params}
    if len(devices) > 1:
        raise ValueError(f"model parameters must be on one device (got {sorted(map(str, devices))})")
    return params[0].device


@contextlib.contextmanager
def preserved_buffers(model: nn.Module) -> Iterator[None]:
    """Run the block on copies of the model's buffers (e.g. BatchNorm running stats); the originals stay put."""
    saved = []
    for module in model.modules():
        for name, buf in list(module._buffers.items()):
            if buf is not None:
                saved.append((module, name, buf))
                module._buffers[name] = buf.detach().clone()
    try:
        yield
    finally:
        for module, name, buf in saved:
            module._buffers[name] = buf


def checked_loss(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object) -> torch.Tensor:
    """Forward pass and loss, checked to be a finite scalar; buffers are left unchanged."""
    with preserved_buffers(model), torch.enable_grad():
        loss = loss_fn(model(*as_tuple(inputs)), targets)
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar (0-d) tensor (got {shape}); reduce it with mean or sum")
    if not torch.isfinite(loss.detach()).item():
        raise FloatingPointError(f"loss_fn returned a non-finite loss ({loss.item()}); the Hessian is undefined")
    return loss
