"""The face-expression app: find every face in an image or video, classify its expression, draw.

This is seed 003's real-time application (section 6.1) over any keras-fer model:

1. **Detect** faces (OpenCV Haar by default: it ships inside opencv-python-headless, so the app
   runs offline; YuNet from a local ONNX file for better recall on turned heads) and keep the
   detections with ``confidence > threshold`` (0.5, the paper's rule).
2. **Crop** each face as the paper does: a square on the detector box's longer side, centred on
   the box (``keras_fer.faces.square_box``, optional ``margin``), clipped to the image.
3. **Preprocess the crop exactly as training images were**: ``keras_fer.datasets.pipeline``'s
   standardisation step (RGB -> grey with the Rec. 601 luma weights computed in float; bilinear
   resize with antialiasing to the model's input size; rounded to uint8), then the grey
   replicated to 3 channels for an RGB model. A classifier is only as good as the agreement
   between the pixels it was trained on and the pixels it is served, so the app calls the
   pipeline's own function instead of a look-alike (OpenCV's ``INTER_AREA`` resize differs by
   up to tens of grey levels on single pixels of a downscaled face).

   Colour: the FER datasets are grey (FER2013, FERPlus, CK+48, JAFFE; paper 003 converts
   AffectNet to grey too), so an RGB model has only seen grey replicated to three channels, and a
   colour face would be out of its distribution. Crops are therefore made grey by default;
   ``grayscale=False`` keeps colour for a model trained on colour images.
4. **Classify** all faces of one image in one batched model call. keras-fer models take pixel
   values in [0, 255] (normalisation is inside the model) and return logits; the probabilities
   are their softmax. A model that already ends in a softmax (a user's own ``.keras`` file) is
   detected and its outputs are used as they are.

   Backend: by default (``backend="auto"``) the model runs as a float32 TFLite flatbuffer
   (``keras_fer.tflite``): the same function as the Keras model (checked on a probe batch at
   conversion; a test holds the probabilities of both backends equal to 1e-5), about ten times
   faster per face on a CPU, where a TensorFlow graph call costs milliseconds of overhead. A
   ``.keras`` file or zoo model is converted once and cached under
   ``$KERAS_FER_HOME/tflite/``; an in-memory model is converted on each ``Predictor``. A
   model that does not convert (an op without a TFLite kernel) falls back to Keras with a
   one-line warning; ``backend="keras"`` always uses the Keras model.

``box`` in a ``FacePrediction`` is the region that was classified (step 2), in pixels of the
original image, so anyone can cut the same pixels again; the detector's own box is kept as
``detection_box``.
"""

import dataclasses
import functools
import importlib
import os
import time
from typing import Optional

import numpy as np

#: The zoo model the app uses when none is named.
DEFAULT_MODEL = "mini_xception.fer2013"
#: The bundled public-domain face photo (see ``keras_fer/assets/README.md``).
SAMPLE_IMAGE = "grace_hopper.jpg"
DETECTORS = ("haar", "yunet")
BACKENDS = ("auto", "tflite", "keras")

# One colour per canonical class (RGB), so that a label is recognisable at a glance in a video.
_LABEL_COLOURS = {
    "angry": (230, 40, 40), "disgust": (120, 170, 30), "fear": (160, 60, 200),
    "happy": (250, 200, 0), "sad": (40, 110, 230), "surprise": (250, 120, 200),
    "neutral": (200, 200, 200), "contempt": (140, 90, 50),
}
_DEFAULT_COLOUR = (0, 200, 255)


