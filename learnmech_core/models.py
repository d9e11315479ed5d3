"""Architecture registry and parametrisations (SP, NTK, muP).

Every weight lives in a `PLinear`, `PConv2d` or `PEmbedding` that carries its *role* (input, hidden,
output) and fan-in. The parametrisation turns (role, fan_in, width multiplier) into three numbers:

| param | init std of stored weight | forward multiplier | lr multiplier (SGD-like / Adam-like) |
|---|---|---|---|
| sp  | s / sqrt(fan_in)                      | 1                 | 1 / 1 |
| ntk | 1                                      | s / sqrt(fan_in)  | 1 / 1 |
| mup | s / sqrt(fan_in), output also / sqrt(m) | 1                 | input m / 1, hidden 1 / 1/m, output 1/m / 1/m |

with s = `init_scale`, m = width / base_width (Yang et al. 2022, Tensor Programs V, Table 3; at
m = 1 muP equals SP). Biases start at zero and share their layer's lr multiplier. The read-out is
further multiplied by `output_mult`. `build(spec, info, generator)` returns the module; it is first
built on the meta device for `param_count` (no memory, no init), then initialised from the run's
generator. Residual branches are scaled by 1/sqrt(depth). The transformer is pre-LayerNorm, reads out
from the last position, and under muP scales attention logits by 1/d_head (times sqrt of the base d_head).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelSpec
from .data import DataInfo

SGD_LIKE = ("gd", "sgd", "momentum")


def layer_scales(param: str, role: str, fan_in: int, width_mult: float, init_scale: float, optimizer: str):
    """(init std, forward multiplier, lr multiplier) of one weight under a parametrisation."""
    if param == "sp":
        return init_scale / math.sqrt(fan_in), 1.0, 1.0
    if param == "ntk":
        return 1.0, init_scale / math.sqrt(fan_in), 1.0
    m = width_mult
    std = init_scale / math.sqrt(fan_in)
    if role == "output":
        std /= math.sqrt(m)
    if optimizer in SGD_LIKE:
        lr = {"input": m, "hidden": 1.0, "output": 1.0 / m}[role]
    else:
        lr = {"input": 1.0, "hidden": 1.0 / m, "output": 1.0 / m}[role]
    return std, 1.0, lr


class _PLayer(nn.Module):
    """Base of parametrised layers: role, fan-in, forward multiplier and lr multiplier."""

    role: str
    fan_in: int

    def configure(self, spec: ModelSpec, optimizer: str, generator: torch.Generator | None) -> None:
        """Set multipliers for the parametrisation and (unless on meta) draw the initial weights."""
        m = spec.width / spec.base_width
        std, mult, lr = layer_scales(spec.param, self.role, self.fan_in, m, spec.init_scale, optimizer)
        if self.role == "output":
            mult *= spec.output_mult
        self.mult = mult
        self.lr_mult = lr
        if self.weight.device.type != "meta":
            with torch.no_grad():
                self.weight.copy_(
                    torch.randn(self.weight.shape, generator=generator, dtype=self.weight.dtype) * std
                )
                if getattr(self, "bias", None) is not None:
                    self.bias.zero_()


class PLinear(_PLayer):
    """Linear layer y = mult * x W^T + b."""

    def __init__(self, fan_in: int, fan_out: int, bias: bool, role: str):
        super().__init__()
        self.role, self.fan_in, self.mult, self.lr_mult = role, fan_in, 1.0, 1.0
        self.weight = nn.Parameter(torch.empty(fan_out, fan_in))
        self.bias = nn.Parameter(torch.empty(fan_out)) if bias else None

    def forward(self, x):
        out = F.linear(x, self.weight) if self.mult == 1.0 else F.linear(x, self.weight) * self.mult
        return out if self.bias is None else out + self.bias


class PConv2d(_PLayer):
    """3x3 convolution (padding 1) with the same parametrisation as PLinear; fan_in = C_in * 9."""

    def __init__(self, c_in: int, c_out: int, bias: bool, role: str):
        super().__init__()
        self.role, self.fan_in, self.mult, self.lr_mult = role, c_in * 9, 1.0, 1.0
        self.weight = nn.Parameter(torch.empty(c_out, c_in, 3, 3))
        self.bias = nn.Parameter(torch.empty(c_out)) if bias else None

    def forward(self, x):
        out = F.conv2d(x, self.weight, padding=1)
        if self.mult != 1.0:
            out = out * self.mult
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


class PEmbedding(_PLayer):
    """Token embedding (an input layer with fan_in 1 in the muP sense: one-hot inputs)."""

    def __init__(self, vocab: int, dim: int):
        super().__init__()
        self.role, self.fan_in, self.mult, self.lr_mult = "input", 1, 1.0, 1.0
        self.weight = nn.Parameter(torch.empty(vocab, dim))
        self.bias = None

    def forward(self, tokens):
        out = F.embedding(tokens, self.weight)
        return out if self.mult == 1.0 else out * self.mult


def activation(name: str):
    """Elementwise nonlinearity by name."""
    return {
        "relu": torch.relu,
        "tanh": torch.tanh,
        "gelu": F.gelu,
        "linear": lambda x: x,
        "quadratic": torch.square,
    }[name]


class InputAdapter(nn.Module):
    """Turns any dataset's inputs into vectors: flatten images, one-hot-and-concatenate tokens."""

    def __init__(self, info: DataInfo):
        super().__init__()
        self.kind, self.vocab = info.kind, info.vocab

    def forward(self, x):
        if self.kind == "tokens":
            return F.one_hot(x, self.vocab).flatten(1).to(torch.get_default_dtype())
        return x.flatten(1)


