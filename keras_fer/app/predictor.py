"""The app's predictor: find every face in an image, classify its expression.

This is seed 003's real-time application (section 6.1) over any keras-fer model:

1. **Detect** faces (OpenCV Haar by default: it ships inside opencv-python-headless, so the app
   runs offline; YuNet from a local ONNX file for better recall on turned heads) and keep the
   detections with ``confidence > threshold`` (0.5, the paper's rule).
2. **Crop** each face as the paper does: a square on the detector box's longer side, centred on
   the box (``keras_fer.faces.square_box``, optional ``margin``), clipped to the image.
3. **Preprocess the crop exactly as training images were** (``keras_fer.app.preprocessing``):
   ``keras_fer.datasets.pipeline``'s standardisation step (RGB -> grey with the Rec. 601 luma weights computed in float; bilinear
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
   (``keras_fer.app.tflite``): the same function as the Keras model (checked on a probe batch at
   conversion; a test holds the probabilities of both backends equal to 1e-5), about ten times
   faster per face on a CPU, where a TensorFlow graph call costs milliseconds of overhead. A
   ``.keras`` file or zoo model is converted once and cached under
   ``$KERAS_FER_HOME/tflite/``; an in-memory model is converted on each ``Predictor``. A
   model that does not convert (an op without a TFLite kernel) falls back to Keras with a
   one-line warning; ``backend="keras"`` always uses the Keras model.

``box`` in a ``FacePrediction`` is the region that was classified (step 2), in pixels of the
original image, so anyone can cut the same pixels again; the detector's own box is kept as
``detection_box``. Drawing is ``keras_fer.app.drawing``, video ``keras_fer.app.video``.
"""

import dataclasses
import os
from typing import Optional

import numpy as np

from keras_fer.app import preprocessing
from keras_fer.app.drawing import annotate
from keras_fer.validation import is_path, positive_int

#: The zoo model the app uses when none is named: the best FER2013 model that ships, measured
#: on PublicTest (62.9 % against mini_xception.fer2013's 58.5 %) at 1.8 ms a face in TFLite.
DEFAULT_MODEL = "resnet18.fer2013"
#: The Haar settings of each detector name. ``haar``, the default, was chosen on
#: ``benchmarks/face_detection.py`` (docs/app.md): recall at least fer's at about a third of
#: its detection time. ``haar-fer`` is fer's own (and this app's before): full resolution,
#: scale 1.1, 5 neighbours.
HAAR_SETTINGS = {"haar": {"scale_factor": 1.25, "min_neighbors": 1, "scan_size": 40},
                 "haar-fer": {"scale_factor": 1.1, "min_neighbors": 5, "scan_size": None}}
DETECTORS = ("haar", "haar-fer", "yunet")
BACKENDS = ("auto", "tflite", "keras")


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


def _cached_tflite_path(source, model, quantize=None):
    """The cached TFLite file for a ``.keras`` path or a zoo name (keyed by the file's
    sha256; for a zoo model the entry's verified digest, so the file is not hashed again), or
    ``None`` for an in-memory model, which has no file to key a cache on."""
    from keras_fer.app.tflite import cached_tflite

    if not is_path(source):
        return None
    name = os.fsdecode(source)
    if os.path.isfile(name):
        return cached_tflite(name, model=model, quantize=quantize)
    from keras_fer.zoo import describe

    entry = describe(name)
    return cached_tflite(model=model, quantize=quantize,
                         sha256=entry.files[entry.keras_file]["sha256"])


def make_detector(detector="haar", min_face=50, detector_model=None):
    """A ``FaceDetector`` from a name: ``"haar"`` (offline, the default), ``"haar-fer"`` (the
    same cascade with fer's settings, slower) or ``"yunet"`` (needs ``detector_model``, the
    local path of a YuNet ONNX file). An instance is returned as is."""
    from keras_fer.faces import FaceDetector, HaarFaceDetector, YuNetFaceDetector

    if isinstance(detector, FaceDetector):
        return detector
    if detector in HAAR_SETTINGS:
        return HaarFaceDetector(min_size=(min_face, min_face), **HAAR_SETTINGS[detector])
    if detector == "yunet":
        if detector_model is None:
            raise ValueError("detector 'yunet' needs detector_model: the local path of a YuNet "
                             "ONNX file (face_detection_yunet_*.onnx from the OpenCV model zoo); "
                             "keras-fer downloads nothing")
        return YuNetFaceDetector(model=detector_model)
    raise ValueError(f"detector must be one of {DETECTORS} or a FaceDetector, got {detector!r}")


