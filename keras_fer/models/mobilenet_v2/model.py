"""The MobileNetV2 classifier: the builder and the registration."""

from keras_fer.models import cnn_common
from keras_fer.models.mobilenet_v2.backbone import mobilenet_v2_backbone
from keras_fer.models.mobilenet_v2.convert import load_timm_weights
from keras_fer.models.registry import register_family


def build_mobilenetv2(arch, num_classes, input_shape, attention=None, attention_cutoff=None,
                      attention_options=None, width_multiplier=1.0, dropout=0.0, weights=None,
                      load_head="auto"):
    options = dict(attention=attention, attention_cutoff=attention_cutoff,
                   attention_options=attention_options, width_multiplier=width_multiplier)
    backbone = mobilenet_v2_backbone(input_shape, name=f"{arch}_backbone", **options)
    return cnn_common.build_classifier(backbone, arch, num_classes, input_shape, options,
                                       dropout, weights, load_head, load_timm_weights)


register_family(
    {"mobilenetv2": {}}, build_mobilenetv2, family="mobilenet_v2",
    default_input_shape=(224, 224, 3), timm_name="mobilenetv2_100",
    description="MobileNetV2, timm '{timm_name}' layer for layer (its weights convert; "
                "width_multiplier=0.5 matches 'mobilenetv2_050'); options: attention (seed "
                "002 hook: hfc, lfc, hfc+lfc, hfc+lfc+hl, bam), attention_cutoff, "
                "attention_options, width_multiplier, dropout, weights (timm safetensors), "
                "load_head.",
    # 64x64: at 32x32 the last block's 1x1 map in a batch of 2 leaves a BN beta without
    # gradient. Slow: ~40 s of tracing for 150 layers.
    test_options=dict(input_shape=(64, 64, 3), width_multiplier=0.35), test_slow=True)
