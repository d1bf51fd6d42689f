"""A strided 1x1 convolution that TensorFlow's oneDNN build computes without corrupting memory.

Why: with TensorFlow 2.21's default oneDNN on an AVX-512 CPU, the weight gradient of a 1x1
convolution with stride > 1 and fewer than 16 input channels (oneDNN's ``jit_1x1:avx512_core``
``backward_weights`` primitive, which first gathers the strided input: "rtus") writes past
its buffer. Training then dies a few steps later in an unrelated free() (SIGSEGV, ``double
free or corruption``, ``malloc(): invalid size``), typically once a batch of another size
(the odd last batch of an epoch) has been seen. Measured here (AMD EPYC, avx512_bf16):

* mini-Xception at width 1 (its residual shortcuts are 1x1 stride-2 convolutions from 8
  channels), 127 images in batches of 16: 5 of 5 runs crashed; Grad-CAM on 7 images too.
* A single ``Conv2D(16, 1, strides=2)`` on 4 or 8 input channels: crashes; on 16 or 24
  channels, with stride 1, or with a 3x3 kernel: never.
* ``ONEDNN_VERBOSE=1``: the last primitive before every crash is that backward_weights
  (``mb15_ic8oc16_ih44oh22kh1sh2``). ``TF_ENABLE_ONEDNN_OPTS=0`` or
  ``DNNL_MAX_CPU_ISA=AVX2`` avoid it process-wide (and slow every other layer down);
  oneDNN's primitive cache off (``ONEDNN_PRIMITIVE_CACHE_CAPACITY=0``) does not.

The depthwise convolutions first suspected (mini-Xception, MobileNetV2) are not involved: a
mini-Xception whose separable convolutions were replaced by plain ones still crashed, and
one whose depthwise convolutions ran without oneDNN's depthwise kernels still crashed.

The fix is exact and costs nothing measurable: a 1x1 convolution with stride s equals the
same convolution with stride 1 on every s-th pixel (``x[:, ::s, ::s]``; "same" padding adds
no pixels for a 1x1 kernel), and oneDNN's stride-1 path has no gather step.
``make_onednn_safe`` switches such layers of any model in place (only the instances' ``call``
changes; class, config and weights stay Keras' own), so models built by keras-hub,
``keras.applications`` or loaded from a ``.keras`` file are covered as well as the package's
own. Upstream: tensorflow/tensorflow#117700 (oneDNN memory corruption, TF 2.21) and the
oneDNN corruption reports linked in docs/training.md.
"""

import os
import types

import keras

from keras_fer.layers.walk import iter_layers


def strided_pointwise_call(layer, inputs):
    """What a strided 1x1 ``Conv2D``'s ``call`` computes, as subsampling then a stride-1
    convolution (see the module docstring)."""
    sh, sw = layer.strides
    outputs = keras.ops.conv(inputs[:, ::sh, ::sw, :], layer.kernel, strides=1,
                             padding="valid", dilation_rate=layer.dilation_rate)
    if layer.use_bias:
        outputs = outputs + layer.bias
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return outputs


def _needs_switch(layer):
    # Keras' own Conv2D only: a subclass (weight-standardised convolutions in the hybrid
    # ViT's ResNet stem) computes something else in its call, which must be kept.
    return (type(layer) is keras.layers.Conv2D
            and tuple(layer.kernel_size) == (1, 1) and tuple(layer.strides) != (1, 1)
            and layer.groups == 1 and layer.data_format == "channels_last"
            and not is_onednn_safe(layer))


def is_onednn_safe(layer):
    """True if ``make_onednn_safe`` switched ``layer``."""
    return bool(getattr(layer, "_keras_fer_onednn_safe", False))


def make_onednn_safe(model):
    """Switches every strided 1x1 ``Conv2D`` inside ``model`` (nested models and keras-hub
    backbones included) to ``strided_pointwise_call``, in place; returns how many layers were
    switched. Every model the package builds, loads or trains goes through it.

    Only the layer *instance*'s ``call`` changes: its class, config, weights and the names
    Keras gives them in ``.keras`` / ``.weights.h5`` files stay those of ``keras.layers.Conv2D``,
    so files move freely between switched and stock models (and stock Keras loads them). A
    model loaded with plain ``keras.saving.load_model`` is not switched: pass it through here
    (``keras_fer.models.load_model`` and ``zoo.load`` do).

    ``KERAS_FER_ONEDNN_WORKAROUND=0`` in the environment turns it off (to measure its cost, or
    to check whether a newer TensorFlow still needs it: ``tests/test_onednn_crash.py``)."""
    if os.environ.get("KERAS_FER_ONEDNN_WORKAROUND") == "0":
        return 0
    switched = 0
    for layer in iter_layers(model):
        if _needs_switch(layer):
            layer.call = types.MethodType(strided_pointwise_call, layer)
            layer._keras_fer_onednn_safe = True
            switched += 1
    return switched
