"""Swin Transformer classifiers (swin_*_patch4_window7), timm-compatible, any input size."""

from keras_fer.models.swin.backbone import (
    CONFIGS,
    PatchMerging,
    SwinBlock,
    WindowAttention,
    swin_backbone,
)
from keras_fer.models.swin.convert import copy_swin_backbone, load_timm_weights
from keras_fer.models.swin.model import build_swin

__all__ = ["CONFIGS", "PatchMerging", "SwinBlock", "WindowAttention", "build_swin",
           "copy_swin_backbone", "load_timm_weights", "swin_backbone"]
