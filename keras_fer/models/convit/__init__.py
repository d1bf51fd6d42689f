"""ConViT classifiers (convit_tiny/small/base): gated positional self-attention, seed 001."""

from keras_fer.models.convit.backbone import (
    CONVIT_CONFIGS,
    GatedPositionalSelfAttention,
    GPSABlock,
    convit_backbone,
)
from keras_fer.models.convit.convert import copy_convit_backbone, load_timm_weights
from keras_fer.models.registry import register_variants
from keras_fer.models.transformer_blocks import transformer_classifier


def build_convit(arch, num_classes, input_shape, patch_size=16, embed_dim=None, depth=12,
                 num_heads=None, local_up_to_layer=10, locality_strength=1.0, mlp_ratio=4.0,
                 qkv_bias=False, drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0,
                 dropout=0.0, weights=None, load_head="auto"):
    """A ConViT ``FERClassifier`` reading the class token; ``embed_dim`` is the total width."""
    dim0, heads0, _ = CONVIT_CONFIGS[arch]
    options = dict(patch_size=patch_size,
                   embed_dim=dim0 if embed_dim is None else embed_dim, depth=depth,
                   num_heads=heads0 if num_heads is None else num_heads,
                   local_up_to_layer=local_up_to_layer, locality_strength=locality_strength,
                   mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                   attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
    backbone = convit_backbone(input_shape, name=f"{arch}_backbone", **options)
    return transformer_classifier(backbone, arch, num_classes, input_shape, options, "cls",
                                  dropout, weights, load_head, load_timm_weights)


def _describe(arch):
    dim, heads, timm_name = CONVIT_CONFIGS[arch]
    return (f"ConViT {dim}-d, {heads} heads, 12 blocks of which 10 gated positional "
            f"(timm '{timm_name}' weights convert). Options: patch_size, embed_dim "
            "(total width), depth, num_heads, local_up_to_layer, locality_strength, "
            "mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate, dropout, "
            "weights, load_head.")


register_variants(CONVIT_CONFIGS, build_convit, family="convit",
                  default_input_shape=(224, 224, 3),
                  describe=_describe, timm_name=lambda arch: CONVIT_CONFIGS[arch][-1])

__all__ = ["CONVIT_CONFIGS", "GPSABlock", "GatedPositionalSelfAttention", "build_convit",
           "convit_backbone", "copy_convit_backbone", "load_timm_weights"]
