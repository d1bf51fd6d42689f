"""Swin Transformer classifiers (swin_*_patch4_window7), timm-compatible, any input size."""

from keras_fer.models.registry import register_variants
from keras_fer.models.swin.backbone import (
    SWIN_CONFIGS,
    PatchMerging,
    SwinBlock,
    WindowAttention,
    swin_backbone,
)
from keras_fer.models.swin.convert import copy_swin_backbone, load_timm_weights
from keras_fer.models.transformer_blocks import transformer_classifier


def build_swin(arch, num_classes, input_shape, patch_size=4, embed_dim=None, depths=None,
               num_heads=None, window_size=None, mlp_ratio=4.0, qkv_bias=True, drop_rate=0.0,
               attn_drop_rate=0.0, drop_path_rate=0.1, dropout=0.0, weights=None,
               load_head="auto"):
    """A Swin ``FERClassifier`` averaging the final map; sizes default to the named model."""
    dim0, depths0, heads0, window0, _ = SWIN_CONFIGS[arch]
    options = dict(patch_size=patch_size,
                   embed_dim=dim0 if embed_dim is None else embed_dim,
                   depths=list(depths0 if depths is None else depths),
                   num_heads=list(heads0 if num_heads is None else num_heads),
                   window_size=window0 if window_size is None else window_size,
                   mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                   attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
    backbone = swin_backbone(input_shape, name=f"{arch}_backbone", **options)
    return transformer_classifier(backbone, arch, num_classes, input_shape, options, "avg",
                                  dropout, weights, load_head, load_timm_weights)


def _describe(arch):
    dim, depths, heads, window, timm_name = SWIN_CONFIGS[arch]
    return (f"Swin Transformer, {dim}-d, depths {depths}, window {window} (timm "
            f"'{timm_name}' weights convert; any input size, e.g. 48x48x1). Options: "
            "patch_size, embed_dim, depths, num_heads, window_size, mlp_ratio, "
            "qkv_bias, drop_rate, attn_drop_rate, drop_path_rate, dropout, weights, "
            "load_head.")


register_variants(SWIN_CONFIGS, build_swin, family="swin",
                  default_input_shape=(224, 224, 3),
                  describe=_describe, timm_name=lambda arch: SWIN_CONFIGS[arch][-1])

__all__ = ["PatchMerging", "SWIN_CONFIGS", "SwinBlock", "WindowAttention", "build_swin",
           "copy_swin_backbone", "load_timm_weights", "swin_backbone"]
