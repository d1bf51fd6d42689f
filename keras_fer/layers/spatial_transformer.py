"""Spatial transformer (Jaderberg et al. 2015): a learnt affine warp, the optional alignment step
in front of the Neural Resizer (seed 004, Table 2, setting (e)).
"""

import keras
from keras import ops

from keras_fer.validation import positive_int

_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def check_size(value, name):
    """``value`` as a ``(height, width)`` tuple of positive ints, or a ValueError naming it."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a (height, width) pair of positive integers, got "
                         f"{value!r}")
    return tuple(positive_int(v, name) for v in value)


def check_image_shape(input_shape, who):
    """A rank-4 channels-last shape with known channels, else a ValueError saying what is wanted."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 4 or input_shape[-1] is None:
        raise ValueError(f"{who} expects images of shape (batch, height, width, channels) with "
                         f"known channels, got shape {input_shape}")
    return input_shape


def affine_sample(images, theta, output_size=None):
    """Bilinear sampling of ``images`` on an affine grid (Jaderberg et al. 2015, Eqs. 1 and 5).

    ``theta`` (batch, 6) holds ``[a, b, c, d, e, f]``: the target point (x_t, y_t), in the
    normalised coordinates where the image spans [-1, 1] and pixel centres sit at
    (2i + 1) / n - 1, maps to the source point (a x_t + b y_t + c, d x_t + e y_t + f). Samples
    use the bilinear kernel max(0, 1 - |x - m|) of Eq. 5 over the image's pixels only, so points
    outside the image read zeros.

    The map is evaluated in source-pixel units around the image centre,
    ``x_s = a u + b (W / H) v + c W / 2 + (W - 1) / 2`` (u, v: target pixel centres relative to
    the centre, in source pixels), which is the same affine map rearranged so that the identity
    lands on integer pixel positions exactly: with the identity and ``output_size`` equal to
    the input size the output is bit-identical to the input (a normalise / denormalise round
    trip would be off by rounding and blend neighbours with weights of ~1e-7).
    """
    shape = ops.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    out_h, out_w = output_size if output_size is not None else (height, width)
    # Sampling positions in at least float32: half precision cannot address the pixels of
    # a 224-pixel image to better than ~1/8 pixel.
    dtype = "float64" if keras.backend.standardize_dtype(images.dtype) == "float64" else "float32"
    h, w = ops.cast(height, dtype), ops.cast(width, dtype)
    theta = ops.cast(theta, dtype)
    a, b, c, d, e, f = (theta[:, i, None, None] for i in range(6))

    u = (ops.arange(out_w, dtype=dtype) + 0.5) * (w / ops.cast(out_w, dtype)) - w / 2.0
    v = (ops.arange(out_h, dtype=dtype) + 0.5) * (h / ops.cast(out_h, dtype)) - h / 2.0
    u, v = u[None, None, :], v[None, :, None]
    xs = a * u + b * (w / h) * v + c * (w / 2.0) + (w - 1.0) / 2.0
    ys = d * (h / w) * u + e * v + f * (h / 2.0) + (h - 1.0) / 2.0

    # The four bilinear neighbours, stacked on a leading axis so one gather serves them all.
    x0, y0 = ops.floor(xs), ops.floor(ys)
    wx1, wy1 = xs - x0, ys - y0
    wx0, wy0 = 1.0 - wx1, 1.0 - wy1
    xx = ops.stack([x0, x0 + 1.0, x0, x0 + 1.0])
    yy = ops.stack([y0, y0, y0 + 1.0, y0 + 1.0])
    weights = ops.stack([wx0 * wy0, wx1 * wy0, wx0 * wy1, wx1 * wy1])
    inside = (xx >= 0) & (xx <= w - 1.0) & (yy >= 0) & (yy <= h - 1.0)
    weights = ops.where(inside, weights, ops.zeros_like(weights))
    xi = ops.clip(ops.cast(xx, "int32"), 0, width - 1)
    yi = ops.clip(ops.cast(yy, "int32"), 0, height - 1)
    base = ops.reshape(ops.arange(batch, dtype="int32") * (height * width), (1, -1, 1, 1))
    flat = ops.reshape(images, (-1, channels))
    values = ops.take(flat, ops.reshape(base + yi * width + xi, (-1,)), axis=0)
    values = ops.reshape(values, (4, batch, out_h, out_w, channels))
    return ops.sum(values * ops.cast(weights, images.dtype)[..., None], axis=0)


