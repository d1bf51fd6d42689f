"""Pieces both generator architectures share: inputs, conditions, scaling, the decoder.

Conditions. A generator is conditioned on one or more one-hot *groups* (the paper's metadata
"L x D": emotion, optionally subject, makeup, occlusion). Each group is its own model input,
named after the group, so a saved model describes itself: ``condition_groups(model)`` reads
the names and widths back from its inputs (the first input is always the image). Inside the
model the groups are concatenated into one metadata vector ``c``.

Scaling. Images enter and leave the model as floats in [0, 1]. With ``standardize=True`` (the
author's ``generic_mean_std_scale2D``) each image is standardised by its own mean and standard
deviation before the encoder, and the decoder's output is mapped back with the *input's* mean
and standard deviation: brightness and contrast are copied from the input, and the network
only has to model the shape of the face, which is what the expression changes.

Decoder (paper Eqs. 7-10, the same for both architectures): ``LrReLU -> Dense(2m + 1) ->
LrReLU -> Dense(output)``. The first two are one :class:`~keras_fer.layers.LrReLUDense`
(Eq. 8, ``W relu(A x) + b``, which is exactly LrReLU followed by Dense), then
:class:`~keras_fer.layers.LrReLU` and a linear Dense to the pixels. ``2m + 1`` is the width of
the Kolmogorov-Arnold superposition (Eq. 10) of a function of ``m`` variables; ``m`` is the
width of what the decoder reads: the bottleneck, plus the re-injected conditions when the
architecture passes them on (the author's residual layers append the metadata to the
bottleneck's output, so the decoder is a function of both).
"""

import collections
import math

import keras
from keras import ops

from keras_fer.layers import LrReLU, LrReLUDense
from keras_fer.validation import positive_int

IMAGE_INPUT = "image"
DEFAULT_GROUP = "condition"
AXES = ("batch", "tokens")


# ---- argument checks ----------------------------------------------------------------------

def check_axis(axis):
    if axis not in AXES:
        raise ValueError(f'axis must be "batch" (the author\'s BPC across the mini-batch) or '
                         f'"tokens" (batch-invariant), got {axis!r}')
    return axis


def check_input_shape(input_shape):
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (shape is None or len(shape) != 3
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape)):
        raise ValueError(f"input_shape must be (height, width, channels) of positive integers, "
                         f"got {input_shape!r}")
    return shape


def parse_condition_groups(num_conditions):
    """``{group: width}`` from an int (one group, "condition") or a mapping/sequence of pairs.

    Group names become Keras input names, so they must be identifiers and not "image".
    """
    if isinstance(num_conditions, int) and not isinstance(num_conditions, bool):
        groups = [(DEFAULT_GROUP, num_conditions)]
    elif isinstance(num_conditions, dict):
        groups = list(num_conditions.items())
    elif isinstance(num_conditions, (list, tuple)) and all(
            isinstance(g, (list, tuple)) and len(g) == 2 for g in num_conditions):
        groups = [tuple(g) for g in num_conditions]
    else:
        raise ValueError(f"num_conditions must be an integer >= 1 or a mapping "
                         f"{{group name: width}}, got {num_conditions!r}")
    if not groups:
        raise ValueError("num_conditions must name at least one condition group, got none")
    parsed = collections.OrderedDict()
    for name, width in groups:
        if not isinstance(name, str) or not name.isidentifier() or name == IMAGE_INPUT:
            raise ValueError(f"num_conditions group names must be identifiers other than "
                             f"{IMAGE_INPUT!r}, got {name!r}")
        if name in parsed:
            raise ValueError(f"num_conditions repeats the group {name!r}")
        parsed[name] = positive_int(width, f"num_conditions[{name!r}]")
    return parsed


def condition_groups(model):
    """``{group: width}`` of a generator model, read from its inputs (after the image)."""
    inputs = model.inputs
    if len(inputs) < 2 or inputs[0].name != IMAGE_INPUT:
        raise ValueError(f"model {model.name!r} is not a keras_fer generator: it needs an "
                         f"{IMAGE_INPUT!r} input followed by one-hot condition inputs")
    return collections.OrderedDict((t.name, int(t.shape[-1])) for t in inputs[1:])


def round_up(value, multiple):
    return int(math.ceil(value / multiple) * multiple)