def input_dim(info: DataInfo) -> int:
    """Size of the vector the InputAdapter produces."""
    if info.kind == "tokens":
        return info.vocab * info.input_shape[0]
    return math.prod(info.input_shape)


class MLP(nn.Module):
    """depth hidden layers of `width` units, then a read-out; `deep_linear` is the bias-free linear case."""

    def __init__(self, spec: ModelSpec, info: DataInfo, n_weights: int | None = None, bias: bool | None = None):
        super().__init__()
        self.adapter = InputAdapter(info)
        bias = spec.bias if bias is None else bias
        n_weights = spec.depth + 1 if n_weights is None else n_weights
        dims = [input_dim(info)] + [spec.width] * (n_weights - 1) + [info.n_outputs]
        roles = ["input"] + ["hidden"] * (n_weights - 2) + ["output"] if n_weights > 1 else ["output"]
        self.layers = nn.ModuleList(PLinear(a, b, bias, r) for a, b, r in zip(dims[:-1], dims[1:], roles, strict=True))
        self.act = activation(spec.activation)

    def forward(self, x):
        h = self.adapter(x)
        for layer in self.layers[:-1]:
            h = self.act(layer(h))
        return self.layers[-1](h)


class DeepLinear(MLP):
    """Product of `depth` weight matrices without biases or nonlinearity (Saxe et al. 2014)."""

    def __init__(self, spec: ModelSpec, info: DataInfo):
        super().__init__(spec, info, n_weights=spec.depth, bias=False)
        self.act = activation("linear")


def _pool_sides(side: int, depth: int) -> list[bool]:
    """Which conv layers are followed by 2x2 average pooling: while the side is at least 8."""
    pools = []
    for _ in range(depth):
        pools.append(side >= 8)
        side = side // 2 if side >= 8 else side
    return pools


class CNN(nn.Module):
    """depth x [3x3 conv -> act -> 2x2 avg-pool while side >= 8], flatten, [dense -> act,] linear read-out."""

    def __init__(self, spec: ModelSpec, info: DataInfo):
        super().__init__()
        c, side = info.input_shape[0], info.input_shape[1]
        self.pools = _pool_sides(side, spec.depth)
        convs = []
        for i in range(spec.depth):
            convs.append(PConv2d(c if i == 0 else spec.width, spec.width, spec.bias, "input" if i == 0 else "hidden"))
        self.convs = nn.ModuleList(convs)
        final = side
        for p in self.pools:
            final = final // 2 if p else final
        features = spec.width * final * final
        self.head = PLinear(features, spec.head_width, spec.bias, "hidden") if spec.head_width else None
        self.readout = PLinear(spec.head_width or features, info.n_outputs, spec.bias, "output")
        self.act = activation(spec.activation)

    def forward(self, x):
        for conv, pool in zip(self.convs, self.pools, strict=True):
            x = self.act(conv(x))
            if pool:
                x = F.avg_pool2d(x, 2)
        x = x.flatten(1)
        if self.head is not None:
            x = self.act(self.head(x))
        return self.readout(x)


