"""ViT (vit_*_patch16) and DeiT (deit_*_patch16) classifiers on keras-hub's ViTBackbone."""

from keras_fer.models.vit.backbone import CONFIGS, vit_backbone
from keras_fer.models.vit.convert import copy_vit_backbone, load_timm_weights
from keras_fer.models.vit.model import build_vit

__all__ = ["CONFIGS", "build_vit", "copy_vit_backbone", "load_timm_weights", "vit_backbone"]
