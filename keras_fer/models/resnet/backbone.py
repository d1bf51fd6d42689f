"""ResNet18/34 (He et al. 2016) in Keras, layer for layer as timm's ``resnet18``/``resnet34``,
with seed 002's attention hook.

Layer names are timm's module paths (``conv1``, ``bn1``, ``layer2.0.downsample.0``, ...), so
timm checkpoints convert by name (``keras_fer.models.resnet.convert``) and any layer can be
compared with its timm twin.
"""

import keras

from keras_fer.models import cnn_common

STAGE_WIDTHS = (64, 128, 256, 512)
DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
# Names of the hook points, in network order: after the stem and after every stage but the
# last (the paper's "between each big convolution block", 4 modules for ResNet18).
ATTENTION_POINTS = ("stem", "layer1", "layer2", "layer3")
SMALL_STEM = ("stem_conv3x3", "stem_bn")


def basic_block(x, filters, stride, name):
    """timm ``BasicBlock``: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the identity or a
    1x1(stride)-BN projection when the shape changes, then ReLU."""
    shortcut = x
    y = cnn_common.conv2d(x, filters, 3, f"{name}.conv1", stride=stride)
    y = cnn_common.batch_norm(f"{name}.bn1")(y)
    y = keras.layers.ReLU(name=f"{name}.act1")(y)
    y = cnn_common.conv2d(y, filters, 3, f"{name}.conv2")
    y = cnn_common.batch_norm(f"{name}.bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = cnn_common.conv2d(x, filters, 1, f"{name}.downsample.0", stride=stride)
        shortcut = cnn_common.batch_norm(f"{name}.downsample.1")(shortcut)
    y = keras.layers.Add(name=f"{name}.add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}.act2")(y)


def resnet_backbone(input_shape, depths=DEPTHS["resnet18"], attention=None,
                    attention_cutoff=None, attention_options=None, small_input=False,
                    width_multiplier=1.0, stem_pool=True, name="resnet18"):
    """The ResNet feature extractor: image (normalised) -> (B, H/32, W/32, 512 x
    ``width_multiplier``) feature map.

    Stem: 7x7 stride-2 conv (64), BN, ReLU, 3x3 stride-2 max-pool; then 4 stages of basic
    blocks (64, 128, 256, 512 channels, times ``width_multiplier``; stride 2 at the first
    block of stages 2-4).

    Args:
        depths: blocks per stage, (2, 2, 2, 2) for ResNet18, (3, 4, 6, 3) for ResNet34.
        attention: seed 002's hook. None, a frequency attention ("hfc", "lfc", "hfc+lfc",
            "hfc+lfc+hl": ``HighFrequencyAttention(query=...)``) or "bam". One module after
            the stem (64 channels) and after stages 1, 2, 3 (64, 128, 256), none after the
            last: the paper counts five big blocks (the stem being the first 64-channel one)
            and attaches a module between each pair, which gives its 4 modules and its
            +708 parameters for "hfc" (64+64+128+256 pointwise weights + 4 x 49). "bam" at
            the same points with ``attention_options=cnn_common.PAPER_BAM_OPTIONS`` gives the
            paper's +23,808 for its BAM baseline.
        attention_cutoff, attention_options: passed to each module (see
            ``keras_fer.models.cnn_common.attention_module``).
        small_input: for 48x48 faces: a 3x3 stride-1 stem conv and no max-pool, so the last
            stage sees 6x6 instead of 2x2 (the CIFAR-style stem). timm weights then load for
            everything but the stem conv and BN, whose names differ (``stem_conv3x3``,
            ``stem_bn``) and which keep their initial weights.
        width_multiplier: scales every stage's channels (rounded to a multiple of 8, as
            MobileNetV2's): 0.25 gives 16, 32, 64, 128 channels and 1/16 of the weights, a
            model small enough to ship inside the package. timm checkpoints only fit 1.0.
        stem_pool: False keeps the 7x7 stride-2 stem conv but drops its max-pool: a 48x48
            face reaches stage 1 at 24x24 and the last stage at 3x3 (not 12x12 and 2x2), for
            4x the compute, a quarter of ``small_input``'s. Every weight keeps its shape and
            name, so a model trained with the pool warm-starts this one layer for layer.
    """
    if small_input and not stem_pool:
        raise ValueError("stem_pool=False drops the default stem's max-pool; small_input=True "
                         "has none to drop")
    if len(depths) != 4 or any(not isinstance(d, int) or d < 1 for d in depths):
        raise ValueError(f"depths must be 4 positive ints, got {depths!r}")
    cnn_common.check_width_multiplier(width_multiplier)
    cnn_common.check_attention(attention, attention_cutoff, attention_options)
    widths = [cnn_common.make_divisible(w * width_multiplier) for w in STAGE_WIDTHS]
    hook = dict(attention=attention, attention_cutoff=attention_cutoff,
                attention_options=attention_options)

    inputs = keras.Input(input_shape, name="images")
    if small_input:
        x = cnn_common.conv2d(inputs, widths[0], 3, SMALL_STEM[0])
        x = cnn_common.batch_norm(SMALL_STEM[1])(x)
        x = keras.layers.ReLU(name="act1")(x)
    else:
        x = cnn_common.conv2d(inputs, widths[0], 7, "conv1", stride=2)
        x = cnn_common.batch_norm("bn1")(x)
        x = keras.layers.ReLU(name="act1")(x)
        if stem_pool:
            x = cnn_common.max_pool_3x3_s2(x, "maxpool")
    x = cnn_common.apply_attention(x, ATTENTION_POINTS[0], **hook)
    for stage, (depth, width) in enumerate(zip(depths, widths)):
        for block in range(depth):
            stride = 2 if stage > 0 and block == 0 else 1
            x = basic_block(x, width, stride, f"layer{stage + 1}.{block}")
        if stage + 1 < len(depths):
            x = cnn_common.apply_attention(x, ATTENTION_POINTS[stage + 1], **hook)
    return keras.Model(inputs, x, name=name)
