"""Face crops for classification: seed 003's crop rule (section 6.1).

The app keeps detections with confidence > 0.5, makes each box a square whose side is the
box's longer side (centred on the box), crops it and resizes it to the classifier's input.
Normalisation (mean 0.5, std 0.5 in the paper) belongs to the model's preprocessing and is
not done here: crops are uint8, like dataset images, so the same ``make_dataset`` /
preprocessing path serves both.
"""

import dataclasses
import functools
import logging

import numpy as np

from keras_fer.faces import align as _align
from keras_fer.faces.detectors import Detection, HaarFaceDetector, as_rgb_or_grey

logger = logging.getLogger("keras_fer.faces")


class NoFaceError(ValueError):
    """No face above the threshold where one was required; the message names the source."""


@dataclasses.dataclass(frozen=True)
class FaceCrop:
    """A cropped face: ``image`` uint8 (H, W) or (H, W, 3); ``box=(x, y, w, h)`` the region
    cut from the (possibly rotated) input; ``angle`` the alignment rotation in degrees."""

    image: np.ndarray
    box: tuple
    detection: Detection
    angle: float = 0.0


def square_box(box, image_shape, square=True, margin=0.0):
    """Seed 003's crop region for a detector box, clipped to the image: ``(x, y, w, h)``.

    With ``square``, the side is the box's longer side, centred on the box centre. ``margin``
    widens the region by that fraction of its side on every side (0.2 -> 1.4x the side), to
    keep forehead and chin. Clipping happens last, so a face at the border yields a
    non-square region; the resize then stretches it slightly (the paper's behaviour, as a
    NumPy slice clips). Raises ``ValueError`` naming the box if nothing is left.
    """
    height, width = image_shape[:2]
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"face box (x, y, w, h)={tuple(box)} has no area")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    cx, cy = x + w / 2.0, y + h / 2.0
    if square:
        w = h = max(w, h)
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    x0, y0 = int(round(cx - w / 2.0)), int(round(cy - h / 2.0))
    x1, y1 = x0 + int(round(w)), y0 + int(round(h))
    cx0, cy0 = min(max(x0, 0), width), min(max(y0, 0), height)
    cx1, cy1 = min(max(x1, 0), width), min(max(y1, 0), height)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"face box (x, y, w, h)={tuple(box)} lies outside the {width}x{height} "
                         f"image: empty crop")
    return (cx0, cy0, cx1 - cx0, cy1 - cy0)


@functools.lru_cache(maxsize=1)
def default_detector():
    """The shared default detector (Haar; loading a cascade takes a few milliseconds)."""
    return HaarFaceDetector()


def _resize(crop, size):
    import cv2

    height, width = size
    # INTER_AREA averages when shrinking (no aliasing); it degrades to nearest when growing.
    shrinking = crop.shape[0] > height or crop.shape[1] > width
    return cv2.resize(crop, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _convert(crop, grayscale):
    import cv2

    if grayscale is True and crop.ndim == 3:
        return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    if grayscale is False and crop.ndim == 2:
        return np.repeat(crop[:, :, None], 3, axis=2)
    return crop


def crop_faces(image, detector=None, size=(48, 48), threshold=0.5, square=True, margin=0.0,
               grayscale=None, align=False, require_face=False, source=None):
    """Detects faces and returns one ``FaceCrop`` per face, highest confidence first.

    ``image``: uint8 (H, W) grey or (H, W, 3) RGB, or a file path. ``detector``: any
    ``FaceDetector`` (default ``HaarFaceDetector``). Keeps detections with ``confidence >
    threshold`` (strict, as the paper), crops ``square_box(...)`` and resizes to ``size``
    (height, width). ``grayscale``: ``None`` keeps the input's colour, ``True`` gives (H, W)
    grey (Rec. 601 luma), ``False`` gives (H, W, 3) (grey replicated).

    ``align``: rotate the image about the face centre so the eyes are level (landmarks from
    the detector when present, else the Haar eye cascade) before cropping; if the eyes are
    not found the face is cropped unaligned and a warning is logged on ``keras_fer.faces``.

    No face above the threshold: ``[]``, or ``NoFaceError`` naming ``source`` (default: the
    path, else "image") when ``require_face``. A box with no pixels inside the image raises
    ``ValueError`` naming the box.
    """
    if source is None:
        source = str(image) if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__") \
            else "image"
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        from keras_fer.datasets.image_io import load_pixels_from_path

        image = load_pixels_from_path(str(image))
    image = as_rgb_or_grey(image)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size)):
        raise ValueError(f"size must be (height, width) with positive integers, got {size!r}")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if grayscale not in (None, True, False):
        raise ValueError(f"grayscale must be None, True or False, got {grayscale!r}")
    detector = default_detector() if detector is None else detector

    detections = sorted((d for d in detector.detect(image) if d.confidence > threshold),
                        key=lambda d: -d.confidence)
    if not detections:
        if require_face:
            raise NoFaceError(f"{source}: no face found with confidence > {threshold}")
        return []
    grey = None
    crops = []
    for det in detections:
        region = square_box(det.box, image.shape, square=square, margin=margin)
        source_image, angle = image, 0.0
        if align:
            if det.landmarks is not None:
                eyes = _align.eyes_from_landmarks(det.landmarks)
            else:
                if grey is None:
                    grey = image if image.ndim == 2 else _convert(image, True)
                eyes = _align.find_eyes(grey, det.box)
            if eyes is None:
                logger.warning("%s: eyes not found in face box %s; cropping without alignment",
                               source, tuple(det.box))
            else:
                angle = _align.eye_angle(*eyes)
                x, y, w, h = det.box
                source_image = _align.rotate_image(image, angle, (x + w / 2.0, y + h / 2.0))
        x, y, w, h = region
        crop = source_image[y:y + h, x:x + w]
        crop = _convert(_resize(crop, tuple(int(v) for v in size)), grayscale)
        crops.append(FaceCrop(image=crop, box=region, detection=det, angle=angle))
    return crops
