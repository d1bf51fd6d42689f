"""Hybrid ViT classifiers (ResNet-V2 stem + ViT): vit_base_r50_s16, vit_small_r26_s32."""

from keras_fer.models.hybrid_vit.backbone import (
    HYBRID_CONFIGS,
    StdConv2D,
    hybrid_vit_backbone,
    resnetv2_stem,
)
from keras_fer.models.hybrid_vit.convert import copy_hybrid_backbone, load_timm_weights
from keras_fer.models.registry import HALF, register_variants
from keras_fer.models.transformer_blocks import transformer_classifier


def build_hybrid_vit(arch, num_classes, input_shape, layers=None, embed_dim=None, depth=None,
                     num_heads=None, mlp_ratio=4.0, qkv_bias=True, drop_rate=0.0,
                     attn_drop_rate=0.0, drop_path_rate=0.0, dropout=0.0, weights=None,
                     load_head="auto"):
    """A hybrid ViT ``FERClassifier`` reading the class token; sizes default to the named
    model (``layers``: bottleneck blocks per stem stage)."""
    layers0, dim0, depth0, heads0, _ = HYBRID_CONFIGS[arch]
    options = dict(layers=list(layers0 if layers is None else layers),
                   embed_dim=dim0 if embed_dim is None else embed_dim,
                   depth=depth0 if depth is None else depth,
                   num_heads=heads0 if num_heads is None else num_heads,
                   mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                   attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
    backbone = hybrid_vit_backbone(input_shape, name=f"{arch}_backbone", **options)
    return transformer_classifier(backbone, arch, num_classes, input_shape, options, "cls",
                                  dropout, weights, load_head, load_timm_weights)


def _describe(arch):
    layers, dim, depth, heads, timm_name = HYBRID_CONFIGS[arch]
    return (f"Hybrid ViT: ResNet-V2 stem {tuple(layers)} + {dim}-d ViT, {depth} blocks, "
            f"{heads} heads (timm '{timm_name}' weights convert; seed 001's "
            "vit_base_resnet50 is vit_base_r50_s16). Options: layers, embed_dim, depth, "
            "num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate, "
            "dropout, weights, load_head.")


register_variants(HYBRID_CONFIGS, build_hybrid_vit, family="hybrid_vit",
                  default_input_shape=(224, 224, 3),
                  describe=_describe, timm_name=lambda arch: HYBRID_CONFIGS[arch][-1],
                  mean=HALF, std=HALF)

__all__ = ["HYBRID_CONFIGS", "StdConv2D", "build_hybrid_vit", "copy_hybrid_backbone",
           "hybrid_vit_backbone", "load_timm_weights", "resnetv2_stem"]