def keep_detections(detections, threshold=0.5, min_face=50):
    """The detections the app keeps: confidence above ``threshold`` (paper 003's rule) and
    shorter side at least ``min_face`` pixels, highest confidence first."""
    kept = [det for det in detections
            if det.confidence > threshold and min(det.box[2], det.box[3]) >= min_face]
    return sorted(kept, key=lambda det: -det.confidence)


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
    ``"mini_xception.fer2013"``). ``detector``: ``"haar"``, ``"haar-fer"``, ``"yunet"`` (with
    ``detector_model``, a local ONNX path) or any ``keras_fer.faces.FaceDetector``.
    ``min_face``: faces whose shorter box side is below this many pixels are ignored (default
    50, as ``fer``): they are smaller than the 48-pixel FER training faces, and the smallest
    windows are the Haar detector's most numerous: with the default ``haar`` detector, scanning
    down to 32 pixels took about 2.5x the detection time of 50 on 640x480 photos (with fer's
    settings, 1.5x), the larger part of an image's end-to-end time. Pass 32 to find smaller
    faces. ``margin``: widens the square crop
    by that fraction of its side on every side (0 is the paper's rule). ``threshold``: keep
    detections with confidence above it. ``grayscale``: convert crops to grey before an RGB
    model (default; see the module docstring); ``False`` feeds colour. ``batch_size``: most faces
    per model call. ``backend``: ``"auto"`` (TFLite when the model converts, else Keras with a
    warning), ``"tflite"`` (an error if it does not convert) or ``"keras"`` (see the module
    docstring); ``self.backend`` is the one in use. ``num_threads``: TFLite interpreter threads
    (``None``: its default). ``quantize``: ``None`` (float32) or ``"dynamic"`` (int8 weights;
    a TFLite option, see ``keras_fer.app.tflite.to_tflite``).
    """

    def __init__(self, model=DEFAULT_MODEL, detector="haar", min_face=50, margin=0.0,
                 threshold=0.5, detector_model=None, grayscale=True, batch_size=32,
                 backend="auto", num_threads=None, quantize=None):
        min_face = positive_int(min_face, "min_face")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if grayscale not in (True, False):
            raise ValueError(f"grayscale must be True or False, got {grayscale!r}")
        batch_size = positive_int(batch_size, "batch_size")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if quantize is not None and backend == "keras":
            raise ValueError(f"quantize={quantize!r} needs the TFLite backend, got "
                             f"backend='keras'")
        from keras_fer.zoo.loading import load_model

        self.model_name = (os.fsdecode(model) if is_path(model)
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
        self.detector = make_detector(detector, min_face, detector_model)
        self.min_face, self.margin, self.threshold = min_face, float(margin), float(threshold)
        self.grayscale = bool(grayscale)
        self.batch_size = batch_size
        #: Face crops -> model inputs (``keras_fer.app.preprocessing.CropPreprocessor``).
        self.preprocessor = preprocessing.CropPreprocessor(self.input_shape, self.grayscale)
        self._infer_fn = None
        #: The TFLite runner (``keras_fer.app.tflite.TFLiteRunner``) or ``None`` on Keras.
        self.tflite, self.tflite_path = None, None
        if backend != "keras":
            self._setup_tflite(model, backend, num_threads, quantize)
        self.backend = "keras" if self.tflite is None else "tflite"

    def _setup_tflite(self, source, backend, num_threads, quantize):
        """Converts (or finds in the cache) the TFLite model; on failure raises for
        ``backend="tflite"`` and warns for ``"auto"``."""
        import warnings

        from keras_fer.app import tflite

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
        """``keras_fer.app.preprocessing.load_image``: uint8 (H, W) grey or (H, W, 3) RGB from
        a file path (read as training images are) or an array (validated)."""
        return preprocessing.load_image(image_or_path)

    def preprocess(self, crops):
        """uint8 (N, H, W, C) model inputs from face crops (uint8 (h, w) or (h, w, C) arrays of
        any size), by the training pipeline's standardisation (``self.preprocessor``)."""
        return self.preprocessor(crops)

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

        return [(det, square_box(det.box, image.shape, square=True, margin=self.margin))
                for det in keep_detections(self.detector.detect(image), self.threshold,
                                           self.min_face)]

    def classify(self, image, kept):
        """The faces ``kept = self.detect(image)`` of an image array -> ``list[FacePrediction]``
        (one batched model call)."""
        return self.predict_batch([image], [kept])[0]

    def predict(self, image_or_path):
        """Every face in an image (array or file path) -> ``list[FacePrediction]``, highest
        detector confidence first; ``[]`` when there is no face. All faces of the image go
        through the model in one batched call."""
        return self.predict_batch([image_or_path])[0]

    def predict_batch(self, images, detections=None):
        """``predict`` for a list of images (arrays or paths) -> one ``list[FacePrediction]``
        per image. Every face of every image goes through the model together (in calls of
        at most ``batch_size`` faces). ``detections``: each image's ``self.detect(image)``
        when it is already known (video), else detection runs here. A path that cannot be
        read raises, naming it (``predict`` one path at a time to skip bad files)."""
        images = [self.load_image(image) for image in images]
        if detections is None:
            detections = [self.detect(image) for image in images]
        if len(detections) != len(images):
            raise ValueError(f"detections: one list per image expected, got {len(detections)} "
                             f"for {len(images)} images")
        flat = [(image, det, region) for image, kept in zip(images, detections)
                for det, region in kept]
        faces = self._predictions([image[y:y + h, x:x + w] for image, _, (x, y, w, h) in flat],
                                  [region for _, _, region in flat],
                                  [det.confidence for _, det, _ in flat],
                                  [det.box for _, det, _ in flat])
        out, start = [], 0
        for kept in detections:
            out.append(faces[start:start + len(kept)])
            start += len(kept)
        return out

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
        """``keras_fer.app.drawing.annotate(image, predictions)``."""
        return annotate(image, predictions)