class ResNet(nn.Module):
    """Stem, depth residual blocks x + (1/sqrt(depth)) f(x) with f = layer-act-layer, then read-out.

    Convolutional (3x3, global average pool) on images, fully connected on vectors and tokens.
    """

    def __init__(self, spec: ModelSpec, info: DataInfo):
        super().__init__()
        self.conv = info.kind == "image"
        w = spec.width
        if self.conv:
            self.stem = PConv2d(info.input_shape[0], w, spec.bias, "input")
            make = lambda: PConv2d(w, w, spec.bias, "hidden")  # noqa: E731
        else:
            self.adapter = InputAdapter(info)
            self.stem = PLinear(input_dim(info), w, spec.bias, "input")
            make = lambda: PLinear(w, w, spec.bias, "hidden")  # noqa: E731
        self.blocks = nn.ModuleList(nn.ModuleList([make(), make()]) for _ in range(spec.depth))
        self.res_scale = 1.0 / math.sqrt(spec.depth)
        self.readout = PLinear(w, info.n_outputs, spec.bias, "output")
        self.act = activation(spec.activation)

    def forward(self, x):
        h = self.act(self.stem(x if self.conv else self.adapter(x)))
        for first, second in self.blocks:
            h = h + self.res_scale * second(self.act(first(h)))
        h = h.mean(dim=(2, 3)) if self.conv else h
        return self.readout(h)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: attention then a 4x MLP, both residual."""

    def __init__(self, spec: ModelSpec, seq_len: int):
        super().__init__()
        w, self.heads = spec.width, spec.heads
        d_head = w // spec.heads
        base_d_head = max(1, spec.base_width // spec.heads)
        self.scale = math.sqrt(base_d_head) / d_head if spec.param == "mup" else 1.0 / math.sqrt(d_head)
        self.ln1, self.ln2 = nn.LayerNorm(w), nn.LayerNorm(w)
        self.qkv = PLinear(w, 3 * w, spec.bias, "hidden")
        self.proj = PLinear(w, w, spec.bias, "hidden")
        self.fc1 = PLinear(w, 4 * w, spec.bias, "hidden")
        self.fc2 = PLinear(4 * w, w, spec.bias, "hidden")
        self.act = activation(spec.activation)

    def forward(self, x):
        n, t, w = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(n, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax((q @ k.transpose(-1, -2)) * self.scale, dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(n, t, w))
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class Transformer(nn.Module):
    """Token + position embeddings, depth pre-LN blocks, LayerNorm, read-out from the last position."""

    def __init__(self, spec: ModelSpec, info: DataInfo):
        super().__init__()
        seq_len = info.input_shape[0]
        self.embed = PEmbedding(info.vocab, spec.width)
        self.pos = PEmbedding(seq_len, spec.width)
        self.blocks = nn.ModuleList(Block(spec, seq_len) for _ in range(spec.depth))
        self.ln = nn.LayerNorm(spec.width)
        self.readout = PLinear(spec.width, info.n_outputs, spec.bias, "output")

    def forward(self, tokens):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        h = self.embed(tokens) + self.pos(positions)[None]
        for block in self.blocks:
            h = block(h)
        return self.readout(self.ln(h)[:, -1])


ARCH_CLASSES = {"mlp": MLP, "deep_linear": DeepLinear, "cnn": CNN, "resnet": ResNet, "transformer": Transformer}
# which input kinds each architecture accepts
ARCH_INPUTS = {
    "mlp": ("vector", "image", "tokens"),
    "deep_linear": ("vector", "image", "tokens"),
    "cnn": ("image",),
    "resnet": ("vector", "image", "tokens"),
    "transformer": ("tokens",),
}


def build(spec: ModelSpec, info: DataInfo, optimizer: str = "gd", generator: torch.Generator | None = None,
          device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> nn.Module:
    """Build and initialise the model a spec names for a dataset (weights drawn from `generator`)."""
    if info.kind not in ARCH_INPUTS[spec.arch]:
        raise ValueError(
            f"model.arch {spec.arch!r} cannot take {info.kind} inputs of {info.name}; "
            f"it needs {' or '.join(ARCH_INPUTS[spec.arch])} data"
        )
    model = ARCH_CLASSES[spec.arch](spec, info).to(dtype)
    for module in model.modules():
        if isinstance(module, _PLayer):
            module.configure(spec, optimizer, generator)
    return model.to(device)


@functools.lru_cache(maxsize=4096)
def param_count(spec: ModelSpec, info: DataInfo) -> int:
    """Number of trainable parameters, without allocating them (built on the meta device; cached, specs are frozen)."""
    with torch.device("meta"):
        model = build(spec, info, device="meta")
    return sum(p.numel() for p in model.parameters())


def param_groups(model: nn.Module) -> list[dict]:
    """Optimiser parameter groups, one per distinct lr multiplier (LayerNorm and others get 1)."""
    groups: dict[float, list] = {}
    seen = set()
    for module in model.modules():
        if isinstance(module, _PLayer):
            for p in module.parameters(recurse=False):
                groups.setdefault(module.lr_mult, []).append(p)
                seen.add(id(p))
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:
        groups.setdefault(1.0, []).extend(rest)
    return [{"params": ps, "lr_mult": mult} for mult, ps in groups.items()]


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) for every parametrised weight layer, in forward order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _PLayer)]
