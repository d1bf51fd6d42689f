"""timm checkpoints -> the library CNNs (keras-hub and keras.applications backbones).

One function per family, ``convert_<family>(backbone, sd)``, copies a timm state dict
(``keras_fer.models.timm_convert.StateDict``, read from safetensors in NumPy mode) into the
library backbone. Where keras-hub ships its own timm converter (VGG, EfficientNet) it is reused
as it is, through :class:`KerasHubPorter`, so the mapping is keras-hub's and only the error
messages and grey-input handling are ours. Where it has none (ResNet-D, Xception,
InceptionV3) the mapping is written here.

Two families need more than a copy, because the Keras layer is not parameterised like the
PyTorch one; both corrections are exact in inference mode:

- Xception (keras-hub) keeps Keras' BatchNorm epsilon 1e-3, timm's ``legacy_xception`` uses
  PyTorch's 1e-5: the moving variance is shifted by ``1e-5 - 1e-3`` so that
  ``sqrt(var + eps)`` is unchanged (the shifted value may be slightly negative; only
  ``var + eps`` is ever used).
- InceptionV3 (keras.applications) has BatchNorm without scale (``scale=False``): timm's gamma
  is folded into the convolution before it (``W' = gamma W``, ``mean' = gamma mean``, which
  gives ``gamma (Wx - mean) / sqrt(var + eps)``; no conv bias is needed).

In training mode (batch statistics) both stay the Keras models they are: Xception normalises
with eps 1e-3, and InceptionV3's batch normalisation divides the folded gamma's magnitude back
out (only its sign survives), exactly as Keras' own InceptionV3 has no learnable scale.
"""

import re

import keras

from keras_fer.models import timm_convert
from keras_fer.models.timm_convert import adapt_input_channels, conv_kernel, depthwise_kernel

TORCH_BN_EPSILON = 1e-5
TIMM_INCEPTION_BN_EPSILON = 1e-3


class KerasHubPorter:
    """keras-hub's ``SafetensorLoader.port_weight`` interface over a ``StateDict``.

    keras-hub's timm converters call ``port_weight(variable, hf_weight_key, hook_fn)``; this
    answers from the already-read state dict, checks the shape (an error names the file, the
    tensor and the Keras variable) and adapts the stem kernel ``input_kernel`` to the model's
    input channels (summed over RGB for grey input, as timm does).
    """

    def __init__(self, sd, input_kernel=None):
        self.sd = sd
        self.input_kernel = input_kernel

    def port_weight(self, keras_variable, hf_weight_key, hook_fn=None):
        def transform(value):
            if hook_fn is not None:
                value = hook_fn(value, list(keras_variable.shape))
            if keras_variable is self.input_kernel:
                value = adapt_input_channels(value, keras_variable.shape[2])
            return value

        timm_convert.copy_variable(keras_variable, self.sd, hf_weight_key, keras_variable.path,
                                   transform)


def _keras_hub_timm_module(name):
    """keras-hub's own timm converter module (an internal of keras-hub, hence the clear error
    should a future keras-hub move it)."""
    import importlib

    try:
        return importlib.import_module(f"keras_hub.src.utils.timm.{name}")
    except ImportError as err:
        raise ImportError(
            f"this keras-hub version has no timm converter module {name!r}; keras-fer was "
            "written against keras-hub 0.32") from err


# --- keras-hub converters reused ------------------------------------------------------------

def convert_vgg(backbone, sd, timm_arch):
    """timm ``vgg16``/``vgg19`` ``features.*`` -> keras-hub ``VGGBackbone`` (keras-hub's map).

    timm's ``pre_logits`` (a ConvMlp: fc1 as a 7x7 convolution, fc2, 120M parameters) has no
    counterpart: FERClassifier pools the feature map globally, see ``backbone.py``.
    """
    module = _keras_hub_timm_module("convert_vgg")
    porter = KerasHubPorter(sd, backbone.get_layer("block1_conv1").kernel)
    module.convert_weights(backbone, porter, {"architecture": timm_arch})


def convert_efficientnet(backbone, sd, timm_arch="efficientnet_b0"):
    """timm ``efficientnet_b0`` -> keras-hub ``EfficientNetBackbone`` (keras-hub's map)."""
    module = _keras_hub_timm_module("convert_efficientnet")
    porter = KerasHubPorter(sd, backbone.get_layer("stem_conv").kernel)
    module.convert_weights(backbone, porter, {"architecture": timm_arch})


# --- mappings written here ------------------------------------------------------------------

