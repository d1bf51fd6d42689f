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
``make_onednn_safe`` switches such layers of any model in place (only their class changes,
to a subclass with the same weights and config), so models built by keras-hub,
``keras.applications`` or loaded from a ``.keras`` file are covered as well as the package's
own. Upstream: tensorflow/tensorflow#117700 (oneDNN memory corruption, TF 2.21) and the
oneDNN corruption reports linked in docs/training.md.
"""

import os

import keras

from keras_fer.layers.walk import iter_layers


@keras.saving.register_keras_serializable(package="keras_fer")
class StridedPointwiseConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with a 1x1 kernel and stride > 1, computed as subsampling then a
    stride-1 convolution (see the module docstring). Same arguments, weights and outputs."""

    def call(self, inputs):
        if self.data_format != "channels_last" or self.groups != 1:
            return super().call(inputs)
        sh, sw = self.strides
        outputs = keras.ops.conv(inputs[:, ::sh, ::sw, :], self.kernel, strides=1,
                                 padding="valid", dilation_rate=self.dilation_rate)
        if self.use_bias:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


def _needs_switch(layer):
    return (type(layer) is keras.layers.Conv2D and tuple(layer.kernel_size) == (1, 1)
            and tuple(layer.strides) != (1, 1))


def make_onednn_safe(model):
    """Switches every strided 1x1 ``Conv2D`` inside ``model`` (nested models and keras-hub
    backbones included) to ``StridedPointwiseConv2D``, in place; returns how many layers were
    switched. Every model the package builds, loads or trains goes through it.

    ``KERAS_FER_ONEDNN_WORKAROUND=0`` in the environment turns it off (to measure its cost, or
    to check whether a newer TensorFlow still needs it: ``tests/test_onednn_crash.py``)."""
    if os.environ.get("KERAS_FER_ONEDNN_WORKAROUND") == "0":
        return 0
    switched = 0
    for layer in iter_layers(model):
        if _needs_switch(layer):
            layer.__class__ = StridedPointwiseConv2D
            switched += 1
    return switched
