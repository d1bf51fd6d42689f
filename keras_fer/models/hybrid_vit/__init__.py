"""Hybrid ViT classifiers (ResNet-V2 stem + ViT): vit_base_r50_s16, vit_small_r26_s32."""

from keras_fer.models.hybrid_vit.backbone import (
    CONFIGS,
    StdConv2D,
    hybrid_vit_backbone,
    resnetv2_stem,
)
from keras_fer.models.hybrid_vit.convert import copy_hybrid_backbone, load_timm_weights
from keras_fer.models.hybrid_vit.model import build_hybrid_vit

__all__ = ["CONFIGS", "StdConv2D", "build_hybrid_vit", "copy_hybrid_backbone",
           "hybrid_vit_backbone", "load_timm_weights", "resnetv2_stem"]