def _conv_bn(backbone, sd, keras_prefix, conv, bn, stem=False):
    timm_convert.copy_conv2d(backbone.get_layer(f"{keras_prefix}_conv"), sd, conv,
                             adapt_input=stem)
    timm_convert.copy_batch_norm(backbone.get_layer(f"{keras_prefix}_bn"), sd, bn)


def convert_resnet_d(backbone, sd):
    """timm ``resnet50d`` (deep 3x3 stem, average-pool shortcut) -> keras-hub ``ResNetBackbone``
    with ``block_type="bottleneck_block_vd"``.

    timm keys: ``conv1.{0,3,6}`` / ``conv1.{1,4}`` + ``bn1`` (stem), ``layerS.B.conv{1,2,3}`` /
    ``bn{1,2,3}`` and ``layerS.B.downsample.{1,2}`` (index 0 is the average pool).
    """
    stem = (("conv1.0", "conv1.1"), ("conv1.3", "conv1.4"), ("conv1.6", "bn1"))
    if len(backbone.input_conv_filters) != len(stem):
        raise ValueError(f"backbone has {len(backbone.input_conv_filters)} stem convolutions; "
                         "timm's deep stem has 3")
    for i, (conv, bn) in enumerate(stem):
        _conv_bn(backbone, sd, f"conv{i + 1}", conv, bn, stem=i == 0)
    for s, blocks in enumerate(backbone.stackwise_num_blocks):
        for b in range(blocks):
            keras_name, timm_name = f"stack{s}_block{b}", f"layer{s + 1}.{b}"
            if b == 0:
                _conv_bn(backbone, sd, f"{keras_name}_0", f"{timm_name}.downsample.1",
                         f"{timm_name}.downsample.2")
            for i in (1, 2, 3):
                _conv_bn(backbone, sd, f"{keras_name}_{i}", f"{timm_name}.conv{i}",
                         f"{timm_name}.bn{i}")


def copy_batch_norm_epsilon(layer, sd, prefix, source_epsilon=TORCH_BN_EPSILON):
    """BatchNorm copy into a layer whose epsilon differs from the checkpoint's: the moving
    variance absorbs the difference, so ``moving_variance + layer.epsilon`` equals the
    checkpoint's ``running_var + source_epsilon``."""
    timm_convert.copy_batch_norm(layer, sd, prefix)
    layer.moving_variance.assign(layer.moving_variance + (source_epsilon - layer.epsilon))


def _copy_separable(layer, sd, prefix):
    """keras ``SeparableConv2D`` <- timm ``SeparableConv2d`` (``conv1`` depthwise, then
    ``pointwise``)."""
    channels = layer.depthwise_kernel.shape[2]
    timm_convert.copy_variable(layer.depthwise_kernel, sd, f"{prefix}.conv1.weight",
                               layer.name, lambda w: depthwise_kernel(w, channels))
    timm_convert.copy_variable(layer.pointwise_kernel, sd, f"{prefix}.pointwise.weight",
                               layer.name, conv_kernel)


def convert_xception(backbone, sd):
    """timm ``legacy_xception`` -> keras-hub ``XceptionBackbone`` (Xception-41, 14 blocks).

    keras-hub block ``k`` (2..13) is timm ``block{k-1}``; in timm's ``rep`` list each
    separable conv is preceded by a ReLU except in ``block1`` (``start_with_relu=False``), so
    the j-th separable conv (0-based) sits at index ``3j + 1`` (``3j`` in block1) and its
    BatchNorm right after it. Block 14 is timm's ``conv3``/``bn3``, ``conv4``/``bn4``.
    """
    get = backbone.get_layer
    filters = backbone.stackwise_conv_filters
    timm_convert.copy_conv2d(get("block1_conv1"), sd, "conv1", adapt_input=True)
    copy_batch_norm_epsilon(get("block1_conv1_bn"), sd, "bn1")
    timm_convert.copy_conv2d(get("block1_conv2"), sd, "conv2")
    copy_batch_norm_epsilon(get("block1_conv2_bn"), sd, "bn2")
    for k in range(2, len(filters)):
        timm_block, offset = f"block{k - 1}", 0 if k == 2 else 1
        for j in range(len(filters[k - 1])):
            index = 3 * j + offset
            _copy_separable(get(f"block{k}_sepconv{j + 1}"), sd, f"{timm_block}.rep.{index}")
            copy_batch_norm_epsilon(get(f"block{k}_sepconv{j + 1}_bn"), sd,
                                    f"{timm_block}.rep.{index + 1}")
        names = {layer.name for layer in backbone.layers}
        if f"block{k}_residual_conv" in names:
            timm_convert.copy_conv2d(get(f"block{k}_residual_conv"), sd, f"{timm_block}.skip")
            copy_batch_norm_epsilon(get(f"block{k}_residual_bn"), sd, f"{timm_block}.skipbn")
    last = len(filters)
    for j, (conv, bn) in enumerate((("conv3", "bn3"), ("conv4", "bn4"))):
        _copy_separable(get(f"block{last}_sepconv{j + 1}"), sd, conv)
        copy_batch_norm_epsilon(get(f"block{last}_sepconv{j + 1}_bn"), sd, bn)


