"""MobileNetV2 classifier (timm-compatible) with seed 002's attention hook."""

from keras_fer.models import cnn_common
from keras_fer.models.mobilenet_v2.backbone import (
    ATTENTION_POINTS,
    STAGES,
    inverted_residual,
    mobilenet_v2_backbone,
)
from keras_fer.models.mobilenet_v2.convert import load_timm_weights
from keras_fer.models.registry import register_architecture


@register_architecture(
    "mobilenetv2", family="mobilenet_v2", default_input_shape=(224, 224, 3),
    timm_name="mobilenetv2_100",
    description="MobileNetV2, timm 'mobilenetv2_100' layer for layer (its weights convert; "
                "width_multiplier=0.5 matches 'mobilenetv2_050'); options: attention (seed "
                "002 hook: hfc, lfc, hfc+lfc, hfc+lfc+hl, bam), attention_cutoff, "
                "attention_options, width_multiplier, dropout, weights (timm safetensors), "
                "load_head.")
def mobilenetv2(num_classes=7, input_shape=(224, 224, 3), attention=None,
                attention_cutoff=None, attention_options=None, width_multiplier=1.0,
                dropout=0.0, weights=None, load_head="auto"):
    options = dict(attention=attention, attention_cutoff=attention_cutoff,
                   attention_options=attention_options, width_multiplier=width_multiplier)
    backbone = mobilenet_v2_backbone(input_shape, name="mobilenetv2_backbone", **options)
    return cnn_common.build_classifier(backbone, "mobilenetv2", num_classes, input_shape,
                                       options, dropout, weights, load_head, load_timm_weights)