@keras.saving.register_keras_serializable(package="keras_fer")
class SpatialTransformer(keras.layers.Layer):
    """Spatial transformer network (Jaderberg et al. 2015): ``V = sample(U, A_theta(U))``.

    A small localisation net (conv 5x5 - ReLU - max-pool - conv 3x3 - ReLU - global average
    pool - dense - ReLU - dense) regresses the six affine parameters ``theta`` from the image,
    and ``affine_sample`` resamples the image on the warped grid with differentiable bilinear
    interpolation (zeros outside the image). The last dense has a zero kernel and the identity
    as bias (``transform_initializer="zeros"``), the initialisation Jaderberg et al. recommend:
    the layer starts as the exact identity, so putting it in front of a pretrained pipeline
    changes nothing until training moves it. Global pooling makes the localisation net work at
    any image size.

    Note that with the zero kernel only the last dense receives a gradient on the first step
    (the others are reached once its kernel is non-zero).

    Args:
        output_size: ``(height, width)`` of the output grid; ``None`` keeps the input size.
        filters: width of the first localisation conv (the second has twice as many).
        units: width of the localisation dense layer.
        transform_initializer: initializer of the kernel of the layer regressing ``theta``.

    Input ``(batch, height, width, channels)`` (channels last); output
    ``(batch, *output_size, channels)``.
    """

    def __init__(self, output_size=None, filters=8, units=32, transform_initializer="zeros",
                 **kwargs):
        super().__init__(**kwargs)
        self.output_size = None if output_size is None else check_size(output_size,
                                                                        "output_size")
        self.filters = positive_int(filters, "filters")
        self.units = positive_int(units, "units")
        self.transform_initializer = keras.initializers.get(transform_initializer)
        sub = {"dtype": self.dtype_policy}
        self.localization = [
            keras.layers.Conv2D(self.filters, 5, padding="same", activation="relu",
                                data_format="channels_last", name="loc_conv1", **sub),
            keras.layers.MaxPooling2D(2, padding="same", data_format="channels_last",
                                      name="loc_pool", **sub),
            keras.layers.Conv2D(2 * self.filters, 3, padding="same", activation="relu",
                                data_format="channels_last", name="loc_conv2", **sub),
            keras.layers.GlobalAveragePooling2D(data_format="channels_last", name="loc_gap",
                                                **sub),
            keras.layers.Dense(self.units, activation="relu", name="loc_dense", **sub),
            keras.layers.Dense(6, kernel_initializer=self.transform_initializer,
                               bias_initializer=keras.initializers.Constant(_IDENTITY),
                               name="theta", **sub),
        ]

    def build(self, input_shape):
        shape = check_image_shape(input_shape, "SpatialTransformer")
        for layer in self.localization:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def transform(self, inputs, training=None):
        """The affine parameters ``theta`` (batch, 6) the localisation net predicts."""
        x = inputs
        for layer in self.localization:
            x = layer(x, training=training)
        return x

    def call(self, inputs, training=None):
        return affine_sample(inputs, self.transform(inputs, training=training), self.output_size)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = check_image_shape(input_shape, "SpatialTransformer")
        if self.output_size is not None:
            height, width = self.output_size
        return (batch, height, width, channels)

    def get_config(self):
        config = super().get_config()
        config.update({
            "output_size": self.output_size,
            "filters": self.filters,
            "units": self.units,
            "transform_initializer": keras.initializers.serialize(self.transform_initializer),
        })
        return config
