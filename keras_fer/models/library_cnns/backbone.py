"""keras-hub CNN families: VGG16/19, ResNet50-D, EfficientNet-B0, Xception.

Each backbone is a keras-hub backbone class configured from arguments (random
initialisation, no preset download), sized for ``input_shape`` and wrapped in
``FERClassifier`` (global average pooling, dropout, dense logits). Every one converts from the
timm model named in its registration (``weights=`` a timm safetensors checkpoint, see
``common.py``); the fidelity tests show equal outputs.

Family notes:

- VGG16/VGG19 (seed 001): the backbone is the 13/16-convolution feature extractor, which
  equals timm's ``forward_features``. timm's head is a ConvMlp (fc1 as a 7x7 convolution to
  4096 channels, fc2 1x1, then the classifier; about 120M parameters) that needs a 224x224
  input; keras-fer replaces it with global average pooling and one dense layer, so the
  classifier stays usable at 48x48 and trainable from FER-sized data. Fidelity therefore
  covers the features (and the pooled-feature logits), not timm's pre-logits.
- ResNet50-D (seed 001's ``resnet50d``): keras-hub's ``bottleneck_block_vd`` ResNet (deep
  3x3 stem 32-32-64, stride on the 3x3 convolution, 2x2 average-pool shortcut with
  ``ceil_mode``/no padding count, which TensorFlow's "same" average pooling reproduces for odd
  sizes too).
- EfficientNet-B0: keras-hub's ``EfficientNetBackbone`` in timm's layout (the configuration
  keras-hub's own timm converter uses), BN epsilon 1e-5.
- Xception: keras-hub's Xception-41 (Keras' original layout) against timm's
  ``legacy_xception`` (a port of the same Keras model). Outputs are equal when every max-pool
  input is odd (input sizes 39/40, 71/72, 103/104, ...: after the two valid stem
  convolutions the size is 1 mod 16); for an even-sized pool input TensorFlow's "same" max
  pooling pads (0, 1) where PyTorch pads (1, 1), which shifts the pooling windows by one
  pixel. That is the Keras model's own behaviour (keras-hub's and keras.applications' ImageNet
  weights were trained with it) and is kept; at 299x299 the second entry-flow pool sees
  74x74, so timm weights convert exactly but the function differs slightly there. timm's BN
  epsilon (1e-5) differs from Keras' (1e-3); the converter absorbs it into the moving
  variance.
"""

import keras_hub

from keras_fer.models.library_cnns import convert
from keras_fer.models.library_cnns.common import LibraryFamily

# --- VGG ------------------------------------------------------------------------------------

VGG_FILTERS = (64, 128, 256, 512, 512)
VGG_REPEATS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


def vgg_backbone(input_shape, depth):
    arch = f"vgg{depth}"
    return keras_hub.models.VGGBackbone(
        stackwise_num_repeats=list(VGG_REPEATS[arch]), stackwise_num_filters=list(VGG_FILTERS),
        image_shape=tuple(input_shape), name=f"{arch}_backbone")


def _vgg_family(depth):
    arch = f"vgg{depth}"
    return LibraryFamily(
        arch=arch, make_backbone=lambda input_shape: vgg_backbone(input_shape, depth),
        min_size=32, stem="block1_conv1", timm_arch=arch,
        timm_convert=lambda backbone, sd: convert.convert_vgg(backbone, sd, arch),
        head_prefix=None, ignore_prefixes=("pre_logits.", "head."))


VGG16 = _vgg_family(16)
VGG19 = _vgg_family(19)


# --- ResNet50-D -----------------------------------------------------------------------------

def resnet50d_backbone(input_shape):
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[32, 32, 64], input_conv_kernel_sizes=[3, 3, 3],
        stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[3, 4, 6, 3],
        stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block_vd",
        image_shape=tuple(input_shape), name="resnet50d_backbone")


RESNET50D = LibraryFamily(
    arch="resnet50d", make_backbone=resnet50d_backbone, min_size=32, stem="conv1_conv",
    timm_arch="resnet50d", timm_convert=convert.convert_resnet_d, head_prefix="fc")


# --- EfficientNet-B0 ------------------------------------------------------------------------

# timm's efficientnet_b0 in keras-hub's terms (what keras-hub's timm converter builds).
EFFICIENTNET_B0 = dict(
    stackwise_width_coefficients=[1.0] * 7, stackwise_depth_coefficients=[1.0] * 7,
    stackwise_squeeze_and_excite_ratios=[0.25] * 7,
    stackwise_kernel_sizes=[3, 3, 5, 3, 5, 5, 3], stackwise_num_repeats=[1, 2, 2, 3, 3, 4, 1],
    stackwise_input_filters=[32, 16, 24, 40, 80, 112, 192],
    stackwise_output_filters=[16, 24, 40, 80, 112, 192, 320],
    stackwise_expansion_ratios=[1, 6, 6, 6, 6, 6, 6], stackwise_strides=[1, 2, 2, 2, 1, 2, 1],
    stackwise_block_types=["v1"] * 7, min_depth=None, include_stem_padding=True,
    use_depth_divisor_as_min_depth=True, cap_round_filter_decrease=True,
    stem_conv_padding="valid", batch_norm_momentum=0.9, batch_norm_epsilon=1e-5,
    projection_activation=None)


def efficientnet_b0_backbone(input_shape, drop_connect_rate=0.2):
    """``drop_connect_rate``: keras-hub's per-block stochastic depth at the skip connections,
    growing linearly to this value over the blocks (Tan & Le's 0.2 by default); training only.
    """
    if not 0.0 <= drop_connect_rate < 1.0:
        raise ValueError(f"drop_connect_rate must be in [0, 1), got {drop_connect_rate}")
    return keras_hub.models.EfficientNetBackbone(
        **EFFICIENTNET_B0, dropout=float(drop_connect_rate), input_shape=tuple(input_shape),
        name="efficientnet_b0_backbone")


EFFICIENTNET_B0_FAMILY = LibraryFamily(
    arch="efficientnet_b0", make_backbone=efficientnet_b0_backbone, min_size=32,
    stem="stem_conv", timm_arch="efficientnet_b0", timm_convert=convert.convert_efficientnet,
    head_prefix="classifier")


# --- Xception -------------------------------------------------------------------------------

# Xception-41: entry flow (2 convs, 3 pooled residual blocks), 8 middle blocks, exit flow.
XCEPTION_FILTERS = ([[32, 64], [128, 128], [256, 256], [728, 728]] + [[728, 728, 728]] * 8
                    + [[728, 1024], [1536, 2048]])
XCEPTION_POOLING = [False, True, True, True] + [False] * 8 + [True, False]


def xception_backbone(input_shape):
    return keras_hub.models.XceptionBackbone(
        stackwise_conv_filters=[list(f) for f in XCEPTION_FILTERS],
        stackwise_pooling=list(XCEPTION_POOLING), image_shape=tuple(input_shape),
        name="xception_backbone")


XCEPTION = LibraryFamily(
    arch="xception", make_backbone=xception_backbone, min_size=32, stem="block1_conv1",
    timm_arch="legacy_xception", timm_convert=convert.convert_xception, head_prefix="fc")