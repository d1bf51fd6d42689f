"""The app's input side: images from files or arrays, face crops to model inputs.

* ``load_image``: a file is read exactly as training images are
  (``keras_fer.datasets.image_io.load_pixels_from_path``); an array is validated.
* ``CropPreprocessor``: face crops of any size -> the model's input, by the training
  pipeline's own standardisation (``keras_fer.datasets.pipeline.standardize_image``: RGB ->
  grey with the Rec. 601 luma weights computed in float; bilinear resize with antialiasing;
  rounded to uint8), then grey replicated to 3 channels for an RGB model. A classifier is
  only as good as the agreement between the pixels it was trained on and the pixels it is
  served, so the app calls the pipeline's own function instead of a look-alike (OpenCV's
  ``INTER_AREA`` resize differs by up to tens of grey levels on single pixels of a
  downscaled face).
* ``standardize_numpy``: the same standardisation in NumPy, bytewise equal and ten times
  cheaper per crop than a TensorFlow call.
"""

import functools
import os

import numpy as np

from keras_fer.validation import is_path

#: The bundled public-domain face photo (see ``keras_fer/assets/README.md``).
SAMPLE_IMAGE = "grace_hopper.jpg"


def sample_image_path():
    """Path of the bundled sample photo (a public-domain portrait with one frontal face)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(package, "assets", SAMPLE_IMAGE)


def load_image(image_or_path):
    """uint8 (H, W) grey or (H, W, 3) RGB from a file path (read as training images are, by
    ``keras_fer.datasets.image_io.load_pixels_from_path``: an unreadable or corrupt file
    raises ``ImageReadError`` naming it) or from an array (validated)."""
    from keras_fer.faces.detectors import as_rgb_or_grey

    if is_path(image_or_path):
        from PIL import Image

        from keras_fer.datasets.image_io import load_pixels_from_path

        path = os.fsdecode(image_or_path)
        try:
            pixels = load_pixels_from_path(path)
        except Image.DecompressionBombError as err:  # not an OSError: name the file here
            raise ValueError(f"{path}: refused, too many pixels to decode safely ({err})"
                             ) from None
        return as_rgb_or_grey(pixels, what=path)
    return as_rgb_or_grey(image_or_path)


# Longest crop side resized in NumPy: the span weights are read from a (side x side) identity,
# 16 MB at 2048; a larger crop (a whole photo with --no-detect) goes through TensorFlow.
_NUMPY_MAX_SIDE = 2048


@functools.lru_cache(maxsize=1024)
def _resize_spans(size_in, size_out):
    """``(indices, weights)``, each (size_out, span): the input samples and float32 weights of
    ``tf.image.resize(..., method="bilinear", antialias=True)`` along one axis of length
    ``size_in`` resized to ``size_out``.

    The weights are read from TensorFlow itself, by resizing an identity (row ``i`` of the
    output holds the weights of output pixel ``i``; each is one weight times 1.0 plus zeros,
    so exact), instead of re-deriving its span arithmetic: they are then the kernel's own
    float32 values, whatever its version computes. Cached: a face size recurs in a video.
    """
    import tensorflow as tf

    eye = np.eye(size_in, dtype=np.float32)[:, None, :]  # (size_in, 1, size_in channels)
    matrix = tf.image.resize(eye, (size_out, 1), method="bilinear",
                             antialias=True).numpy()[:, 0, :]
    nonzero = matrix != 0
    starts = nonzero.argmax(axis=1)
    ends = size_in - 1 - nonzero[:, ::-1].argmax(axis=1)
    span = int((ends - starts).max()) + 1
    indices = starts[:, None] + np.arange(span)[None, :]
    inside = indices < size_in
    indices = np.minimum(indices, size_in - 1)
    weights = np.where(inside, matrix[np.arange(size_out)[:, None], indices], 0)
    return indices, weights.astype(np.float32)


def _resize_antialiased(image, size):
    """float32 (h, w, c) -> (H, W, c) exactly as TensorFlow's ``ScaleAndTranslate`` CPU kernel
    computes ``tf.image.resize(bilinear, antialias=True)``: rows first (into an (H, w)
    intermediate), then columns, each output the float32 sum, in span order, of weight *
    sample. Spans are accumulated one position at a time for all outputs at once; adding the
    zero weights past a span's end leaves a float sum unchanged."""
    rows, row_weights = _resize_spans(image.shape[0], size[0])
    intermediate = np.zeros((size[0],) + image.shape[1:], np.float32)
    for k in range(rows.shape[1]):
        intermediate += row_weights[:, k, None, None] * image[rows[:, k]]
    cols, col_weights = _resize_spans(image.shape[1], size[1])
    out = np.zeros((size[0], size[1], image.shape[2]), np.float32)
    for k in range(cols.shape[1]):
        out += col_weights[None, :, k, None] * intermediate[:, cols[:, k]]
    return out


