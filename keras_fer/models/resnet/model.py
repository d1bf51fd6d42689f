"""ResNet18/34 classifiers: the builder and the registration (depths: ``backbone.DEPTHS``)."""

from keras_fer.models import cnn_common
from keras_fer.models.registry import register_family
from keras_fer.models.resnet.backbone import DEPTHS, resnet_backbone
from keras_fer.models.resnet.convert import load_timm_weights


def build_resnet(arch, num_classes, input_shape, attention=None, attention_cutoff=None,
                 attention_options=None, small_input=False, width_multiplier=1.0, stem_pool=True,
                 dropout=0.0, weights=None, load_head="auto"):
    """A ResNet ``FERClassifier``; ``weights`` is an optional timm checkpoint (safetensors
    file or ``save_for_hf`` folder), see ``load_timm_weights``."""
    options = dict(attention=attention, attention_cutoff=attention_cutoff,
                   attention_options=attention_options, small_input=bool(small_input),
                   width_multiplier=width_multiplier, stem_pool=bool(stem_pool))
    backbone = resnet_backbone(input_shape, DEPTHS[arch], name=f"{arch}_backbone", **options)
    return cnn_common.build_classifier(backbone, arch, num_classes, input_shape, options,
                                       dropout, weights, load_head, load_timm_weights)


# The depths are structure, not options (no option sets them), so the entries are empty.
register_family(
    {arch: {} for arch in DEPTHS}, build_resnet, family="resnet",
    default_input_shape=(224, 224, 3), timm_name=lambda arch: arch,
    description=lambda arch: (
        f"{arch[len('resnet'):]}-layer basic-block ResNet, timm '{{timm_name}}' layer for layer "
        "(its weights convert); options: attention (seed 002 hook: hfc, lfc, hfc+lfc, "
        "hfc+lfc+hl, bam), attention_cutoff, attention_options, small_input (3x3 stride-1 "
        "stem for 48x48), stem_pool (False: no stem max-pool, 4x the compute), "
        "width_multiplier (0.25: 16-128 channels), dropout, weights (timm safetensors), "
        "load_head."),
    test_options=dict(input_shape=(32, 32, 3), attention="hfc", attention_cutoff=0.0,
                      width_multiplier=0.25),
    test_slow=lambda arch: arch != "resnet18")