def sample_image_path():
    """Path of the bundled sample photo (a public-domain portrait with one frontal face)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", SAMPLE_IMAGE)


@dataclasses.dataclass(frozen=True)
class FacePrediction:
    """One classified face.

    ``box``: ``(x, y, w, h)`` of the region that was classified, in original-image pixels.
    ``label``: the most probable class. ``probabilities``: ``{class: probability}`` in the
    model's class order (they sum to 1). ``score``: the detector's confidence, ``None`` when the
    whole image was classified without detection. ``detection_box``: the detector's box before
    squaring/margin (``None`` without detection).
    """

    box: tuple
    label: str
    probabilities: dict
    score: Optional[float] = None
    detection_box: Optional[tuple] = None

    @property
    def probability(self):
        """Probability of ``label``."""
        return self.probabilities[self.label]

    def to_dict(self):
        """Plain JSON-ready data."""
        return {"box": [int(v) for v in self.box], "label": self.label,
                "probability": float(self.probability),
                "probabilities": {k: float(v) for k, v in self.probabilities.items()},
                "score": None if self.score is None else float(self.score),
                "detection_box": (None if self.detection_box is None
                                  else [int(v) for v in self.detection_box])}


def _is_path(value):
    return isinstance(value, (str, bytes)) or hasattr(value, "__fspath__")


def load_model(model):
    """A Keras model from ``model``: a ``keras.Model`` (returned as is), the path of an existing
    ``.keras`` file (loaded with ``safe_mode=True``), or a zoo name (``keras_fer.zoo.load``).

    A string that names a file path (ends in ``.keras`` or contains a path separator) but does
    not exist is an error here rather than a confusing zoo look-up.
    """
    import keras

    if isinstance(model, keras.Model):
        return model
    if not _is_path(model):
        raise ValueError(f"model must be a keras.Model, a .keras file or a zoo name, "
                         f"got {type(model).__name__}")
    name = os.fsdecode(model)
    if os.path.isfile(name):
        if not name.endswith(".keras"):
            raise ValueError(f"model: {name} is not a .keras file (save models with "
                             f"model.save('name.keras'))")
        from keras_fer.models import load_model as load_keras_file

        return load_keras_file(name)
    if name.endswith(".keras") or os.sep in name or (os.altsep and os.altsep in name):
        raise ValueError(f"model: file not found: {name}")
    try:
        zoo = importlib.import_module("keras_fer.zoo")
    except ImportError as err:
        if getattr(err, "name", None) != "keras_fer.zoo":
            raise
        raise ValueError(f"model {name!r} is not an existing .keras file, and the model zoo "
                         f"(keras_fer.zoo) is not available in this installation") from None
    return zoo.load(name)


def _cached_tflite_path(source, model, quantize=None):
    """The cached TFLite file for a ``.keras`` path or a zoo name (keyed by the file's
    sha256; for a zoo model the entry's verified digest, so the file is not hashed again), or
    ``None`` for an in-memory model, which has no file to key a cache on."""
    from keras_fer.tflite import cached_tflite

    if not _is_path(source):
        return None
    name = os.fsdecode(source)
    if os.path.isfile(name):
        return cached_tflite(name, model=model, quantize=quantize)
    from keras_fer.zoo import describe

    entry = describe(name)
    return cached_tflite(model=model, quantize=quantize,
                         sha256=entry.files[entry.keras_file]["sha256"])


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


def make_detector(detector="haar", min_face=50, detector_model=None):
    """A ``FaceDetector`` from a name: ``"haar"`` (offline, the default) or ``"yunet"`` (needs
    ``detector_model``, the local path of a YuNet ONNX file). An instance is returned as is."""
    from keras_fer.faces import FaceDetector, HaarFaceDetector, YuNetFaceDetector

    if isinstance(detector, FaceDetector):
        return detector
    if detector == "haar":
        return HaarFaceDetector(min_size=(min_face, min_face))
    if detector == "yunet":
        if detector_model is None:
            raise ValueError("detector 'yunet' needs detector_model: the local path of a YuNet "
                             "ONNX file (face_detection_yunet_*.onnx from the OpenCV model zoo); "
                             "keras-fer downloads nothing")
        return YuNetFaceDetector(model=detector_model)
    raise ValueError(f"detector must be one of {DETECTORS} or a FaceDetector, got {detector!r}")


def _outputs_probabilities(model):
    """True if the model already ends in a softmax (its outputs are probabilities)."""
    import keras

    last = model.layers[-1] if model.layers else None
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


def softmax(logits):
    """Row-wise softmax in float64 (shifted by the row maximum, so large logits do not overflow)."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class Predictor:
    """Detects faces, classifies their expressions and draws the result.

    ``model``: a ``keras.Model``, a ``.keras`` path or a zoo name (default
    ``"mini_xception.fer2013"``). ``detector``: ``"haar"``, ``"yunet"`` (with
    ``detector_model``, a local ONNX path) or any ``keras_fer.faces.FaceDetector``.
    ``min_face``: faces whose shorter box side is below this many pixels are ignored (default
    50, as ``fer``): they are smaller than the 48-pixel FER training faces, and the smallest
    windows are the Haar detector's most numerous: scanning down to 32 pixels took about 1.5x
    the detection time of 50 on 640x480 photos (95 against 64 ms here), the larger part of an
    image's end-to-end time. Pass 32 to find smaller faces. ``margin``: widens the square crop
    by that fraction of its side on every side (0 is the paper's rule). ``threshold``: keep
    detections with confidence above it. ``grayscale``: convert crops to grey before an RGB
    model (default; see the module docstring); ``False`` feeds colour. ``batch_size``: most faces
    per model call. ``backend``: ``"auto"`` (TFLite when the model converts, else Keras with a
    warning), ``"tflite"`` (an error if it does not convert) or ``"keras"`` (see the module
    docstring); ``self.backend`` is the one in use. ``num_threads``: TFLite interpreter threads
    (``None``: its default). ``quantize``: ``None`` (float32) or ``"dynamic"`` (int8 weights;
    a TFLite option, see ``keras_fer.tflite.to_tflite``).
    """

    def __init__(self, model=DEFAULT_MODEL, detector="haar", min_face=50, margin=0.0,
                 threshold=0.5, detector_model=None, grayscale=True, batch_size=32,
                 backend="auto", num_threads=None, quantize=None):
        if isinstance(min_face, bool) or not isinstance(min_face, (int, np.integer)) \
                or min_face < 1:
            raise ValueError(f"min_face must be an integer >= 1, got {min_face!r}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if grayscale not in (True, False):
            raise ValueError(f"grayscale must be True or False, got {grayscale!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if quantize is not None and backend == "keras":
            raise ValueError(f"quantize={quantize!r} needs the TFLite backend, got "
                             f"backend='keras'")
        self.model_name = (os.fsdecode(model) if _is_path(model)
                           else getattr(model, "name", type(model).__name__))
        self.model = load_model(model)
        shape = tuple(self.model.input_shape[1:])
        if len(shape) != 3 or None in shape or shape[-1] not in (1, 3):
            raise ValueError(f"model input shape must be (height, width, 1 or 3) with fixed "
                             f"sizes, got {shape}")
        self.input_shape = tuple(int(v) for v in shape)
        num_classes = int(self.model.output_shape[-1])
        names = getattr(self.model, "class_names", None)
        if names is None:
            from keras_fer.labels import class_names

            names = (class_names(num_classes) if num_classes in (7, 8)
                     else [str(i) for i in range(num_classes)])
        if len(names) != num_classes:
            raise ValueError(f"model has {num_classes} outputs but {len(names)} class names")
        self.class_names = [str(n) for n in names]
        self.outputs_probabilities = _outputs_probabilities(self.model)
        self.detector_name = detector if isinstance(detector, str) else type(detector).__name__
        self.detector = make_detector(detector, int(min_face), detector_model)
        self.min_face, self.margin, self.threshold = int(min_face), float(margin), float(threshold)
        self.grayscale = bool(grayscale)
        self.batch_size = int(batch_size)
        self._standardize_fn, self._infer_fn, self._numpy_standardize = None, None, False
        #: The TFLite runner (``keras_fer.tflite.TFLiteRunner``) or ``None`` on Keras.
        self.tflite, self.tflite_path = None, None
        if backend != "keras":
            self._setup_tflite(model, backend, num_threads, quantize)
        self.backend = "keras" if self.tflite is None else "tflite"

    def _setup_tflite(self, source, backend, num_threads, quantize):
        """Converts (or finds in the cache) the TFLite model; on failure raises for
        ``backend="tflite"`` and warns for ``"auto"``."""
        import warnings

        from keras_fer import tflite

        tflite.check_quantize(quantize)
        try:
            self.tflite_path = _cached_tflite_path(source, self.model, quantize)
            content = (self.tflite_path if self.tflite_path is not None
                       else tflite.convert(self.model, quantize=quantize))
            try:
                self.tflite = tflite.TFLiteRunner(content, num_threads=num_threads)
            except ValueError:
                if self.tflite_path is None:
                    raise
                # An unreadable cache file (truncated disk, newer schema): convert afresh.
                os.remove(self.tflite_path)
                self.tflite_path = _cached_tflite_path(source, self.model, quantize)
                self.tflite = tflite.TFLiteRunner(self.tflite_path, num_threads=num_threads)
        except tflite.TFLiteConversionError as err:
            if backend == "tflite":
                raise
            warnings.warn(f"{err}; using the Keras backend instead (slower per face)",
                          RuntimeWarning, stacklevel=3)

    # ---------------------------------------------------------------- input

    @staticmethod
    def load_image(image_or_path):
        """uint8 (H, W) grey or (H, W, 3) RGB from a file path (read as training images are, by
        ``keras_fer.datasets.pipeline.load_pixels_from_path``: an unreadable or corrupt file
        raises ``ImageReadError`` naming it) or from an array (validated)."""
        from keras_fer.faces.detectors import as_rgb_or_grey

        if _is_path(image_or_path):
            from PIL import Image

            from keras_fer.datasets.pipeline import load_pixels_from_path

            path = os.fsdecode(image_or_path)
            try:
                pixels = load_pixels_from_path(path)
            except Image.DecompressionBombError as err:  # not an OSError: name the file here
                raise ValueError(f"{path}: refused, too many pixels to decode safely ({err})"
                                 ) from None
            return as_rgb_or_grey(pixels, what=path)
        return as_rgb_or_grey(image_or_path)

    def preprocess(self, crops):
        """uint8 (N, H, W, C) model inputs from face crops (uint8 (h, w) or (h, w, C) arrays of
        any size), by the training pipeline's standardisation (see the module docstring).

        The pipeline's TensorFlow function costs about 0.7 ms of call overhead per crop, more
        than the TFLite model itself; ``standardize_numpy`` computes the same pixels in NumPy
        (the same float32 operations in the same order) in 0.05 to 0.4 ms. Each Predictor
        checks once, on probe crops, that both give identical bytes on this machine, and uses
        TensorFlow if they ever differ (a TensorFlow build that fuses multiply-adds could).
        """
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
            self._numpy_standardize = _numpy_matches(self._standardize_fn, std_channels,
                                                     (height, width))
        out = []
        for crop in crops:
            crop = np.asarray(crop)
            if crop.dtype != np.uint8 or crop.ndim not in (2, 3) or 0 in crop.shape:
                raise ValueError(f"face crop must be a non-empty uint8 (H, W) or (H, W, C) "
                                 f"array, got {crop.dtype} {crop.shape}")
            crop = crop if crop.ndim == 3 else crop[:, :, None]
            if self._numpy_standardize and max(crop.shape[:2]) <= _NUMPY_MAX_SIDE:
                out.append(standardize_numpy(crop, std_channels, (height, width)))
            else:
                out.append(self._standardize_fn(crop).numpy())
        if not out:
            return np.zeros((0,) + self.input_shape, np.uint8)
        out = np.stack(out)
        return np.repeat(out, channels, axis=-1) if out.shape[-1] != channels else out

    # ---------------------------------------------------------------- model

    def probabilities(self, inputs):
        """(N, classes) probabilities for model inputs (N, H, W, C) in [0, 255], in batches."""
        import tensorflow as tf

        inputs = np.asarray(inputs, dtype=np.float32)
        if inputs.ndim != 4 or inputs.shape[1:] != self.input_shape:
            raise ValueError(f"inputs must have shape (N,) + {self.input_shape}, "
                             f"got {inputs.shape}")
        if len(inputs) == 0:
            return np.zeros((0, len(self.class_names)))
        if self._infer_fn is None and self.tflite is not None:
            self._infer_fn = self.tflite
        elif self._infer_fn is None:
            model = self.model
            # A traced call: one graph for every batch size, without model.predict's per-call
            # set-up (tens of milliseconds, more than the network itself on one face).
            self._infer_fn = tf.function(
                lambda x: model(x, training=False),
                input_signature=[tf.TensorSpec((None,) + self.input_shape, tf.float32)])
        outputs = np.concatenate([np.asarray(self._infer_fn(inputs[i:i + self.batch_size]))
                                  for i in range(0, len(inputs), self.batch_size)])
        if self.outputs_probabilities:
            return outputs.astype(np.float64)
        return softmax(outputs)

    def _predictions(self, crops, boxes, scores, detection_boxes):
        probs = self.probabilities(self.preprocess(crops))
        out = []
        for p, box, score, det_box in zip(probs, boxes, scores, detection_boxes):
            out.append(FacePrediction(
                box=tuple(int(v) for v in box), label=self.class_names[int(np.argmax(p))],
                probabilities={n: float(v) for n, v in zip(self.class_names, p)},
                score=None if score is None else float(score),
                detection_box=None if det_box is None else tuple(int(v) for v in det_box)))
        return out

    def warm_up(self):
        """Traces the preprocessing and model graphs once (the first call otherwise pays for
        it), so that timings measure the steady state."""
        self.probabilities(self.preprocess([np.zeros((8, 8), np.uint8)]))
        return self

    # ---------------------------------------------------------------- public

    def detect(self, image):
        """The kept detections of an image array (confidence > threshold, shorter side >=
        min_face), highest confidence first, each with its crop region:
        ``[(Detection, (x, y, w, h)), ...]``."""
        from keras_fer.faces import square_box

        kept = []
        for det in self.detector.detect(image):
            if det.confidence <= self.threshold or min(det.box[2], det.box[3]) < self.min_face:
                continue
            kept.append((det, square_box(det.box, image.shape, square=True, margin=self.margin)))
        return sorted(kept, key=lambda item: -item[0].confidence)

    def predict(self, image_or_path):
        """Every face in an image (array or file path) -> ``list[FacePrediction]``, highest
        detector confidence first; ``[]`` when there is no face. All faces of the image go
        through the model in one batched call."""
        image = self.load_image(image_or_path)
        kept = self.detect(image)
        crops = [image[y:y + h, x:x + w] for _, (x, y, w, h) in kept]
        return self._predictions(crops, [region for _, region in kept],
                                 [det.confidence for det, _ in kept],
                                 [det.box for det, _ in kept])

    def predict_crops(self, faces):
        """Already-cropped faces (arrays or paths), no detection -> one ``FacePrediction`` each,
        whose box is the whole crop and score ``None``; batched."""
        images = [self.load_image(face) for face in faces]
        return self._predictions(images, [(0, 0, im.shape[1], im.shape[0]) for im in images],
                                 [None] * len(images), [None] * len(images))

    def predict_crop(self, face):
        """One already-cropped face (array or path), no detection -> ``FacePrediction``."""
        return self.predict_crops([face])[0]

    def annotate(self, image, predictions):
        """``annotate(image, predictions)`` (the module function)."""
        return annotate(image, predictions)


def annotate(image, predictions, thickness=None):
    """A copy of ``image`` as uint8 RGB (grey is replicated) with each face's box and
    "label probability" drawn (OpenCV). Line width and text size follow the image and box
    sizes, so the labels stay legible on a 4K frame and a 200-pixel crop alike."""
    import cv2

    from keras_fer.faces.detectors import as_rgb_or_grey

    out = as_rgb_or_grey(image)
    out = np.repeat(out[:, :, None], 3, axis=2) if out.ndim == 2 else out.copy()
    height, width = out.shape[:2]
    line = thickness or max(1, int(round(min(height, width) / 250)))
    for p in predictions:
        x, y, w, h = (int(v) for v in p.box)
        colour = _LABEL_COLOURS.get(p.label, _DEFAULT_COLOUR)
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), colour, line)
        text = f"{p.label} {p.probability:.0%}"
        scale = float(np.clip(w / 220.0, 0.35, 1.5))
        weight = max(1, int(round(scale * 1.5)))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)
        # Above the box when there is room, else just inside its top edge.
        top = y - th - base - 2 * line if y - th - base - 2 * line >= 0 else y
        cv2.rectangle(out, (x, top), (x + tw + 2 * line, top + th + base + 2 * line), colour, -1)
        cv2.putText(out, text, (x + line, top + th + line), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), weight, cv2.LINE_AA)
    return out


