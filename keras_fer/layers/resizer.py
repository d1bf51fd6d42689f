"""The Neural Resizer of seed 004 (Eq. 1), built on the learnt resizer of Talebi & Milanfar
("Learning to Resize Images for Computer Vision Tasks", 2021).
"""

import copy
import math
import numbers

import keras
from keras import ops

from keras_fer.layers.spatial_transformer import (
    SpatialTransformer,
    check_image_shape,
    check_size,
)
from keras_fer.validation import check_int, positive_int

_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "lanczos3", "lanczos5", "area")


def _check_interpolation(value, name):
    if value not in _INTERPOLATIONS:
        raise ValueError(f"{name} must be one of {_INTERPOLATIONS}, got {value!r}")
    return value


def resize_images(images, size, interpolation, dtype):
    """``keras.ops.image.resize`` in channels-last layout, cast back to ``dtype``.

    TensorFlow's interpolating resizers return float32 whatever they are given; the cast keeps
    float64 (gradient checks) and float16 (mixed precision) graphs in their own dtype.
    """
    resized = ops.image.resize(images, size, interpolation=interpolation,
                               data_format="channels_last")
    return ops.cast(resized, dtype)


class _ResidualBlock(keras.layers.Layer):
    """conv3x3 - BN - LeakyReLU - conv3x3 - BN, plus the input (Talebi & Milanfar, Fig. 3).

    The convolutions carry no bias: the batch normalisation right after each one has its own.
    """

    def __init__(self, filters, negative_slope, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = negative_slope
        sub = {"dtype": self.dtype_policy}
        self.conv1 = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                         data_format="channels_last", name="conv1", **sub)
        self.bn1 = keras.layers.BatchNormalization(name="bn1", **sub)
        self.conv2 = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                         data_format="channels_last", name="conv2", **sub)
        self.bn2 = keras.layers.BatchNormalization(name="bn2", **sub)

    def build(self, input_shape):
        for layer in (self.conv1, self.bn1, self.conv2, self.bn2):
            layer.build(input_shape)

    def call(self, inputs, training=None):
        x = self.bn1(self.conv1(inputs), training=training)
        x = ops.leaky_relu(x, self.negative_slope)
        x = self.bn2(self.conv2(x), training=training)
        return inputs + x

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="keras_fer")
class NeuralResizer(keras.layers.Layer):
    """Neural Resizer (seed 004, Eq. 1): ``f(I) = g(T(f_sr(I))) + T(f_sr(I))``.

    ``f_sr`` is a fixed super-resolution step, ``T`` a deterministic resize to the backbone's
    ``target_size`` and ``g`` the trainable residual branch of Talebi & Milanfar's learnt
    resizer, which computes on the high-resolution image and resizes its own features:

        hr = f_sr(I);   base = T(hr)
        h  = LeakyReLU(conv7x7(hr));  h = BN(LeakyReLU(conv1x1(h)))       (g_phi of Eq. 1)
        r  = T(h);      h = r
        h  = residual_block(h)  x num_res_blocks                         (g_theta of Eq. 1)
        h  = BN(conv3x3(h)) + r
        out = conv7x7_to_channels(h) + base

    Reading of Eq. 1: seed 004 writes ``g_theta o T(f_sr(I)) o g_phi + T(f_sr(I))``, i.e. a
    trainable part before the resize (``g_phi``) and one after it (``g_theta``); that is the
    learnt-resizer layout above, with ``T`` resizing ``g_phi``'s features inside the branch and
    the image on the skip path. ``T`` uses the same ``interpolation`` in both places.

    ``f_sr`` (pluggable): by default a deterministic upscaler (``sr_interpolation``, bicubic)
    by ``sr_scale``, standing in for the face super-resolution network (DIC) seed 004 used,
    which is not available offline; ``sr_scale=None`` skips the step. A Keras layer or model
    passed as ``super_resolution`` replaces it (``sr_scale`` is then unused): it is frozen
    (``trainable=False``, since seed 004 keeps f_sr out of the parameter update), always run in
    inference mode, and saved with the resizer through ``keras.saving``. It may change the
    channel count; the output has the channels of ``f_sr``'s output.

    ``use_stn=True`` puts a ``SpatialTransformer`` (identity at initialisation) in front of
    ``f_sr`` to align faces before super-resolution (seed 004, Table 2 (e)).

    Args:
        target_size: ``(height, width)`` of the output, the backbone's input size.
        sr_scale: factor of the interpolating upscaler (seed 004: 48 -> 384, i.e. 8; the
            default 2 keeps the branch's full-resolution convolutions cheap); the upscaled
            size is ``floor(size * sr_scale + 0.5)``. ``None`` skips super-resolution. Unused
            when ``super_resolution`` is a layer.
        super_resolution: ``None`` (interpolating upscaler) or a Keras layer/model for f_sr.
        interpolation: method of ``T`` (default ``"bilinear"``, as in the learnt resizer).
        sr_interpolation: method of the interpolating upscaler (default ``"bicubic"``).
        filters: width of the residual branch (16 in Talebi & Milanfar).
        num_res_blocks: number of residual blocks (>= 0).
        negative_slope: slope of the LeakyReLUs (0.2 in Talebi & Milanfar).
        use_stn: put a ``SpatialTransformer`` in front.

    Input ``(batch, height, width, channels)`` (grey or RGB, channels last; the height and
    width must be known when the interpolating upscaler is used); output
    ``(batch, *target_size, channels of f_sr)``.
    """

    def __init__(self, target_size, sr_scale=2.0, super_resolution=None,
                 interpolation="bilinear", sr_interpolation="bicubic", filters=16,
                 num_res_blocks=1, negative_slope=0.2, use_stn=False, **kwargs):
        super().__init__(**kwargs)
        self.target_size = check_size(target_size, "target_size")
        if isinstance(super_resolution, dict):
            # deserialize_keras_object consumes nested config dicts: work on a copy.
            super_resolution = keras.saving.deserialize_keras_object(
                copy.deepcopy(super_resolution))
        if super_resolution is not None and not isinstance(super_resolution, keras.layers.Layer):
            raise ValueError("super_resolution must be None or a keras Layer/Model, got "
                             f"{type(super_resolution).__name__}")
        if super_resolution is None and sr_scale is not None:
            if (isinstance(sr_scale, bool) or not isinstance(sr_scale, numbers.Real)
                    or not math.isfinite(sr_scale) or not sr_scale > 0):
                raise ValueError(f"sr_scale must be a finite number > 0 or None, got "
                                 f"{sr_scale!r}")
            sr_scale = float(sr_scale)
        self.sr_scale = None if super_resolution is not None else sr_scale
        self.super_resolution = super_resolution
        if super_resolution is not None:
            super_resolution.trainable = False
        self.interpolation = _check_interpolation(interpolation, "interpolation")
        self.sr_interpolation = _check_interpolation(sr_interpolation, "sr_interpolation")
        self.filters = positive_int(filters, "filters")
        self.num_res_blocks = check_int(num_res_blocks, "num_res_blocks", minimum=0)
        if (isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real)
                or not negative_slope >= 0):
            raise ValueError(f"negative_slope must be a number >= 0, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)
        if not isinstance(use_stn, bool):
            raise ValueError(f"use_stn must be True or False, got {use_stn!r}")
        self.use_stn = use_stn

        sub = {"dtype": self.dtype_policy}
        conv = keras.layers.Conv2D
        self.stn = SpatialTransformer(name="stn", **sub) if use_stn else None
        self.stem = conv(self.filters, 7, padding="same", data_format="channels_last",
                         name="stem_conv7x7", **sub)
        self.pointwise = conv(self.filters, 1, padding="same", data_format="channels_last",
                              name="stem_conv1x1", **sub)
        self.stem_bn = keras.layers.BatchNormalization(name="stem_bn", **sub)
        self.blocks = [_ResidualBlock(self.filters, self.negative_slope, name=f"res_block_{i}",
                                      **sub) for i in range(self.num_res_blocks)]
        self.merge_conv = conv(self.filters, 3, padding="same", use_bias=False,
                               data_format="channels_last", name="merge_conv3x3", **sub)
        self.merge_bn = keras.layers.BatchNormalization(name="merge_bn", **sub)
        # Built in build(), once the channel count of f_sr's output is known.
        self.out_conv = None

    def _sr_shape(self, input_shape):
        if self.super_resolution is not None:
            return tuple(self.super_resolution.compute_output_shape(input_shape))
        if self.sr_scale is None:
            return input_shape
        batch, height, width, channels = input_shape
        if height is None or width is None:
            raise ValueError("NeuralResizer with the interpolating upscaler needs images of "
                             "known height and width, (batch, height, width, channels); got "
                             f"shape {input_shape}")
        # Half rounds up (Python's round() would send 4.5 to 4 but 7.5 to 8).
        return (batch, max(1, math.floor(height * self.sr_scale + 0.5)),
                max(1, math.floor(width * self.sr_scale + 0.5)), channels)

    def build(self, input_shape):
        input_shape = check_image_shape(input_shape, "NeuralResizer")
        if self.stn is not None:
            self.stn.build(input_shape)
        if self.super_resolution is not None and not self.super_resolution.built:
            self.super_resolution.build(input_shape)
        sr_shape = check_image_shape(self._sr_shape(input_shape), "NeuralResizer's f_sr output")
        self.out_conv = keras.layers.Conv2D(sr_shape[-1], 7, padding="same",
                                            data_format="channels_last", name="out_conv7x7",
                                            dtype=self.dtype_policy)
        feature_shape = (None, None, None, self.filters)
        self.stem.build((None, None, None, sr_shape[-1]))
        for layer in (self.pointwise, self.stem_bn, *self.blocks, self.merge_conv,
                      self.merge_bn, self.out_conv):
            layer.build(feature_shape)

    def super_resolve(self, images):
        """``f_sr``: the fixed super-resolution step (identity when skipped)."""
        if self.super_resolution is not None:
            return ops.cast(self.super_resolution(images, training=False), self.compute_dtype)
        if self.sr_scale is None:
            return images
        _, height, width, _ = self._sr_shape(tuple(images.shape))
        return resize_images(images, (height, width), self.sr_interpolation, self.compute_dtype)

    def call(self, inputs, training=None):
        x = inputs
        if self.stn is not None:
            x = self.stn(x, training=training)
        hr = self.super_resolve(x)
        base = resize_images(hr, self.target_size, self.interpolation, self.compute_dtype)

        h = ops.leaky_relu(self.stem(hr), self.negative_slope)
        h = self.stem_bn(ops.leaky_relu(self.pointwise(h), self.negative_slope),
                         training=training)
        resized = resize_images(h, self.target_size, self.interpolation, self.compute_dtype)
        h = resized
        for block in self.blocks:
            h = block(h, training=training)
        h = self.merge_bn(self.merge_conv(h), training=training) + resized
        return self.out_conv(h) + base

    def compute_output_shape(self, input_shape):
        input_shape = check_image_shape(input_shape, "NeuralResizer")
        channels = self._sr_shape(input_shape)[-1]
        return (input_shape[0], *self.target_size, channels)

    def get_config(self):
        config = super().get_config()
        config.update({
            "target_size": self.target_size,
            "sr_scale": self.sr_scale,
            "super_resolution": (None if self.super_resolution is None else
                                 keras.saving.serialize_keras_object(self.super_resolution)),
            "interpolation": self.interpolation,
            "sr_interpolation": self.sr_interpolation,
            "filters": self.filters,
            "num_res_blocks": self.num_res_blocks,
            "negative_slope": self.negative_slope,
            "use_stn": self.use_stn,
        })
        return config
