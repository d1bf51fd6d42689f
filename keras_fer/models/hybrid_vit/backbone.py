"""Hybrid ViT (Dosovitskiy et al. 2021, Sec. 3.1 "Hybrid Architecture"): a ResNet stem whose
feature map, not raw pixels, is cut into 1x1 "patches" for a ViT. Seed 001's
``vit_base_resnet50`` is timm's ``vit_base_r50_s16_224`` (R50 stem, stride 16, ViT-B/16 at
224; the 98.95 M parameters the seed quotes are that model at 384); ``vit_small_r26_s32_224``
is its small sibling. Both are built here layer for layer, so their timm weights convert.

The stem is Big Transfer's ResNet-V2 without pre-activation, as timm's ``_resnetv2`` builds
it for hybrids: convolutions with weight standardisation (``StdConv2D``: each output
filter's weights normalised to zero mean and unit variance before convolving, eps 1e-8),
TensorFlow "SAME" padding, GroupNorm with 32 groups instead of BatchNorm (both come from
BiT, where they make batch-size-independent transfer work); 7x7/2 convolution, GroupNorm,
ReLU, 3x3/2 max-pool, then bottleneck stages of 256, 512, 1024 (, 2048) channels, the first
at stride 1 and the rest at stride 2, each block ``relu(GN(conv1x1(relu(GN(conv3x3(
relu(GN(conv1x1(x)))))))) + shortcut)`` with a strided 1x1 conv + GN shortcut in the first
block. The map is projected to ``embed_dim`` by a 1x1 convolution, flattened, given a class
token and position embedding, and run through pre-norm transformer blocks.
"""

import numpy as np

import keras
from keras import ops

from keras_fer.models.transformer_blocks import (
    PatchEmbedding,
    PositionEmbedding,
    PrependClassToken,
    TransformerBlock,
    check_positive_int,
    check_rate,
)

STAGE_CHANNELS = (256, 512, 1024, 2048)
GROUPS = 32
GN_EPSILON = 1e-5

# The size table: each architecture's defaults for ``hybrid_vit_backbone``'s size arguments
# (``layers``: stem blocks per stage; timm's model of the same name with an ``_224`` suffix).
CONFIGS = {
    "vit_base_r50_s16": dict(layers=(3, 4, 9), embed_dim=768, depth=12, num_heads=12),
    "vit_small_r26_s32": dict(layers=(2, 2, 2, 2), embed_dim=384, depth=12, num_heads=6),
}


@keras.saving.register_keras_serializable(package="keras_fer")
class StdConv2D(keras.layers.Conv2D):
    """Conv2D with weight standardisation (Qiao et al. 2019): the kernel of each output
    channel is normalised to zero mean and unit (biased) variance over its inputs before the
    convolution, ``(w - mean) / sqrt(var + weight_eps)``. timm's ``StdConv2dSame``."""

    def __init__(self, *args, weight_eps=1e-8, **kwargs):
        super().__init__(*args, **kwargs)
        if float(weight_eps) <= 0:
            raise ValueError(f"weight_eps must be > 0, got {weight_eps}")
        self.weight_eps = float(weight_eps)

    def convolution_op(self, inputs, kernel):
        mean = ops.mean(kernel, axis=(0, 1, 2), keepdims=True)
        var = ops.var(kernel, axis=(0, 1, 2), keepdims=True)
        return super().convolution_op(inputs, (kernel - mean) / ops.sqrt(var + self.weight_eps))

    def get_config(self):
        return {**super().get_config(), "weight_eps": self.weight_eps}


def _conv(x, filters, kernel_size, name, stride=1):
    return StdConv2D(filters, kernel_size, strides=stride, padding="same", use_bias=False,
                     name=name)(x)


def _norm(x, name, relu=True):
    x = keras.layers.GroupNormalization(GROUPS, epsilon=GN_EPSILON, name=name)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _bottleneck(x, out_channels, stride, name, project):
    mid = out_channels // 4
    shortcut = x
    if project:
        shortcut = _conv(x, out_channels, 1, f"{name}_downsample_conv", stride)
        shortcut = _norm(shortcut, f"{name}_downsample_norm", relu=False)
    x = _norm(_conv(x, mid, 1, f"{name}_conv1"), f"{name}_norm1")
    x = _norm(_conv(x, mid, 3, f"{name}_conv2", stride), f"{name}_norm2")
    x = _norm(_conv(x, out_channels, 1, f"{name}_conv3"), f"{name}_norm3", relu=False)
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def resnetv2_stem(x, layers):
    """BiT ResNet-V2 (no pre-activation) feature extractor of ``len(layers)`` stages."""
    x = _norm(_conv(x, 64, 7, "stem_conv", stride=2), "stem_norm")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for s, depth in enumerate(layers):
        for b in range(depth):
            stride = 2 if s > 0 and b == 0 else 1
            x = _bottleneck(x, STAGE_CHANNELS[s], stride, f"stages_{s}_blocks_{b}", b == 0)
    return x


def hybrid_vit_backbone(input_shape, layers=(3, 4, 9), embed_dim=768, depth=12, num_heads=12,
                        mlp_ratio=4.0, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
                        drop_path_rate=0.0, name=None):
    """Images -> final-normalised (B, 1 + N, D) tokens, N = (H / s) * (W / s) with stride
    s = 4 * 2^(stages - 1) (16 for R50's three stages, 32 for R26's four)."""
    layers = tuple(layers)
    if not 1 <= len(layers) <= len(STAGE_CHANNELS):
        raise ValueError(f"layers must list 1 to {len(STAGE_CHANNELS)} stage depths, got {layers}")
    for d in layers:
        check_positive_int(d, "layers")
    depth = check_positive_int(depth, "depth")
    embed_dim = check_positive_int(embed_dim, "embed_dim")
    if embed_dim % check_positive_int(num_heads, "num_heads"):
        raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
    stride = 4 * 2 ** (len(layers) - 1)
    if min(input_shape[0], input_shape[1]) < stride:
        raise ValueError(f"input {tuple(input_shape[:2])} is smaller than the stem's stride "
                         f"{stride}; use a larger input or fewer stem stages")
    rates = np.linspace(0.0, check_rate(drop_path_rate, "drop_path_rate"), depth)
    inputs = keras.Input(tuple(input_shape), name="images")
    x = resnetv2_stem(inputs, layers)
    x = PatchEmbedding(1, embed_dim, name="patch_embed")(x)
    x = PrependClassToken(name="cls_token")(x)
    x = PositionEmbedding(name="pos_embed")(x)
    x = keras.layers.Dropout(check_rate(drop_rate, "drop_rate"), name="pos_drop")(x)
    for i in range(depth):
        x = TransformerBlock(num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate,
                             float(rates[i]), 1e-6, name=f"blocks_{i}")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    return keras.Model(inputs, x, name=name)
