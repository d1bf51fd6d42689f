"""Face detectors behind one interface: ``detect(image) -> list[Detection]``.

Images are NumPy uint8 arrays, (H, W) grey or (H, W, 3) **RGB** (the order PIL and the rest
of keras-fer use; OpenCV's BGR is handled inside). Boxes are ``(x, y, w, h)`` in pixels of
that image, clipped to it.

* ``HaarFaceDetector``: OpenCV's Haar cascade; the cascade files ship inside
  opencv-python-headless (``cv2.data.haarcascades``), so it works offline with nothing to
  download. The default.
* ``DnnFaceDetector``: the OpenCV DNN "res10_300x300_ssd" ResNet-10 SSD that seed 003's app
  uses (Caffe ``deploy.prototxt`` + ``.caffemodel``), from local files.
* ``YuNetFaceDetector``: ``cv2.FaceDetectorYN`` with a local YuNet ONNX file; gives 5
  landmarks (eyes, nose, mouth corners) used by eye alignment.
"""

import abc
import dataclasses
import math
import os
from typing import Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class Detection:
    """One face: ``box=(x, y, w, h)`` in pixels, ``confidence`` in [0, 1], optional
    ``landmarks`` as a (K, 2) float array of (x, y) points (YuNet: right eye, left eye,
    nose tip, right and left mouth corners, from the subject's point of view)."""

    box: tuple
    confidence: float
    landmarks: Optional[np.ndarray] = None