def standardize_numpy(crop, channels, size):
    """``keras_fer.datasets.pipeline``'s standardisation of one uint8 (h, w, c) crop in NumPy:
    alpha dropped, Rec. 601 grey as ``sum(pixel * weights)`` in float32 (r + g, then + b),
    or grey tiled to RGB, bilinear antialiased resize to ``size`` (``_resize_antialiased``),
    rounded half to even (as ``tf.round``), clipped, uint8. Identical bytes to the TensorFlow
    function (tested on random crops of many sizes); ``Predictor`` re-checks on probes."""
    from keras_fer.datasets.pipeline import LUMA_WEIGHTS

    image = crop[:, :, :3] if crop.shape[-1] >= 3 else crop[:, :, :1]
    image = image.astype(np.float32)
    if channels == 1 and image.shape[-1] == 3:
        products = image * np.asarray(LUMA_WEIGHTS, np.float32)
        image = ((products[:, :, 0] + products[:, :, 1]) + products[:, :, 2])[:, :, None]
    elif channels == 3 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.shape[:2] != tuple(size):
        image = _resize_antialiased(image, size)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _numpy_matches(standardize_fn, channels, size):
    """True when ``standardize_numpy`` gives the TensorFlow function's bytes on probe crops
    (down- and upscaling, colour and grey, odd sizes)."""
    rng = np.random.default_rng(0)
    for shape in ((97, 131, 3), (23, 19, 1), (size[0], size[1], 3), (310, 310, 4)):
        crop = rng.integers(0, 256, shape, dtype=np.uint8)
        if not np.array_equal(standardize_numpy(crop, channels, size),
                              standardize_fn(crop).numpy()):
            return False
    return True


class CropPreprocessor:
    """Face crops -> uint8 ``(N, H, W, C)`` inputs of a model of input ``(H, W, C)``.

    ``grayscale``: crops are made grey before an RGB model (the FER datasets are grey, so an
    RGB model has only seen grey replicated to three channels); ``False`` keeps colour.

    The pipeline's TensorFlow function costs about 0.7 ms of call overhead per crop, more
    than the TFLite model itself; ``standardize_numpy`` computes the same pixels in NumPy
    (the same float32 operations in the same order) in 0.05 to 0.4 ms. Each preprocessor
    checks once, on probe crops, that both give identical bytes on this machine
    (``uses_numpy``), and uses TensorFlow if they ever differ (a TensorFlow build that fuses
    multiply-adds could).
    """

    def __init__(self, input_shape, grayscale=True):
        self.input_shape = tuple(input_shape)
        self.grayscale = bool(grayscale)
        #: Whether crops go through ``standardize_numpy`` (decided on the first call).
        self.uses_numpy = False
        self._standardize_fn = None

    def __call__(self, crops):
        import tensorflow as tf

        height, width, channels = self.input_shape
        # Grey crops are standardised to one channel and replicated afterwards: replicating
        # commutes with the per-channel resize, so this equals the pipeline's grey -> RGB path.
        std_channels = 1 if self.grayscale else channels
        if self._standardize_fn is None:
            from keras_fer.datasets.pipeline import standardize_image

            # One trace for every crop size and colour mode (the shape is dynamic).
            self._standardize_fn = tf.function(
                lambda image: standardize_image(image, std_channels, (height, width)),
                input_signature=[tf.TensorSpec([None, None, None], tf.uint8)])
            self.uses_numpy = _numpy_matches(self._standardize_fn, std_channels,
                                             (height, width))
        out = []
        for crop in crops:
            crop = np.asarray(crop)
            if crop.dtype != np.uint8 or crop.ndim not in (2, 3) or 0 in crop.shape:
                raise ValueError(f"face crop must be a non-empty uint8 (H, W) or (H, W, C) "
                                 f"array, got {crop.dtype} {crop.shape}")
            crop = crop if crop.ndim == 3 else crop[:, :, None]
            if self.uses_numpy and max(crop.shape[:2]) <= _NUMPY_MAX_SIDE:
                out.append(standardize_numpy(crop, std_channels, (height, width)))
            else:
                out.append(self._standardize_fn(crop).numpy())
        if not out:
            return np.zeros((0,) + self.input_shape, np.uint8)
        out = np.stack(out)
        return np.repeat(out, channels, axis=-1) if out.shape[-1] != channels else out
