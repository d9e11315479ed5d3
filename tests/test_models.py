"""Architectures: output shapes, parameter counts against formulas, SP / NTK / muP scales."""

import math

import pytest
import torch

from learnmech_core import DataSpec, ModelSpec
from learnmech_core.data import describe, load
from learnmech_core.models import build, layer_scales, param_count, param_groups


def _expected_params(spec: ModelSpec, info) -> int:
    w, depth, o, b = spec.width, spec.depth, info.n_outputs, int(spec.bias)
    d = info.vocab * info.input_shape[0] if info.kind == "tokens" else math.prod(info.input_shape)
    if spec.arch == "mlp":
        return d * w + b * w + (depth - 1) * (w * w + b * w) + w * o + b * o
    if spec.arch == "deep_linear":
        return d * o if depth == 1 else d * w + (depth - 2) * w * w + w * o
    if spec.arch == "cnn":
        c, side = info.input_shape[0], info.input_shape[1]
        total = c * 9 * w + b * w + (depth - 1) * (9 * w * w + b * w)
        for _ in range(depth):
            side = side // 2 if side >= 8 else side
        features, hw = w * side * side, spec.head_width
        return total + (features * hw + b * hw + hw * o + b * o if hw else features * o + b * o)
    if spec.arch == "resnet":
        if info.kind == "image":
            return info.input_shape[0] * 9 * w + b * w + depth * 2 * (9 * w * w + b * w) + w * o + b * o
        return d * w + b * w + depth * 2 * (w * w + b * w) + w * o + b * o
    vocab, t = info.vocab, info.input_shape[0]
    block = 4 * w + (3 * w * w + b * 3 * w) + (w * w + b * w) + (4 * w * w + b * 4 * w) + (4 * w * w + b * w)
    return vocab * w + t * w + depth * block + 2 * w + w * o + b * o


CASES = [
    (ModelSpec(arch="mlp", width=16, depth=3), DataSpec(name="digits")),
    (ModelSpec(arch="mlp", width=16, depth=1, bias=False), DataSpec(name="moons")),
    (ModelSpec(arch="mlp", width=12, depth=2), DataSpec(name="modular_arithmetic", modulus=7, n_train=20, n_test=5)),
    (ModelSpec(arch="deep_linear", width=10, depth=1), DataSpec(name="linear_lowrank")),
    (ModelSpec(arch="deep_linear", width=10, depth=4), DataSpec(name="linear_lowrank")),
    (ModelSpec(arch="cnn", width=6, depth=3), DataSpec(name="digits")),
    (ModelSpec(arch="cnn", width=6, depth=2, head_width=7), DataSpec(name="digits")),
    (ModelSpec(arch="resnet", width=6, depth=2), DataSpec(name="digits")),
    (ModelSpec(arch="resnet", width=9, depth=3), DataSpec(name="spirals")),
    (ModelSpec(arch="transformer", width=16, depth=2, heads=2),
     DataSpec(name="modular_arithmetic", modulus=7, n_train=20, n_test=5)),
]


@pytest.mark.parametrize("mspec, dspec", CASES)
def test_forward_shape_and_parameter_count(mspec, dspec):
    info = describe(dspec)
    data = load(dspec)
    model = build(mspec, info, generator=torch.Generator().manual_seed(0))
    out = model(data.x_train[:5])
    assert out.shape == (5, info.n_outputs)
    expected = _expected_params(mspec, info)
    assert param_count(mspec, info) == expected
    assert sum(p.numel() for p in model.parameters()) == expected


def test_sp_weights_have_variance_one_over_fan_in():
    info = describe(DataSpec(name="gaussian_mixture", dim=256))
    model = build(ModelSpec(width=512, depth=2, init_scale=1.5), info, generator=torch.Generator().manual_seed(0))
    for layer, fan_in in zip(model.layers[:2], (256, 512), strict=True):
        assert layer.weight.std().item() == pytest.approx(1.5 / math.sqrt(fan_in), rel=0.02)
        assert torch.count_nonzero(layer.bias) == 0


