"""MobileNetV2 (Sandler et al. 2018) in Keras, layer for layer as timm's ``mobilenetv2_100``
(and ``mobilenetv2_050/075/140`` through ``width_multiplier``), with seed 002's attention hook.

Layer names are timm's module paths (``conv_stem``, ``blocks.3.1.conv_dw``, ``bn2``, ...; the
activation fused into timm's ``BatchNormAct2d`` is ``<bn>.act``), so timm checkpoints convert
by name (``keras_fer.models.mobilenet_v2.convert``).
"""

import keras

from keras_fer.models import cnn_common

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# (expansion t, output channels c, repeats n, first stride s), Table 2 of the paper; stage 0
# is timm's depthwise-separable block (t = 1, no expansion conv).
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))
# Hook points: after the stem (32 channels) and after every stage but the last (16, 24, 32,
# 64, 96, 160): the paper's 7 modules between its 8 big blocks, +767 parameters for "hfc"
# (424 pointwise weights + 7 x 49), +11,192 for "bam" with cnn_common.PAPER_BAM_OPTIONS.
ATTENTION_POINTS = ("stem",) + tuple(f"blocks.{i}" for i in range(len(STAGES) - 1))


def _bn_act(x, name, act=True):
    x = cnn_common.batch_norm(name)(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{name}.act")(x) if act else x


def inverted_residual(x, out_channels, expansion, stride, name):
    """timm ``InvertedResidual`` (expansion > 1): 1x1 expand-BN-ReLU6, 3x3 depthwise
    (stride)-BN-ReLU6, 1x1 linear projection-BN, plus the input when the shape is unchanged.
    With expansion 1 it is timm's ``DepthwiseSeparableConv`` (no expand conv; the projection
    is then called ``conv_pw``/``bn2``)."""
    in_channels = x.shape[-1]
    y = x
    if expansion == 1:
        y = cnn_common.depthwise_conv2d(y, 3, f"{name}.conv_dw", stride=stride)
        y = _bn_act(y, f"{name}.bn1")
        y = cnn_common.conv2d(y, out_channels, 1, f"{name}.conv_pw")
        y = _bn_act(y, f"{name}.bn2", act=False)
    else:
        y = cnn_common.conv2d(y, cnn_common.make_divisible(in_channels * expansion), 1,
                              f"{name}.conv_pw")
        y = _bn_act(y, f"{name}.bn1")
        y = cnn_common.depthwise_conv2d(y, 3, f"{name}.conv_dw", stride=stride)
        y = _bn_act(y, f"{name}.bn2")
        y = cnn_common.conv2d(y, out_channels, 1, f"{name}.conv_pwl")
        y = _bn_act(y, f"{name}.bn3", act=False)
    if stride == 1 and in_channels == out_channels:
        y = keras.layers.Add(name=f"{name}.add")([y, x])
    return y


def mobilenet_v2_backbone(input_shape, width_multiplier=1.0, attention=None,
                          attention_cutoff=None, attention_options=None, name="mobilenetv2"):
    """The MobileNetV2 feature extractor: image (normalised) -> (B, H/32, W/32, 1280).

    Args:
        width_multiplier: timm's ``channel_multiplier`` (0.5 -> ``mobilenetv2_050``): every
            width, stem included, scaled and rounded to a multiple of 8; the head keeps
            ``max(1280, rounded 1280 * multiplier)`` channels.
        attention: seed 002's hook (None, "hfc", "lfc", "hfc+lfc", "hfc+lfc+hl", "bam"): one
            module after the stem and after each of the first six stages, see
            ``ATTENTION_POINTS``.
        attention_cutoff, attention_options: passed to each module.
    """
    cnn_common.check_width_multiplier(width_multiplier)
    cnn_common.check_attention(attention, attention_cutoff, attention_options)
    hook = dict(attention=attention, attention_cutoff=attention_cutoff,
                attention_options=attention_options)

    def width(channels):
        return cnn_common.make_divisible(channels * width_multiplier)

    inputs = keras.Input(input_shape, name="images")
    x = cnn_common.conv2d(inputs, width(STEM_CHANNELS), 3, "conv_stem", stride=2)
    x = _bn_act(x, "bn1")
    x = cnn_common.apply_attention(x, ATTENTION_POINTS[0], **hook)
    for stage, (expansion, channels, repeats, stride) in enumerate(STAGES):
        for block in range(repeats):
            x = inverted_residual(x, width(channels), expansion, stride if block == 0 else 1,
                                  f"blocks.{stage}.{block}")
        if stage + 1 < len(STAGES):
            x = cnn_common.apply_attention(x, ATTENTION_POINTS[stage + 1], **hook)
    x = cnn_common.conv2d(x, max(HEAD_CHANNELS, width(HEAD_CHANNELS)), 1, "conv_head")
    x = _bn_act(x, "bn2")
    return keras.Model(inputs, x, name=name)