# timm's InceptionV3 module names in the order keras.applications creates its convolutions
# (the same branch order in every mixed block; a wrong order fails on the first kernel shape).
_INCEPTION_BLOCKS = {
    "A": ("branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3", "branch_pool"),
    "B": ("branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
    "C": ("branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1",
          "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5",
          "branch_pool"),
    "D": ("branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3",
          "branch7x7x3_4"),
    "E": ("branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1",
          "branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"),
}
_INCEPTION_LAYOUT = (("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"),
                     ("Mixed_6b", "C"), ("Mixed_6c", "C"), ("Mixed_6d", "C"), ("Mixed_6e", "C"),
                     ("Mixed_7a", "D"), ("Mixed_7b", "E"), ("Mixed_7c", "E"))
INCEPTION_V3_MODULES = (
    ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
    + tuple(f"{block}.{branch}" for block, kind in _INCEPTION_LAYOUT
            for branch in _INCEPTION_BLOCKS[kind]))


def _creation_index(layer):
    """Keras numbers auto-named layers in creation order (``conv2d``, ``conv2d_1``, ...)."""
    match = re.search(r"_(\d+)$", layer.name)
    return int(match.group(1)) if match else 0


def conv_bn_pairs(backbone):
    """(Conv2D, its BatchNormalization) pairs in creation order.

    ``model.layers`` of a functional model is in graph order, not creation order, and
    keras.applications names these layers automatically; the creation order (what the timm
    module list follows) is recovered from the automatic names, and each BatchNorm is paired
    with the convolution whose output it reads.
    """
    convs = sorted((layer for layer in backbone.layers
                    if type(layer) is keras.layers.Conv2D), key=_creation_index)
    by_output = {id(conv.output): conv for conv in convs}
    bn_of = {}
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and id(layer.input) in by_output:
            bn_of[by_output[id(layer.input)].name] = layer
    missing = [conv.name for conv in convs if conv.name not in bn_of]
    if missing:
        raise ValueError(f"convolutions without a BatchNormalization after them: {missing}")
    return [(conv, bn_of[conv.name]) for conv in convs]


def convert_inception_v3(backbone, sd):
    """timm ``inception_v3`` (``BasicConv2d`` = conv + BN(eps 1e-3)) -> keras.applications
    ``InceptionV3`` (conv + BN without scale, eps 1e-3), with timm's gamma folded into the
    convolution (module docstring).
    """
    pairs = conv_bn_pairs(backbone)
    if len(pairs) != len(INCEPTION_V3_MODULES):
        raise ValueError(f"backbone has {len(pairs)} conv+BN units; InceptionV3 has "
                         f"{len(INCEPTION_V3_MODULES)}")
    for i, ((conv, bn), module) in enumerate(zip(pairs, INCEPTION_V3_MODULES)):
        if bn.scale or conv.use_bias:
            raise ValueError(f"expected {conv.name!r} without bias and {bn.name!r} without "
                             "scale (Keras' InceptionV3); the gamma folding assumes it")
        gamma = sd.take(f"{module}.bn.weight", bn.name)
        in_channels = conv.kernel.shape[2]

        def fold(weight, stem=i == 0):
            kernel = conv_kernel(weight) * gamma
            return adapt_input_channels(kernel, in_channels) if stem else kernel

        timm_convert.copy_variable(conv.kernel, sd, f"{module}.conv.weight", conv.name, fold)
        # Both use eps 1e-3 today; the shift keeps the copy exact should either change.
        eps_shift = TIMM_INCEPTION_BN_EPSILON - bn.epsilon
        timm_convert.copy_variable(bn.beta, sd, f"{module}.bn.bias", bn.name)
        timm_convert.copy_variable(bn.moving_mean, sd, f"{module}.bn.running_mean", bn.name,
                                   lambda mean: mean * gamma)
        timm_convert.copy_variable(bn.moving_variance, sd, f"{module}.bn.running_var", bn.name,
                                   lambda var: var + eps_shift)