def _hidden_preactivation_std(param: str, width: int) -> float:
    info = describe(DataSpec(name="gaussian_mixture", dim=32))
    model = build(ModelSpec(width=width, depth=2, param=param, activation="relu"), info,
                  generator=torch.Generator().manual_seed(1))
    x = torch.randn(256, 32, generator=torch.Generator().manual_seed(2))
    h1 = torch.relu(model.layers[0](x))
    return model.layers[1](h1).std().item()


@pytest.mark.parametrize("param", ["ntk", "sp"])
def test_preactivations_are_order_one_at_every_width(param):
    stds = [_hidden_preactivation_std(param, w) for w in (64, 256, 1024)]
    assert max(stds) / min(stds) < 1.15
    assert 0.3 < stds[0] < 3.0


def test_ntk_stores_unit_weights_and_scales_in_forward():
    info = describe(DataSpec(name="gaussian_mixture", dim=64))
    model = build(ModelSpec(width=256, param="ntk"), info, generator=torch.Generator().manual_seed(0))
    assert model.layers[1].weight.std().item() == pytest.approx(1.0, rel=0.02)
    assert model.layers[1].mult == pytest.approx(1 / math.sqrt(256))


def test_mup_output_weights_shrink_as_one_over_width():
    info = describe(DataSpec(name="digits"))
    stds = {}
    for w in (64, 256, 1024):
        model = build(ModelSpec(width=w, param="mup", base_width=64), info, generator=torch.Generator().manual_seed(0))
        stds[w] = model.layers[-1].weight.std().item()
        assert stds[w] == pytest.approx(math.sqrt(64) / w, rel=0.06)  # std = sqrt(base) / width
    assert stds[1024] / stds[64] == pytest.approx(1 / 16, rel=0.06)


def test_mup_at_base_width_equals_sp():
    info = describe(DataSpec(name="digits"))
    sp = build(ModelSpec(width=64, param="sp"), info, generator=torch.Generator().manual_seed(5))
    mup = build(ModelSpec(width=64, param="mup", base_width=64), info, generator=torch.Generator().manual_seed(5))
    for (_, a), (_, b) in zip(sp.state_dict().items(), mup.state_dict().items(), strict=True):
        assert torch.equal(a, b)


def test_mup_learning_rate_multipliers():
    m = 4.0
    assert [layer_scales("mup", r, 256, m, 1.0, "sgd")[2] for r in ("input", "hidden", "output")] == [4.0, 1.0, 0.25]
    assert [layer_scales("mup", r, 256, m, 1.0, "adam")[2] for r in ("input", "hidden", "output")] == [1.0, 0.25, 0.25]
    info = describe(DataSpec(name="digits"))
    model = build(ModelSpec(width=256, param="mup", base_width=64), info, optimizer="adam")
    mults = sorted(g["lr_mult"] for g in param_groups(model))
    assert mults == [0.25, 1.0]


def test_incompatible_input_kind_is_a_named_error():
    with pytest.raises(ValueError, match="model.arch 'cnn' cannot take vector inputs of moons"):
        build(ModelSpec(arch="cnn"), describe(DataSpec(name="moons")))


def test_cnn_dense_head_feeds_the_readout_and_is_refused_elsewhere():
    info = describe(DataSpec(name="digits"))
    model = build(ModelSpec(arch="cnn", width=4, depth=2, head_width=5, activation="relu"), info,
                  generator=torch.Generator().manual_seed(0))
    x = load(DataSpec(name="digits")).x_train[:3]
    feats = torch.relu(model.convs[0](x))
    feats = torch.relu(model.convs[1](torch.nn.functional.avg_pool2d(feats, 2))).flatten(1)
    expected = model.readout(torch.relu(model.head(feats)))
    torch.testing.assert_close(model(x), expected)
    assert model.readout.weight.shape == (10, 5)
    with pytest.raises(ValueError, match="model.head_width applies only to model.arch 'cnn'"):
        from learnmech_core import RunSpec

        RunSpec(model=ModelSpec(arch="mlp", head_width=8))