def as_rgb_or_grey(image, what="image"):
    """Validates a detector input: uint8 (H, W) or (H, W, 3); (H, W, 1) and RGBA are reduced."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[-1] == 4:
        image = image[:, :, :3]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3) or 0 in image.shape:
        raise ValueError(f"{what} must have shape (H, W) or (H, W, 3), got {image.shape}")
    return image


def to_grey(image):
    import cv2

    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def to_bgr(image):
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)


def clip_box(x0, y0, x1, y1, width, height):
    """Corner coordinates clipped to the image, as an (x, y, w, h) tuple of ints."""
    x0, x1 = (int(round(min(max(v, 0), width))) for v in (x0, x1))
    y0, y1 = (int(round(min(max(v, 0), height))) for v in (y0, y1))
    return (x0, y0, max(x1 - x0, 0), max(y1 - y0, 0))


def _require_file(path, argument):
    if path is None:
        raise ValueError(f"{argument} is required: give the local path of the model file "
                         f"(keras-fer never downloads detector weights)")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{argument}: file not found: {path}")
    return path


class FaceDetector(abc.ABC):
    """Finds faces: ``detect(image)`` returns ``Detection``s, highest confidence first."""

    @abc.abstractmethod
    def detect(self, image):
        """``image``: uint8 (H, W) or (H, W, 3) RGB. Returns a list of ``Detection``."""

    def __call__(self, image):
        return self.detect(image)


class HaarFaceDetector(FaceDetector):
    """OpenCV Haar cascade face detector (Viola-Jones), offline.

    ``cascade``: a file name inside ``cv2.data.haarcascades`` or a path to a cascade XML.

    Confidence: Haar cascades give no probability. ``detectMultiScale3(...,
    outputRejectLevels=True)`` returns, per (grouped) detection, the boosted sum of the last
    stage, ``w``; we report ``sigmoid(w)``. It is monotone in the cascade's own evidence and
    0.5 at a last-stage sum of 0, so seed 003's ``confidence > 0.5`` rule keeps windows with
    positive final-stage evidence. It is not calibrated: on the real faces we tried (JAFFE,
    169 images at 256x256) ``w`` lay between 5.4 and 13 (confidence > 0.995), CK+48 upscaled
    to 96x96 between 1.3 and 15, while false windows on textures were mostly below 3 before
    neighbour grouping.

    ``scan_size``: detect on a copy of the image downscaled (``INTER_AREA``) so that a face of
    ``min_size`` becomes ``scan_size`` pixels, and map the boxes back (``None``: full
    resolution; never upscaled). The cascade's window is 24 pixels, so a face of ``min_size``
    still fits it for ``scan_size >= 24``. OpenCV already skips the pyramid levels below
    ``min_size``; the saving comes from its window step, 2 pixels on levels scaled by less
    than 2 and 1 pixel above: a 50-pixel minimum at full resolution is scanned on levels from
    2.08 with a 1-pixel step, the same faces at ``scan_size=40`` from level 1 with a 2-pixel
    step, about 4 times fewer windows (``benchmarks/face_detection.py`` measures time and
    recall).
    """

    def __init__(self, cascade="haarcascade_frontalface_default.xml", scale_factor=1.1,
                 min_neighbors=5, min_size=(24, 24), scan_size=None):
        import cv2

        if scale_factor <= 1:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        if min_neighbors < 0:
            raise ValueError(f"min_neighbors must be >= 0, got {min_neighbors}")
        path = os.fspath(cascade)
        if not os.path.isfile(path):
            path = os.path.join(cv2.data.haarcascades, path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"cascade: no such file {cascade!r} (looked in the working "
                                    f"directory and in {cv2.data.haarcascades})")
        self._classifier = cv2.CascadeClassifier(path)
        if self._classifier.empty():
            raise ValueError(f"cascade: {path} is not a readable OpenCV cascade")
        self.cascade = path
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = tuple(int(v) for v in min_size)
        if scan_size is not None and int(scan_size) < 1:
            raise ValueError(f"scan_size must be a positive integer or None, got {scan_size!r}")
        self.scan_size = None if scan_size is None else int(scan_size)

    def scan_scale(self):
        """The factor the image is resized by before the cascade runs (1: full resolution)."""
        smallest = min(self.min_size)
        if self.scan_size is None or smallest <= self.scan_size:
            return 1.0
        return self.scan_size / smallest

    def detect(self, image):
        import cv2

        image = as_rgb_or_grey(image)
        grey = to_grey(image)
        height, width = grey.shape
        scan, scale, min_size = grey, self.scan_scale(), self.min_size
        if scale < 1:
            size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
            scan = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
            min_size = tuple(max(1, int(math.floor(v * scale))) for v in self.min_size)
        boxes, _, weights = self._classifier.detectMultiScale3(
            scan, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=min_size, outputRejectLevels=True)
        boxes = np.reshape(boxes, (-1, 4)) / scale
        weights = np.reshape(weights, -1)
        out = []
        for (x, y, w, h), weight in zip(boxes, weights):
            box = clip_box(x, y, x + w, y + h, width, height)
            confidence = 1.0 / (1.0 + math.exp(-float(weight)))
            out.append(Detection(box=box, confidence=confidence))
        return sorted(out, key=lambda d: -d.confidence)


def parse_ssd_output(output, width, height, min_confidence=0.0):
    """Detections from an OpenCV SSD output blob (1, 1, N, 7): ``[_, _, conf, x0, y0, x1, y1]``
    with corners normalised to [0, 1]; boxes scaled to the image and clipped."""
    rows = np.reshape(np.asarray(output, dtype=np.float32), (-1, 7))
    out = []
    for row in rows:
        confidence = float(row[2])
        if confidence <= min_confidence:
            continue
        box = clip_box(row[3] * width, row[4] * height, row[5] * width, row[6] * height,
                       width, height)
        if box[2] > 0 and box[3] > 0:
            out.append(Detection(box=box, confidence=confidence))
    return sorted(out, key=lambda d: -d.confidence)


class DnnFaceDetector(FaceDetector):
    """The OpenCV DNN ResNet-10 SSD face detector (seed 003's "SSD face detector").

    ``prototxt`` and ``caffemodel`` are local paths to ``deploy.prototxt`` and
    ``res10_300x300_ssd_iter_140000.caffemodel`` (OpenCV's face_detector sample); nothing
    is downloaded. The network sees the image resized to ``input_size`` with the mean
    (104, 177, 123) subtracted in BGR order, as the model was trained.
    """

    def __init__(self, prototxt=None, caffemodel=None, input_size=(300, 300),
                 mean=(104.0, 177.0, 123.0), min_confidence=0.0):
        import cv2

        self.prototxt = _require_file(prototxt, "prototxt")
        self.caffemodel = _require_file(caffemodel, "caffemodel")
        self.input_size = tuple(int(v) for v in input_size)
        self.mean = tuple(float(v) for v in mean)
        self.min_confidence = float(min_confidence)
        self._net = cv2.dnn.readNetFromCaffe(self.prototxt, self.caffemodel)

    def detect(self, image):
        import cv2

        image = as_rgb_or_grey(image)
        height, width = image.shape[:2]
        blob = cv2.dnn.blobFromImage(cv2.resize(to_bgr(image), self.input_size), 1.0,
                                     self.input_size, self.mean)
        self._net.setInput(blob)
        return parse_ssd_output(self._net.forward(), width, height, self.min_confidence)


def parse_yunet_output(faces, width, height):
    """Detections from ``FaceDetectorYN.detect`` rows: x, y, w, h, 5 (x, y) landmarks, score."""
    if faces is None:
        return []
    out = []
    for row in np.reshape(np.asarray(faces, dtype=np.float32), (-1, 15)):
        x, y, w, h = (float(v) for v in row[:4])
        box = clip_box(x, y, x + w, y + h, width, height)
        if box[2] > 0 and box[3] > 0:
            out.append(Detection(box=box, confidence=float(row[14]),
                                 landmarks=row[4:14].reshape(5, 2).copy()))
    return sorted(out, key=lambda d: -d.confidence)


class YuNetFaceDetector(FaceDetector):
    """OpenCV's YuNet (``cv2.FaceDetectorYN``) from a local ONNX file, with 5 landmarks.

    ``score_threshold`` is YuNet's own pre-filter (kept low so that ``crop_faces``'
    ``threshold`` is the one that decides); ``nms_threshold`` and ``top_k`` as in OpenCV.
    """

    def __init__(self, model=None, score_threshold=0.3, nms_threshold=0.3, top_k=5000):
        import cv2

        self.model = _require_file(model, "model")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self._detector = cv2.FaceDetectorYN.create(self.model, "", (320, 320),
                                                   self.score_threshold, self.nms_threshold,
                                                   self.top_k)

    def detect(self, image):
        image = as_rgb_or_grey(image)
        height, width = image.shape[:2]
        self._detector.setInputSize((width, height))
        _, faces = self._detector.detect(to_bgr(image))
        return parse_yunet_output(faces, width, height)
