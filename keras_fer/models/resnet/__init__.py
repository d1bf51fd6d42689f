"""ResNet18/34 classifiers (timm-compatible) with seed 002's attention hook."""

from keras_fer.models.resnet.backbone import ATTENTION_POINTS, DEPTHS, basic_block, resnet_backbone
from keras_fer.models.resnet.convert import load_timm_weights
from keras_fer.models.resnet.model import build_resnet

__all__ = ["ATTENTION_POINTS", "DEPTHS", "basic_block", "build_resnet", "load_timm_weights",
           "resnet_backbone"]
