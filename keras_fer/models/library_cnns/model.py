"""The library CNN classifiers: one builder over the family records, and the registrations.

The size table ``CONFIGS`` holds the options whose defaults an architecture records
(EfficientNet-B0's stochastic depth, the stock MobileNetV2's width); everything else about a
backbone is its ``LibraryFamily`` record (``backbone.py``, ``applications.py``).
"""

from keras_fer.models.library_cnns import applications, backbone
from keras_fer.models.library_cnns.applications import CAFFE_MEAN, CAFFE_STD
from keras_fer.models.library_cnns.common import build_library_classifier, is_keras_weights_file
from keras_fer.models.registry import HALF, register_family

FAMILIES = {family.arch: family for family in (
    backbone.VGG16, backbone.VGG19, backbone.RESNET50D, backbone.EFFICIENTNET_B0_FAMILY,
    backbone.XCEPTION, applications.INCEPTION_V3, applications.MOBILENET_V2_KERAS,
    applications.RESNET50_KERAS)}
CONFIGS = {"vgg16": {}, "vgg19": {}, "resnet50d": {},
           "efficientnet_b0": {"drop_connect_rate": 0.2}, "xception": {},
           "inception_v3": {}, "mobilenetv2_keras": {"alpha": 1.0}, "resnet50_keras": {}}


def build_library(arch, num_classes, input_shape, dropout=0.0, weights=None, load_head="auto",
                  **options):
    """``FAMILIES[arch]``'s classifier; ``options`` are its backbone's arguments."""
    return build_library_classifier(FAMILIES[arch], num_classes, input_shape, options, dropout,
                                    weights, load_head)


def build_inception_v3(arch, num_classes, input_shape, count_include_pad=None, dropout=0.0,
                       weights=None, load_head="auto"):
    """``count_include_pad=None``: timm's pooling when ``weights`` is a timm checkpoint."""
    if count_include_pad is None:
        count_include_pad = weights is not None and not is_keras_weights_file(weights)
    return build_library(arch, num_classes, input_shape, dropout, weights, load_head,
                         count_include_pad=count_include_pad)


def build_resnet50_keras(arch, num_classes, input_shape, dropout=0.0, weights=None,
                         load_head="auto", weights_bgr=False):
    """``weights_bgr``: reverse the stem's input channels after loading (Keras' BGR file)."""
    if not isinstance(weights_bgr, bool):
        raise ValueError(f"weights_bgr must be True or False, got {weights_bgr!r}")
    if weights_bgr and weights is None:
        raise ValueError("weights_bgr=True needs a weights file to reorder")
    return build_library_classifier(FAMILIES[arch], num_classes, input_shape, {}, dropout,
                                    weights, load_head, reverse_input_channels=weights_bgr)


def _register(archs, build=build_library, **spec):
    """Every library CNN: the builder, its size-table entries, and a slow full test at the
    smallest input it takes (a library backbone has no tiny size)."""
    register_family({arch: CONFIGS[arch] for arch in archs}, build, test_slow=True, **spec)


_HUB = "dropout (before the head), weights (timm safetensors or Keras .weights.h5), load_head"
_APPS = "dropout (before the head), weights (Keras weights file{timm}), load_head"

_register(("vgg16", "vgg19"), family="vgg", default_input_shape=(224, 224, 3),
          timm_name=lambda arch: arch,
          description=lambda arch: (
              f"VGG{arch[3:]} feature extractor (keras-hub VGGBackbone), timm '{arch}' features; "
              "global-average-pooled head instead of timm's ConvMlp pre-logits (seed 001)."
              f" Options: {_HUB}."),
          test_options=lambda arch: dict(input_shape=(32, 32, 1 if arch == "vgg19" else 3)))
_register(("resnet50d",), family="resnet", default_input_shape=(224, 224, 3),
          timm_name="resnet50d",
          description="ResNet50-D (deep stem, average-pool shortcuts; keras-hub ResNetBackbone "
                      f"'bottleneck_block_vd'), timm 'resnet50d' (seed 001). Options: {_HUB}.",
          test_options=dict(input_shape=(32, 32, 1)))
_register(("efficientnet_b0",), family="efficientnet", default_input_shape=(224, 224, 3),
          timm_name="efficientnet_b0",
          description="EfficientNet-B0 (keras-hub EfficientNetBackbone in timm's layout), timm "
                      f"'efficientnet_b0'. Options: drop_connect_rate (0.2), {_HUB}.",
          test_options=dict(input_shape=(32, 32, 3)))
_register(("xception",), family="xception", default_input_shape=(299, 299, 3), mean=HALF,
          std=HALF, timm_name="legacy_xception",
          description="Xception-41 (keras-hub XceptionBackbone, Keras' layout), timm "
                      "'legacy_xception' (exact when every max-pool input is odd, e.g. 71x71)."
                      f" Options: {_HUB}.",
          test_options=dict(input_shape=(32, 32, 1)))
_register(("inception_v3",), build_inception_v3, family="inception",
          default_input_shape=(299, 299, 3), mean=HALF, std=HALF, timm_name="inception_v3",
          description="InceptionV3 (keras.applications), seeds 000/004; input >= 75x75; timm "
                      "'inception_v3' weights convert. Options: count_include_pad (timm's "
                      "pooling; default: when weights is a timm checkpoint), "
                      + _APPS.format(timm=" or timm safetensors") + ".",
          test_options=dict(input_shape=(75, 75, 3)))
_register(("mobilenetv2_keras",), family="mobilenet_v2", default_input_shape=(224, 224, 3),
          mean=HALF, std=HALF,
          description="Stock keras.applications MobileNetV2 (no attention hook; see "
                      "'mobilenetv2' for the hooked, timm-compatible one). Options: alpha "
                      "(width), " + _APPS.format(timm="") + ".",
          test_options=dict(input_shape=(32, 32, 1)))
_register(("resnet50_keras",), build_resnet50_keras, family="resnet",
          default_input_shape=(224, 224, 3), mean=CAFFE_MEAN, std=CAFFE_STD,
          description="Stock keras.applications ResNet50 (Caffe-style v1, Caffe normalisation). "
                      "Options: weights_bgr (True for Keras' ImageNet file), "
                      + _APPS.format(timm="") + ".",
          test_options=dict(input_shape=(32, 32, 3)))
