"""MobileNetV2 classifier (timm-compatible) with seed 002's attention hook."""

from keras_fer.models.mobilenet_v2.backbone import (
    ATTENTION_POINTS,
    STAGES,
    inverted_residual,
    mobilenet_v2_backbone,
)
from keras_fer.models.mobilenet_v2.convert import load_timm_weights
from keras_fer.models.mobilenet_v2.model import build_mobilenetv2

__all__ = ["ATTENTION_POINTS", "STAGES", "build_mobilenetv2", "inverted_residual",
           "load_timm_weights", "mobilenet_v2_backbone"]
