"""Building blocks shared by keras-fer's own CNN families (ResNet, MobileNetV2, mini-Xception).

- Convolutions padded the PyTorch way. Keras' ``padding="same"`` with stride 2 on an even
  input pads (0, 1) while PyTorch pads (k//2, k//2); the two disagree by one pixel shift,
  which is enough to break equality with timm. Strided convolutions therefore get an explicit
  symmetric ``ZeroPadding2D`` and ``"valid"`` padding; stride-1 odd kernels use "same", which
  is already symmetric.
- BatchNorm with PyTorch's epsilon (1e-5) and momentum (0.1, i.e. Keras' 0.9), so timm
  weights give equal outputs and training dynamics match the papers' PyTorch runs.
- The attention hook of seed 002: a spatial attention module inserted between the big blocks
  of a backbone (``attention=None | "hfc" | "lfc" | "hfc+lfc" | "hfc+lfc+hl" | "bam"``).
"""

import keras

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

FREQUENCY_ATTENTIONS = ("hfc", "lfc", "hfc+lfc", "hfc+lfc+hl")
ATTENTIONS = (None,) + FREQUENCY_ATTENTIONS + ("bam",)
ATTENTION_PREFIX = "attention_after_"
# BAM as counted in the HFC paper's Table 2 (+23,808 on ResNet18, +11,192 on MobileNetV2 at
# the same hook points): no BN affine parameters and no conv biases, the only configuration
# of keras_fer.layers.BAM that reproduces both numbers. Pass it as ``attention_options`` to
# rebuild the paper's baseline; the layer's own defaults follow the BAM paper instead.
PAPER_BAM_OPTIONS = {"conv_bias": False, "batch_norm": "none"}


def make_divisible(value, divisor=8, round_limit=0.9):
    """timm's channel rounding: nearest multiple of ``divisor`` (at least ``divisor``), bumped
    up one step if rounding lost more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < round_limit * value else rounded


def check_width_multiplier(width_multiplier):
    if isinstance(width_multiplier, bool) or not isinstance(width_multiplier, (int, float)) \
            or width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be a number > 0, got {width_multiplier!r}")


def batch_norm(name, **kwargs):
    return keras.layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name, **kwargs)


def _torch_padding(x, kernel_size, stride, name):
    """Symmetric k//2 padding for strided convs/pools; "same" suffices otherwise."""
    if stride == 1:
        return x, "same"
    if kernel_size // 2 == 0:
        return x, "valid"
    return keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x), "valid"


def conv2d(x, filters, kernel_size, name, stride=1, use_bias=False, **kwargs):
    """A Conv2D named ``name`` with PyTorch's ``padding=kernel_size // 2``."""
    x, padding = _torch_padding(x, kernel_size, stride, name)
    return keras.layers.Conv2D(filters, kernel_size, strides=stride, padding=padding,
                               use_bias=use_bias, name=name, **kwargs)(x)


def depthwise_conv2d(x, kernel_size, name, stride=1, use_bias=False):
    x, padding = _torch_padding(x, kernel_size, stride, name)
    return keras.layers.DepthwiseConv2D(kernel_size, strides=stride, padding=padding,
                                        use_bias=use_bias, name=name)(x)


def max_pool_3x3_s2(x, name):
    """PyTorch ``MaxPool2d(3, 2, padding=1)``. Zero padding equals PyTorch's -inf padding
    here because the input follows a ReLU (non-negative)."""
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name=name)(x)


def check_attention(attention, attention_cutoff=None, attention_options=None):
    """Validates the attention hook arguments early, with messages naming the argument."""
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
    if attention_cutoff is not None and attention not in FREQUENCY_ATTENTIONS:
        raise ValueError(
            f"attention_cutoff applies to the frequency attentions {FREQUENCY_ATTENTIONS} "
            f"only, got attention={attention!r} with attention_cutoff={attention_cutoff!r}")
    if attention_options is not None and not isinstance(attention_options, dict):
        raise ValueError(f"attention_options must be a dict of layer arguments, got "
                         f"{type(attention_options).__name__}")
    if attention_options and attention is None:
        raise ValueError("attention_options given but attention is None")


def attention_module(attention, name, attention_cutoff=None, attention_options=None):
    """The module inserted at one hook point, or None when ``attention`` is None.

    "hfc"/"lfc"/"hfc+lfc"/"hfc+lfc+hl" build ``keras_fer.layers.HighFrequencyAttention`` with
    that ``query`` (``attention_cutoff`` -> its ``cutoff``); "bam" builds
    ``keras_fer.layers.BAM``. ``attention_options`` go to the layer's constructor as they are
    (e.g. ``{"relative_cutoff": True}`` or ``{"reduction": 16}``).
    """
    check_attention(attention, attention_cutoff, attention_options)
    if attention is None:
        return None
    options = dict(attention_options or {})
    full_name = ATTENTION_PREFIX + name
    if attention == "bam":
        from keras_fer.layers import BAM

        return BAM(name=full_name, **options)
    from keras_fer.layers import HighFrequencyAttention

    if attention_cutoff is not None:
        options["cutoff"] = attention_cutoff
    return HighFrequencyAttention(query=attention, name=full_name, **options)


# Where the default 1-bin cutoff would leave a small map (3x3 and below: the last stage of a
# ResNet on 48x48 faces) no high frequency, the module takes the zoo's relative cutoff
# instead: a quarter of the map's half size.
SMALL_MAP_RELATIVE_CUTOFF = 0.25


def apply_attention(x, point, attention, attention_cutoff=None, attention_options=None):
    """``x`` through the module for hook ``point`` (unchanged when attention is None).

    With no cutoff given, a frequency attention keeps the layer's 1-bin default wherever it
    leaves high frequencies and adapts on maps too small for it (``create_model("resnet18",
    input_shape=(48, 48, 1), attention="hfc")`` used to fail on its 3x3 last stage).
    """
    options = dict(attention_options or {})
    if (attention in FREQUENCY_ATTENTIONS and attention_cutoff is None
            and "cutoff" not in options and not options.get("relative_cutoff")):
        height, width = x.shape[1], x.shape[2]
        if height is not None and width is not None and min(height, width) // 2 <= 1:
            attention_cutoff = SMALL_MAP_RELATIVE_CUTOFF
            options["relative_cutoff"] = True
            attention_options = options
    module = attention_module(attention, point, attention_cutoff, attention_options)
    return x if module is None else module(x)


def attention_layer_names(model):
    """Names of the inserted attention modules, in network order."""
    return [layer.name for layer in model.layers if layer.name.startswith(ATTENTION_PREFIX)]


def is_attention_layer(name):
    return name.startswith(ATTENTION_PREFIX)


def build_classifier(backbone, arch, num_classes, input_shape, arch_options, dropout=0.0,
                     weights=None, load_head="auto", loader=None):
    """``FERClassifier`` over ``backbone`` with the registered normalisation of ``arch``;
    ``weights`` (a timm checkpoint) are loaded with ``loader`` when given. ``arch_options``
    record how the model was built (everything but the weights file, which is provenance,
    not architecture), so ``create_model(arch, **model.arch_options)`` rebuilds it."""
    from keras_fer.models.classifier import FERClassifier
    from keras_fer.models.registry import get_architecture

    spec = get_architecture(arch)
    model = FERClassifier(backbone, num_classes, input_shape, mean=spec.mean, std=spec.std,
                          pooling="avg", dropout=dropout, arch=arch,
                          arch_options=dict(arch_options, dropout=dropout))
    if weights is not None:
        loader(model, weights, load_head=load_head)
    return model
