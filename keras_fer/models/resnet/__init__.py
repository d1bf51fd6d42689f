"""ResNet18/34 classifiers (timm-compatible) with seed 002's attention hook."""

from keras_fer.models import cnn_common
from keras_fer.models.registry import register_architecture
from keras_fer.models.resnet.backbone import (
    ATTENTION_POINTS,
    DEPTHS,
    basic_block,
    resnet_backbone,
)
from keras_fer.models.resnet.convert import load_timm_weights


def build_resnet(arch, num_classes, input_shape, attention=None, attention_cutoff=None,
                 attention_options=None, small_input=False, width_multiplier=1.0, dropout=0.0,
                 weights=None, load_head="auto"):
    """A ResNet ``FERClassifier``; ``weights`` is an optional timm checkpoint (safetensors
    file or ``save_for_hf`` folder), see ``load_timm_weights``."""
    options = dict(attention=attention, attention_cutoff=attention_cutoff,
                   attention_options=attention_options, small_input=bool(small_input),
                   width_multiplier=width_multiplier)
    backbone = resnet_backbone(input_shape, DEPTHS[arch], name=f"{arch}_backbone", **options)
    return cnn_common.build_classifier(backbone, arch, num_classes, input_shape, options,
                                       dropout, weights, load_head, load_timm_weights)


_DOC = ("{depth}-layer basic-block ResNet, timm '{arch}' layer for layer (its weights "
        "convert); options: attention (seed 002 hook: hfc, lfc, hfc+lfc, hfc+lfc+hl, bam), "
        "attention_cutoff, attention_options, small_input (3x3 stride-1 stem for 48x48), "
        "width_multiplier (0.25: 16-128 channels), dropout, weights (timm safetensors), "
        "load_head.")


@register_architecture("resnet18", family="resnet", default_input_shape=(224, 224, 3),
                       description=_DOC.format(depth=18, arch="resnet18"), timm_name="resnet18")
def resnet18(num_classes=7, input_shape=(224, 224, 3), **options):
    return build_resnet("resnet18", num_classes, input_shape, **options)


@register_architecture("resnet34", family="resnet", default_input_shape=(224, 224, 3),
                       description=_DOC.format(depth=34, arch="resnet34"), timm_name="resnet34")
def resnet34(num_classes=7, input_shape=(224, 224, 3), **options):
    return build_resnet("resnet34", num_classes, input_shape, **options)
