"""keras.applications families: InceptionV3, MobileNetV2 (stock), ResNet50.

The stock Keras models with ``include_top=False`` and ``weights=None`` (nothing is
downloaded) as ``FERClassifier`` backbones. ``weights=`` takes a Keras weights file of the
same backbone (e.g. keras.applications' ``*_notop.h5`` fetched once by the user), and for
InceptionV3 also a timm checkpoint.

Family notes:

- InceptionV3 (seed 000's classifier and the seed-004-era baseline): default input 299x299;
  the smallest input Keras builds is 75x75 (use 75 or 96 on a CPU). timm's ``inception_v3``
  weights convert (BN gamma folded into the convolutions, since Keras' BN here has no scale;
  see ``convert.py``). One convention differs: the pool branches of the mixed blocks (3x3
  average pooling, stride 1, padding 1) divide border windows by the number of real pixels in
  Keras (TensorFlow's "same" pooling) but always by 9 in timm (PyTorch's
  ``count_include_pad=True``). With random weights the logits differ by 16% (relative) at
  75x75 and 0.5% at 299x299. ``count_include_pad=True`` swaps those nine pooling layers for
  :class:`ZeroPaddedAveragePooling2D` (timm's convention), which makes the model equal to timm's
  exactly; the default (None) chooses it when ``weights`` is a timm checkpoint and keeps Keras'
  pooling otherwise (Keras' own ImageNet weights were trained with it). The choice is recorded
  in ``arch_options``.
- MobileNetV2 (``mobilenetv2_keras``): the stock Keras model, no attention hook (keras-fer's
  own hooked, timm-compatible one is ``mobilenetv2``). No timm conversion: Keras pads strided
  convolutions asymmetrically ((0, 1) on even inputs) where timm pads (1, 1), so timm weights
  would load but compute a shifted function.
- ResNet50 (``resnet50_keras``): the Keras (Caffe-style) ResNet50 v1, stride 2 in the first
  1x1 convolution of a downsampling block and biases on every convolution, unlike timm's
  ``resnet50`` (stride on the 3x3, no biases): no exact timm counterpart. Its normalisation is
  Keras' "caffe" mode (ImageNet mean subtracted on the 0-255 scale, no division);
  ``weights_bgr=True`` reverses the stem's input channels after loading Keras' own ImageNet
  file, which was trained on BGR images, so the model takes RGB like every keras-fer model.
"""

import keras
from keras import ops

from keras_fer.models.library_cnns import convert
from keras_fer.models.library_cnns.common import LibraryFamily

# Keras' "caffe" preprocessing in keras-fer's terms: x - 255 * mean (RGB order), std 1/255.
CAFFE_MEAN = (123.68 / 255.0, 116.779 / 255.0, 103.939 / 255.0)
CAFFE_STD = (1.0 / 255.0,) * 3


@keras.saving.register_keras_serializable(package="keras_fer")
class ZeroPaddedAveragePooling2D(keras.layers.Layer):
    """Stride-1 average pooling over a zero-padded input, "same" size out: every window is
    divided by ``pool_size**2``, padding included (PyTorch's ``avg_pool2d(..., padding=k//2)``
    with its default ``count_include_pad=True``), where Keras' "same" pooling divides border
    windows by the count of real pixels. Channels last."""

    def __init__(self, pool_size=3, **kwargs):
        super().__init__(**kwargs)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1 \
                or pool_size % 2 == 0:
            raise ValueError(f"pool_size must be an odd integer >= 1, got {pool_size!r}")
        self.pool_size = pool_size

    def call(self, inputs):
        pad = self.pool_size // 2
        x = ops.pad(inputs, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        return ops.average_pool(x, self.pool_size, strides=1, padding="valid",
                                data_format="channels_last")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


def inception_v3_backbone(input_shape, count_include_pad=False):
    """keras.applications' InceptionV3 without top; ``count_include_pad=True`` clones it with
    its 3x3/stride-1 "same" average pools replaced by ``ZeroPaddedAveragePooling2D`` (timm's
    pooling; the layers keep their names)."""
    if not isinstance(count_include_pad, bool):
        raise ValueError(f"count_include_pad must be True, False or None, got "
                         f"{count_include_pad!r}")
    model = keras.applications.InceptionV3(include_top=False, weights=None,
                                           input_shape=tuple(input_shape),
                                           name="inception_v3_backbone")
    if not count_include_pad:
        return model

    def swap_pool(layer):
        if isinstance(layer, keras.layers.AveragePooling2D) and layer.padding == "same" \
                and tuple(layer.strides) == (1, 1):
            return ZeroPaddedAveragePooling2D(layer.pool_size[0], name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(model, clone_function=swap_pool)


def mobilenet_v2_backbone(input_shape, alpha=1.0):
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    return keras.applications.MobileNetV2(input_shape=tuple(input_shape), alpha=float(alpha),
                                          include_top=False, weights=None,
                                          name="mobilenetv2_keras_backbone")


def resnet50_keras_backbone(input_shape):
    return keras.applications.ResNet50(include_top=False, weights=None,
                                       input_shape=tuple(input_shape),
                                       name="resnet50_keras_backbone")


# keras.applications' own minimum sizes (75 for InceptionV3, 32 for the others).
INCEPTION_V3 = LibraryFamily(
    arch="inception_v3", make_backbone=inception_v3_backbone, min_size=75, stem=None,
    timm_arch="inception_v3", timm_convert=convert.convert_inception_v3, head_prefix="fc",
    ignore_prefixes=("AuxLogits.",))
MOBILENET_V2_KERAS = LibraryFamily(
    arch="mobilenetv2_keras", make_backbone=mobilenet_v2_backbone, min_size=32, stem="Conv1")
RESNET50_KERAS = LibraryFamily(
    arch="resnet50_keras", make_backbone=resnet50_keras_backbone, min_size=32,
    stem="conv1_conv")
