"""BAM (Park et al. 2018), the baseline of SPEC 002, against an independent NumPy version."""

import numpy as np
import pytest

import keras

from keras_fer.layers import BAM
from keras_fer.testing import check_gradients, run_layer_test

BN_EPS = 1e-5  # PyTorch's default, which the layer is meant to follow


def np_bn(y, bn, training):
    """BatchNorm over all axes but the last: batch statistics in training, moving ones else."""
    if bn is None:
        return y
    if training:
        axes = tuple(range(y.ndim - 1))
        mean, var = y.mean(axis=axes), y.var(axis=axes)
    else:
        mean, var = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    return (y - mean) / np.sqrt(var + BN_EPS) * bn.gamma.numpy() + bn.beta.numpy()


def np_conv(y, conv, dilation=1):
    """'same' zero-padded (dilated) correlation, channels last."""
    kernel = conv.kernel.numpy().astype(np.float64)
    k = kernel.shape[0]
    pad = dilation * (k // 2)
    _, h, w, _ = y.shape
    padded = np.pad(y, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros(y.shape[:3] + (kernel.shape[-1],))
    for i in range(k):
        for j in range(k):
            tap = padded[:, i * dilation:i * dilation + h, j * dilation:j * dilation + w]
            out += tap @ kernel[i, j]
    if conv.use_bias:
        out += conv.bias.numpy()
    return out


def np_dense(y, dense):
    return y @ dense.kernel.numpy() + (dense.bias.numpy() if dense.use_bias else 0.0)


def reference_bam(layer, x, combine, batch_norm, dilation, training=False):
    """BAM paper Eqs. 1-4 (batch_norm="output") or the official code's BN placement."""
    x = np.asarray(x, np.float64)
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
    hidden_bn = batch_norm == "hidden"
    out_bn = batch_norm == "output"

    h = np_dense(x.mean(axis=(1, 2)), layer.channel_fc0)
    h = relu(np_bn(h, layer.channel_fc0_bn if hidden_bn else None, training))
    mc = np_bn(np_dense(h, layer.channel_fc1), layer.channel_bn if out_bn else None, training)

    convs = [(layer.spatial_reduce, 1)] + [(c, dilation) for c in layer.spatial_dilated]
    y = x
    for i, (conv, d) in enumerate(convs):
        y = relu(np_bn(np_conv(y, conv, d), layer.spatial_hidden_bns[i] if hidden_bn else None,
                       training))
    ms = np_bn(np_conv(y, layer.spatial_final), layer.spatial_bn if out_bn else None, training)

    mc = mc[:, None, None, :]
    logits = mc + ms if combine == "sum" else mc * ms
    return x * (1.0 + 1.0 / (1.0 + np.exp(-logits)))


def randomize(layer, seed=0):
    """Random weights everywhere, including non-trivial BN moving statistics."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        if "variance" in w.path:
            value = rng.uniform(0.5, 2.0, size=w.shape)
        else:
            value = rng.normal(scale=0.5, size=w.shape)
        w.assign(value.astype(w.dtype))


def random_input(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("batch_norm", ["output", "hidden", "none"])
@pytest.mark.parametrize("combine", ["sum", "product"])
def test_inference_matches_numpy(batch_norm, combine):
    x = random_input((3, 11, 11, 32))
    layer = BAM(reduction=8, dilation=2, combine=combine, batch_norm=batch_norm)
    layer(x)
    randomize(layer)
    expected = reference_bam(layer, x, combine, batch_norm, dilation=2)
    got = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("batch_norm", ["output", "hidden"])
def test_training_mode_uses_batch_statistics(batch_norm):
    x = random_input((4, 9, 9, 16))
    layer = BAM(reduction=4, dilation=4, batch_norm=batch_norm)
    layer(x)
    randomize(layer)
    expected = reference_bam(layer, x, "sum", batch_norm, dilation=4, training=True)
    got = keras.ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_paper_defaults_on_tiny_maps():
    # Dilation 4 on a 7x7 map (MobileNetV2's last stages at 224 px): the taps fall in the zero
    # padding except the centre one, and the layer must still agree with the reference.
    x = random_input((2, 7, 7, 160))
    layer = BAM()
    layer(x)
    randomize(layer)
    expected = reference_bam(layer, x, "sum", "output", dilation=4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, atol=1e-5,
                               rtol=1e-5)
    assert layer.hidden_units == 10


def test_run_layer_test_default():
    run_layer_test(BAM, {}, random_input((2, 8, 8, 32)), expected_output_shape=(2, 8, 8, 32),
                   atol=1e-5, rtol=1e-5)


def test_run_layer_test_all_options():
    init = {"reduction": 4, "dilation": 2, "num_dilated_convs": 1, "combine": "product",
            "batch_norm": "hidden", "conv_bias": False}
    run_layer_test(BAM, init, random_input((2, 6, 6, 8)), expected_output_shape=(2, 6, 6, 8),
                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("batch_norm", ["output", "hidden"])
def test_gradients(batch_norm):
    # Tiny (C = 2, c = 1): finite differences cost two calls per input entry and weight.
    x = random_input((1, 5, 5, 2))
    layer = BAM(reduction=2, dilation=2, num_dilated_convs=1, batch_norm=batch_norm)
    layer(x)
    randomize(layer)
    check_gradients(layer, x, eps=1e-5, atol=1e-6, rtol=1e-4)


def test_unknown_spatial_size_and_batch_of_one():
    layer = BAM(reduction=4)
    inputs = keras.Input((None, None, 8))
    model = keras.Model(inputs, layer(inputs))
    randomize(layer)
    for shape in [(1, 5, 5, 8), (2, 9, 6, 8)]:
        x = random_input(shape)
        expected = reference_bam(layer, x, "sum", "output", dilation=4)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), expected, atol=1e-5,
                                   rtol=1e-5)


def torch_style_count(layer):
    """``sum(p.numel() for p in module.parameters())``: BN moving statistics are buffers."""
    return int(sum(np.prod(w.shape) for w in layer.trainable_weights))


def placement_count(channels, **kwargs):
    total = 0
    for c in channels:
        layer = BAM(**kwargs)
        layer.build((None, 14, 14, c))
        total += torch_style_count(layer)
    return total


RESNET18 = [64, 64, 128, 256]
MOBILENETV2 = [32, 16, 24, 32, 64, 96, 160]


@pytest.mark.parametrize("channels,expected", [(RESNET18, 23_808), (MOBILENETV2, 11_192)])
def test_parameter_counts_of_the_hfc_paper(channels, expected):
    assert placement_count(channels, conv_bias=False, batch_norm="none") == expected


def test_parameter_count_formula():
    # Written out from the layer list, per module with c = max(1, C // r), default
    # batch_norm="output" (biases feeding a BN are dropped): MLP 2Cc + c, BN(C) 2C;
    # reduce Cc + c, dilated 2 (9c^2 + c), final c, BN(1) 2.
    def formula(C, r=16):
        c = max(1, C // r)
        return (2 * C * c + c + 2 * C) + (C * c + c + 2 * (9 * c * c + c) + c + 2)

    for channels in (RESNET18, MOBILENETV2):
        assert placement_count(channels) == sum(formula(C) for C in channels)
    layer = BAM()
    layer.build((None, 8, 8, 64))
    # Keras also counts the moving mean/variance of BN(64) and BN(1): 2 * (64 + 1).
    assert layer.count_params() == torch_style_count(layer) + 130


@pytest.mark.parametrize("kwargs,match", [
    ({"reduction": 0}, "reduction must be an int >= 1"),
    ({"reduction": 2.5}, "reduction"),
    ({"dilation": 0}, "dilation must be an int >= 1"),
    ({"num_dilated_convs": -1}, "num_dilated_convs must be an int >= 0"),
    ({"combine": "max"}, "combine must be one of"),
    ({"batch_norm": True}, "batch_norm must be one of"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BAM(**kwargs)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\(batch, H, W, C\).*\(2, 8, 8\)"):
        BAM()(np.zeros((2, 8, 8), "float32"))
    with pytest.raises(ValueError, match="known C"):
        BAM().build((None, 8, 8, None))
