"""CrossViT classifiers (crossvit_tiny/small/base): dual-branch multi-scale ViT, seed 001."""

from keras_fer.models.crossvit.backbone import (
    CROSSVIT_CONFIGS,
    CrossAttention,
    CrossAttentionBlock,
    MultiScaleBlock,
    TokenProjection,
    branch_sizes,
    crossvit_backbone,
)
from keras_fer.models.crossvit.convert import copy_crossvit_backbone, load_timm_weights
from keras_fer.models.registry import register_variants
from keras_fer.models.transformer_blocks import transformer_classifier


def build_crossvit(arch, num_classes, input_shape, img_scale=(1.0, 224 / 240),
                   patch_size=(12, 16), embed_dim=None, depth=((1, 4, 0),) * 3, num_heads=None,
                   mlp_ratio=(4.0, 4.0), qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
                   drop_path_rate=0.0, dropout=0.0, weights=None, load_head="auto"):
    """A CrossViT ``FERClassifier`` over the two concatenated class tokens."""
    dims0, heads0, _ = CROSSVIT_CONFIGS[arch]
    options = dict(img_scale=list(img_scale), patch_size=list(patch_size),
                   embed_dim=list(dims0 if embed_dim is None else embed_dim),
                   depth=[list(d) for d in depth],
                   num_heads=list(heads0 if num_heads is None else num_heads),
                   mlp_ratio=list(mlp_ratio), qkv_bias=qkv_bias, drop_rate=drop_rate,
                   attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
    backbone = crossvit_backbone(input_shape, name=f"{arch}_backbone", **options)
    return transformer_classifier(backbone, arch, num_classes, input_shape, options, None,
                                  dropout, weights, load_head, load_timm_weights)


def _describe(arch):
    dims, heads, timm_name = CROSSVIT_CONFIGS[arch]
    return (f"CrossViT, branches {dims[0]}-d (12px patches) and {dims[1]}-d (16px "
            f"patches at 224/240 scale), 3 multi-scale blocks (timm '{timm_name}' "
            "weights convert). Options: img_scale, patch_size, embed_dim, depth, "
            "num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, "
            "drop_path_rate, dropout, weights, load_head.")


register_variants(CROSSVIT_CONFIGS, build_crossvit, family="crossvit",
                  default_input_shape=(240, 240, 3),
                  describe=_describe, timm_name=lambda arch: CROSSVIT_CONFIGS[arch][-1])

__all__ = ["CROSSVIT_CONFIGS", "CrossAttention", "CrossAttentionBlock", "MultiScaleBlock",
           "TokenProjection", "branch_sizes", "build_crossvit", "copy_crossvit_backbone",
           "crossvit_backbone", "load_timm_weights"]