# -------------------------------------------------------------------- video


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """What ``process_video`` did: ``frames`` read, ``analysed`` (the others reused the last
    predictions), ``faces`` found in analysed frames, ``seconds`` spent decoding, detecting and
    classifying (drawing and encoding excluded), ``fps`` = frames / seconds, the written file
    ``out`` and its ``codec`` (``None`` when no output was asked for)."""

    frames: int
    analysed: int
    faces: int
    seconds: float
    fps: float
    out: Optional[str]
    codec: Optional[str]
    interrupted: bool = False


def parse_video_source(source):
    """A camera index (an int, or a string of digits) or a file path (must exist)."""
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return int(source)
    text = os.fsdecode(source)
    if text.isdigit():
        return int(text)
    if not os.path.exists(text):
        raise ValueError(f"video source {text!r}: no such file (give a video file or a camera "
                         f"index such as 0)")
    return text


def open_video_writer(path, fps, size, notify=print):
    """``(writer, path, codec)``: mp4v into ``path``; if this OpenCV build cannot encode mp4v,
    MJPG into ``path`` with an ``.avi`` extension, and ``notify`` says so. A ``.avi`` path gets
    MJPG directly. ``size`` is (width, height)."""
    import cv2

    path = os.fsdecode(path)
    tries = [("MJPG", path)] if path.lower().endswith(".avi") else [
        ("mp4v", path), ("MJPG", os.path.splitext(path)[0] + ".avi")]
    for codec, target in tries:
        folder = os.path.dirname(os.path.abspath(target))
        os.makedirs(folder, exist_ok=True)
        writer = cv2.VideoWriter(target, cv2.VideoWriter_fourcc(*codec), float(fps), size)
        if writer.isOpened():
            if target != path:
                notify(f"note: the mp4v codec is not available in this OpenCV build; writing "
                       f"MJPG to {target} instead")
            return writer, target, codec
        writer.release()
        if os.path.isfile(target) and os.path.getsize(target) == 0:
            os.remove(target)  # a failed open can leave an empty file behind
    raise ValueError(f"out: OpenCV cannot write a video to {path} (tried "
                     f"{', '.join(c for c, _ in tries)})")


