"""SavedModel export for TensorFlow Serving, and the REST request/response formats.

``export_serving(model, export_dir, version=1)`` writes ``export_dir/<version>/`` (TF
Serving's layout: a model's base path holds one numbered folder per version) with three
signatures:

- ``serving_default(images: tf.string [None])``: encoded images (JPEG, PNG, GIF, BMP or
  WebP, any size, grey or colour; one face crop each) -> ``probabilities`` float32
  [None, C], ``label`` string [None], ``class_id`` int32 [None];
- ``serve_preprocessed(pixels: float32 [None, H, W, C] in [0, 255])`` -> the same outputs,
  for callers that decode and resize themselves;
- ``class_names()`` -> ``class_names`` string [C], the label vocabulary in output order
  (a separate signature: an output without the batch dimension would break TF Serving's
  row-format responses).

Decoding (``decode_images``) is the dataset pipeline's own standardisation
(``keras_fer.datasets.pipeline``), so a served image gets exactly the pixels it would have
got in training and evaluation: ``tf.io.decode_image(channels=0)``; alpha dropped; RGB to grey
with the Rec. 601 luma weights (0.299, 0.587, 0.114) or grey replicated to RGB; bilinear
resize with antialiasing to the model's input size (skipped when the size already matches);
rounded to whole grey levels. Normalisation is inside the model.

Errors: an empty string or bytes that are no known image format fail with an
``InvalidArgumentError`` naming the batch index (``images[2]: not a JPEG, PNG, GIF, BMP or
WebP image``); corrupt pixel data fails in the decoder (``Invalid JPEG data or crop window``,
``Invalid PNG data``). ``serve_preprocessed`` refuses pixels of another size than the model's
and NaN or infinite pixels, naming the shape or the batch indices (``check_pixels``). TF
Serving returns such errors as HTTP 400 with
``{"error": "<the message>"}`` (gRPC: INVALID_ARGUMENT) for the whole request.
"""

import base64
import json
import os
from pathlib import Path

import numpy as np

from keras_fer.zoo import store

#: Version of what export_serving writes, recorded in the zoo's export manifests: a cached
#: export of an older format (2: serve_preprocessed checks shape and finiteness) is redone.
EXPORT_FORMAT = 2
SERVING_SIGNATURE = "serving_default"
PREPROCESSED_SIGNATURE = "serve_preprocessed"
CLASS_NAMES_SIGNATURE = "class_names"

# Leading bytes of the formats tf.io.decode_image reads (JPEG XL is left out: its decoder is
# not in every TensorFlow build, and no face data set ships it).
_MAGIC = ((0, b"\xff\xd8\xff"), (0, b"\x89PNG"), (0, b"GIF8"), (0, b"BM"), (8, b"WEBP"))
_HEAD = max(start + len(magic) for start, magic in _MAGIC)

#: The most pixels (height x width) one served image may declare. A face crop needs far
#: fewer; the cap is checked on the file's header, before decoding, so a small file that
#: claims a huge image (a "decompression bomb") cannot make the server allocate gigabytes.
DEFAULT_MAX_PIXELS = 4096 * 4096


def _model_geometry(model):
    shape = tuple(model.input_shape)
    if len(shape) != 4 or any(v is None for v in shape[1:]) or shape[-1] not in (1, 3):
        raise ValueError(f"model must take images of shape (batch, height, width, 1 or 3) with "
                         f"a fixed size, got input_shape {shape}")
    return (int(shape[1]), int(shape[2])), int(shape[3])


