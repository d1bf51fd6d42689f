"""ConViT classifiers (convit_tiny/small/base): gated positional self-attention, seed 001."""

from keras_fer.models.convit.backbone import (
    CONFIGS,
    GatedPositionalSelfAttention,
    GPSABlock,
    convit_backbone,
)
from keras_fer.models.convit.convert import copy_convit_backbone, load_timm_weights
from keras_fer.models.convit.model import build_convit

__all__ = ["CONFIGS", "GPSABlock", "GatedPositionalSelfAttention", "build_convit",
           "convit_backbone", "copy_convit_backbone", "load_timm_weights"]