def default_patch_size(height, width):
    """The largest common divisor ``p`` of H and W with ``p <= max(H, W) / 5``.

    The paper's 100 x 100 image is cut into a 5 x 5 grid of 20 x 20 patches; this gives the
    same grid where the size allows and the nearest finer one otherwise (48 -> 8, 28 -> 4,
    96 -> 16).
    """
    g = math.gcd(height, width)
    limit = max(height, width) / 5
    return max([p for p in range(1, g + 1) if g % p == 0 and p <= limit] or [1])


# ---- per-image standardisation -----------------------------------------------------------

def _image_moments(x, epsilon):
    axes = tuple(range(1, len(x.shape)))
    mean = ops.mean(x, axis=axes, keepdims=True)
    var = ops.mean(ops.square(x - mean), axis=axes, keepdims=True)
    # max(var, eps^2) under the root keeps a flat image finite (and its gradient).
    return mean, ops.sqrt(ops.maximum(var, epsilon**2))


def _check_epsilon(epsilon):
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise ValueError(f"epsilon must be a number > 0, got {epsilon!r}")
    return float(epsilon)


@keras.saving.register_keras_serializable(package="keras_fer")
class ImageStandardization(keras.layers.Layer):
    """``(x - mean(x)) / std(x)`` per sample, over all of its pixels and channels.

    The author's ``generic_mean_std_scale2D``: every image is brought to zero mean and unit
    variance on its own, so the encoder sees shape rather than exposure. ``std`` is clamped
    below by ``epsilon`` (a flat image maps to zeros, not NaN).
    """

    def __init__(self, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = _check_epsilon(epsilon)

    def call(self, inputs):
        mean, std = _image_moments(inputs, self.epsilon)
        return (inputs - mean) / std

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config


@keras.saving.register_keras_serializable(package="keras_fer")
class ImageDestandardization(keras.layers.Layer):
    """``y * std(reference) + mean(reference)`` per sample: inverse of
    :class:`ImageStandardization` with the statistics of another tensor.

    Called on ``[decoded, input_image]``: the generated image gets the brightness and contrast
    of the image it was generated from (the author's ``generic_mean_std_rescale2D`` with the
    input's stored mean and std).
    """

    def __init__(self, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = _check_epsilon(epsilon)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError("ImageDestandardization expects [values, reference], two tensors "
                             "of the same shape")
        values, reference = inputs
        mean, std = _image_moments(reference, self.epsilon)
        return values * std + mean

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config


# ---- model assembly ----------------------------------------------------------------------

def make_inputs(input_shape, groups):
    """The image input and one input per condition group; the concatenated metadata ``c``."""
    image = keras.Input(shape=input_shape, name=IMAGE_INPUT)
    conditions = [keras.Input(shape=(width,), name=name) for name, width in groups.items()]
    if len(conditions) == 1:
        metadata = conditions[0]
    else:
        metadata = keras.layers.Concatenate(name="metadata")(conditions)
    return image, conditions, metadata


def with_metadata(x, metadata, name):
    """The residual re-injection of the paper: ``x`` with the metadata appended."""
    return keras.layers.Concatenate(name=name)([x, metadata])


def encoder_input(image, standardize, epsilon):
    if standardize:
        return ImageStandardization(epsilon=epsilon, name="standardize")(image)
    return image


def build_decoder(z, image, input_shape, hidden_units, per_connection, standardize, epsilon):
    """LrReLU -> Dense(hidden) (one LrReLUDense, Eq. 8) -> LrReLU -> Dense(pixels) -> image."""
    width = int(z.shape[-1])
    hidden = 2 * width + 1 if hidden_units is None else positive_int(
        hidden_units, "hidden_units")
    x = LrReLUDense(hidden, per_connection=per_connection, name="decoder_expand")(z)
    x = LrReLU(name="decoder_lrrelu")(x)
    x = keras.layers.Dense(math.prod(input_shape), name="decoder_output")(x)
    x = keras.layers.Reshape(input_shape, name="decoder_image")(x)
    if standardize:
        x = ImageDestandardization(epsilon=epsilon, name="destandardize")([x, image])
    return x


def uses_batch_axis(model):
    """True if any attention layer of ``model`` attends across the mini-batch."""
    return any(getattr(layer, "axis", None) == "batch" for layer in model.layers)