def process_video(predictor, source, out=None, every=1, max_frames=None, progress=None,
                  notify=print):
    """Runs ``predictor`` over a video file or camera and writes the annotated frames.

    ``source``: a file path or camera index. ``out``: the annotated video to write (``None``:
    none). ``every``: analyse one frame in ``every`` (frame skipping); the frames in between are
    annotated with the last analysed frame's predictions. ``max_frames``: stop after that many
    frames (a camera otherwise runs until Ctrl-C, which ends the run cleanly). ``progress``:
    tqdm bar when the frame count is known (``None``: only on a terminal). Headless: nothing is
    shown on screen. Returns a ``VideoResult``.
    """
    import cv2
    from tqdm.auto import tqdm

    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"every must be an integer >= 1, got {every!r}")
    if max_frames is not None and (isinstance(max_frames, bool)
                                   or not isinstance(max_frames, (int, np.integer))
                                   or max_frames < 1):
        raise ValueError(f"max_frames must be None or an integer >= 1, got {max_frames!r}")
    source = parse_video_source(source)
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise ValueError(f"video source {source!r}: OpenCV cannot open it (not a readable video "
                         f"file or camera)")
    predictor.warm_up()
    fps_in = capture.get(cv2.CAP_PROP_FPS)
    fps_in = fps_in if fps_in and 0 < fps_in < 1000 else 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if max_frames is not None and total > 0:
        total = min(total, int(max_frames))
    bar = tqdm(total=total if total > 0 else None, unit="frame", leave=False,
               disable=(None if progress is None else not progress) if total > 0 else True)
    writer, out_path, codec = None, None, None
    frames = analysed = faces = 0
    seconds, interrupted, last = 0.0, False, []
    try:
        while max_frames is None or frames < max_frames:
            start = time.perf_counter()
            ok, frame = capture.read()
            if not ok:
                seconds += time.perf_counter() - start
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if frames % every == 0:
                last = predictor.predict(rgb)
                analysed += 1
                faces += len(last)
            seconds += time.perf_counter() - start
            frames += 1
            if out is not None:
                if writer is None:
                    writer, out_path, codec = open_video_writer(
                        out, fps_in, (rgb.shape[1], rgb.shape[0]), notify)
                writer.write(cv2.cvtColor(annotate(rgb, last), cv2.COLOR_RGB2BGR))
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        capture.release()
        if writer is not None:
            writer.release()
    return VideoResult(frames=frames, analysed=analysed, faces=faces, seconds=seconds,
                       fps=frames / seconds if seconds > 0 else 0.0, out=out_path, codec=codec,
                       interrupted=interrupted)