def _declared_size(data):
    """(height, width) as int64 from the header of an encoded image (JPEG, PNG, GIF, BMP,
    WebP), read without decoding the pixels; (0, 0) for other data."""
    import tensorflow as tf

    head = tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, 32), b"\0" * 32]),
                             0, 32)
    b = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)

    def le(start, count):  # little-endian unsigned integer
        return sum(b[start + i] * (1 << (8 * i)) for i in range(count))

    def be(start, count):
        return sum(b[start + i] * (1 << (8 * (count - 1 - i))) for i in range(count))

    def starts(start, magic):
        return tf.equal(tf.strings.substr(head, start, len(magic)), magic)

    def signed32(value):
        return tf.abs(tf.where(value >= 1 << 31, value - (1 << 32), value))

    # BMP: a 12-byte BITMAPCOREHEADER has 16-bit sizes, the later headers signed 32-bit ones
    # (a negative height means top-down rows).
    core = tf.equal(le(14, 4), 12)
    bmp = (tf.where(core, le(20, 2), signed32(le(22, 4))),
           tf.where(core, le(18, 2), signed32(le(18, 4))))
    # WebP: the first chunk after "RIFF....WEBP" says how the canvas size is stored.
    vp8l_bits = le(21, 4)
    webp_x = (1 + le(27, 3), 1 + le(24, 3))
    webp_l = (1 + (vp8l_bits // (1 << 14)) % (1 << 14), 1 + vp8l_bits % (1 << 14))
    webp_lossy = (le(28, 2) % (1 << 14), le(26, 2) % (1 << 14))
    zero = tf.constant(0, tf.int64)
    cases = [(starts(1, b"PNG"), (be(20, 4), be(16, 4))),
             (starts(0, b"GIF8"), (le(8, 2), le(6, 2))),
             (starts(0, b"BM"), bmp),
             (starts(8, b"WEBPVP8X"), webp_x),
             (starts(8, b"WEBPVP8L"), webp_l),
             (starts(8, b"WEBPVP8 "), webp_lossy)]
    height, width = zero, zero
    for condition, (h, w) in reversed(cases):
        height, width = tf.where(condition, h, height), tf.where(condition, w, width)
    # JPEG: the frame header may come after any number of segments; TF's own parser finds it.
    is_jpeg = starts(0, b"\xff\xd8\xff")
    jpeg = tf.cond(is_jpeg, lambda: tf.cast(tf.io.extract_jpeg_shape(data), tf.int64)[:2],
                   lambda: tf.zeros([2], tf.int64))
    return tf.where(is_jpeg, jpeg[0], height), tf.where(is_jpeg, jpeg[1], width)


def decode_images(images, image_size, channels, max_pixels=DEFAULT_MAX_PIXELS):
    """Encoded images (a 1-D ``tf.string`` tensor or a list of bytes) -> float32 pixels
    ``(N, height, width, channels)`` in [0, 255], exactly as the serving signature and the
    dataset pipeline prepare them (see the module docstring). Works eagerly and in graphs.

    An image whose header declares more than ``max_pixels`` pixels (height x width) is
    refused before it is decoded, with an error naming its index in the batch."""
    import tensorflow as tf

    from keras_fer.datasets.pipeline import standardize_image

    image_size = (int(image_size[0]), int(image_size[1]))
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be an integer >= 1, got {max_pixels!r}")
    images = tf.convert_to_tensor(images, dtype=tf.string)
    if images.shape.rank != 1:
        raise ValueError(f"images must be a 1-D batch of encoded images, got shape "
                         f"{images.shape}")

    def one(args):
        index, data = args
        nonempty = tf.strings.length(data) > 0
        # substr fails when a start lies past the end: compare on a padded copy of the head.
        head = tf.strings.join([tf.strings.substr(data, 0, _HEAD), b"\0" * _HEAD])
        known = tf.reduce_any(tf.stack(
            [tf.equal(tf.strings.substr(head, start, len(magic)), magic)
             for start, magic in _MAGIC]))
        checks = [
            tf.debugging.Assert(nonempty, [tf.strings.format(
                "images[{}]: empty input (0 bytes)", index)]),
            tf.debugging.Assert(tf.logical_or(tf.logical_not(nonempty), known), [
                tf.strings.format("images[{}]: not a JPEG, PNG, GIF, BMP or WebP image "
                                  "({} bytes, unknown header)", (index, tf.strings.length(data)))]),
        ]
        with tf.control_dependencies(checks):
            height, width = _declared_size(data)
        size_check = tf.debugging.Assert(height * width <= max_pixels, [tf.strings.format(
            "images[{}]: {}x{} pixels ({} in all), more than the {} this model accepts "
            "(max_pixels); send face crops, or scale the image down first",
            (index, width, height, height * width, max_pixels))])
        with tf.control_dependencies([size_check]):
            pixels = tf.io.decode_image(data, channels=0, dtype=tf.uint8,
                                        expand_animations=False)
        pixels = tf.ensure_shape(pixels, [None, None, None])
        return tf.cast(standardize_image(pixels, channels, image_size), tf.float32)

    indices = tf.range(tf.shape(images, out_type=tf.int64)[0])
    return tf.map_fn(one, (indices, images), fn_output_signature=tf.TensorSpec(
        [image_size[0], image_size[1], channels], tf.float32))


def check_pixels(pixels, image_size, channels):
    """``pixels`` with run-time checks for ``serve_preprocessed``: a saved signature does not
    enforce its declared input shape (TF Serving and ``loaded.signatures[...]`` feed any
    shape, and a convolutional model runs on any size, answering for an image it never saw),
    and a NaN pixel would come out as NaN probabilities labelled with the first class. Both
    fail instead with an ``InvalidArgumentError`` saying what was expected."""
    import tensorflow as tf

    expected = [int(image_size[0]), int(image_size[1]), int(channels)]
    got = tf.shape(pixels, out_type=tf.int64)  # the shape fed, read at run time
    shape_ok = tf.logical_and(tf.equal(tf.size(got), 4),
                              tf.reduce_all(tf.equal(got[1:], tf.constant(expected, tf.int64))))
    shape_check = tf.debugging.Assert(shape_ok, [tf.strings.format(
        "pixels: this model takes images of shape (N, {}, {}, {}) (height, width, channels), "
        "got a batch of shape {}; resize them first, or send encoded images to "
        "serving_default, which resizes", (*expected, got))])
    with tf.control_dependencies([shape_check]):
        finite = tf.reduce_all(tf.math.is_finite(tf.reshape(pixels, [tf.shape(pixels)[0], -1])),
                               axis=-1)
    bad = tf.cast(tf.where(tf.logical_not(finite))[:, 0], tf.int32)
    finite_check = tf.debugging.Assert(tf.reduce_all(finite), [tf.strings.format(
        "pixels: NaN or infinite values in the images at batch index {}; pixels must be "
        "finite grey levels in [0, 255]", bad, summarize=-1)])
    with tf.control_dependencies([finite_check]):
        return tf.identity(pixels)


def export_serving(model, export_dir, version=1, class_names=None, overwrite=False,
                   max_pixels=DEFAULT_MAX_PIXELS):
    """Writes the SavedModel of ``model`` to ``export_dir/<version>/`` and returns that path.

    ``model`` takes (N, H, W, C) pixels in [0, 255] and returns logits (any ``FERClassifier``
    does); ``class_names`` default to ``model.class_names``. The folder appears atomically
    (written under a temporary name, then renamed). See the module docstring for the
    signatures. ``serving_default`` refuses an image whose header declares more than
    ``max_pixels`` pixels, before decoding it. An empty batch gives empty outputs.
    """
    import keras
    import tensorflow as tf

    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be an integer >= 1, got {version!r}")
    image_size, channels = _model_geometry(model)
    names = list(class_names or getattr(model, "class_names", None) or [])
    num_classes = int(model.output_shape[-1])
    if not names:
        names = [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names but the model has {num_classes} "
                         f"outputs")

    def predict(pixels):
        # Convolutions on an empty batch fail inside TensorFlow ("Incompatible shapes"), so
        # an empty request skips the model.
        logits = tf.cond(tf.shape(pixels)[0] > 0,
                         lambda: tf.cast(model(pixels, training=False), tf.float32),
                         lambda: tf.zeros([0, num_classes], tf.float32))
        probabilities = tf.nn.softmax(logits, -1)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"probabilities": probabilities, "class_id": class_id,
                "label": tf.gather(tf.constant(names), class_id)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    # The first endpoint is the one TF Serving calls when a request names no signature.
    archive.add_endpoint(
        SERVING_SIGNATURE,
        lambda images: predict(decode_images(images, image_size, channels, max_pixels)),
        input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    archive.add_endpoint(
        PREPROCESSED_SIGNATURE,
        lambda pixels: predict(check_pixels(pixels, image_size, channels)),
        input_signature=[tf.TensorSpec([None, *image_size, channels], tf.float32,
                                       name="pixels")])
    archive.add_endpoint(CLASS_NAMES_SIGNATURE,
                         lambda: {"class_names": tf.constant(names)}, input_signature=[])
    target = Path(export_dir) / str(version)
    with store.atomic_dir(target, overwrite=overwrite) as tmp:
        archive.write_out(str(tmp), verbose=False)
    return target


def _image_bytes(image):
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            return f.read()
    raise ValueError(f"images must be encoded image bytes or file paths, got "
                     f"{type(image).__name__}")


def rest_request_body(images, signature_name=None, indent=None):
    """The JSON body of a TF Serving REST ``:predict`` request for encoded images.

    ``images``: bytes or file paths (one or a list). Returns
    ``{"signature_name": ..., "instances": [{"b64": "<base64>"}, ...]}`` as a string
    (``signature_name`` only when given; TF Serving then uses ``serving_default``). The
    ``{"b64": ...}`` wrapper is how TF Serving's REST API carries binary ``tf.string`` values.
    POST it to ``http://<host>:8501/v1/models/<name>:predict``.
    """
    if isinstance(images, (bytes, bytearray, memoryview, str, os.PathLike)):
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("images must hold at least one image")
    body = {}
    if signature_name is not None:
        if not isinstance(signature_name, str) or not signature_name:
            raise ValueError(f"signature_name must be a non-empty string, got "
                             f"{signature_name!r}")
        body["signature_name"] = signature_name
    body["instances"] = [{"b64": base64.b64encode(_image_bytes(i)).decode("ascii")}
                         for i in images]
    return json.dumps(body, indent=indent)


def predict_response(outputs):
    """Signature outputs -> the JSON object TF Serving's REST API returns for them
    (row format: one ``{"probabilities": [...], "label": ..., "class_id": ...}`` per image,
    float32 values written with their shortest exact digits)."""
    columns = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in outputs.items()}
    sizes = {len(v) for v in columns.values()}
    if len(sizes) != 1:
        raise ValueError(f"outputs must share their batch size, got "
                         f"{ {k: len(v) for k, v in columns.items()} }")

    def plain(value):
        if isinstance(value, np.ndarray):
            return [plain(v) for v in value]
        if isinstance(value, bytes):
            return value.decode("utf-8")
        if isinstance(value, np.floating):
            return float(str(np.float32(value)))
        if isinstance(value, np.integer):
            return int(value)
        return value

    rows = [{k: plain(v[i]) for k, v in sorted(columns.items())} for i in range(sizes.pop())]
    return {"predictions": rows}
