"""CrossViT classifiers (crossvit_tiny/small/base): dual-branch multi-scale ViT, seed 001."""

from keras_fer.models.crossvit.backbone import (
    CONFIGS,
    CrossAttention,
    CrossAttentionBlock,
    MultiScaleBlock,
    TokenProjection,
    branch_sizes,
    crossvit_backbone,
)
from keras_fer.models.crossvit.convert import copy_crossvit_backbone, load_timm_weights
from keras_fer.models.crossvit.model import build_crossvit

__all__ = ["CONFIGS", "CrossAttention", "CrossAttentionBlock", "MultiScaleBlock",
           "TokenProjection", "branch_sizes", "build_crossvit", "copy_crossvit_backbone",
           "crossvit_backbone", "load_timm_weights"]
