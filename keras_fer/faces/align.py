"""Eye-based face alignment: rotate the image so that the two eyes lie on a horizontal line.

Expression classifiers trained on frontal, upright datasets (FER2013, CK+, JAFFE) lose
accuracy on tilted heads; levelling the eyes is the cheapest normalisation and needs only two
points. They come from the detector's landmarks when it has them (YuNet) or from OpenCV's Haar
eye cascade searched inside the upper part of the face box.
"""

import functools
import math
import os

import numpy as np


@functools.lru_cache(maxsize=4)
def _eye_cascade(name):
    import cv2

    classifier = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, name))
    if classifier.empty():
        raise ValueError(f"eye cascade {name!r} is not a readable OpenCV cascade")
    return classifier


#: Eye cascades tried in turn on each half of the face: the plain eye cascade first, then the
#: one trained with eyeglasses, then the split-eye cascades, which tolerate closed eyes and
#: frames. Chosen on a bespectacled test face where the plain cascade finds only one eye.
EYE_CASCADES = ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml",
                "haarcascade_lefteye_2splits.xml", "haarcascade_righteye_2splits.xml")


def find_eyes(grey, box, cascades=EYE_CASCADES, min_neighbors=3):
    """Two eye centres ``((x, y), (x, y))`` inside ``box``, image-left first, or ``None``.

    Searches the upper 60 % of the face box (eyes never sit lower; searching there cuts
    false hits on nostrils and mouth corners), each half separately (a face has one eye per
    side; the halves overlap by 10 % of the width so an eye on the centre line is not cut),
    trying ``cascades`` in order until one fires in that half, and keeping its largest hit
    (the most reliable when a cascade also fires on an eyebrow).
    """
    x, y, w, h = (int(v) for v in box)
    top = grey[max(y, 0):max(y, 0) + int(round(0.6 * h)), max(x, 0):max(x, 0) + w]
    if top.size == 0:
        return None
    min_side = max(int(w * 0.08), 5)
    max_side = max(w // 2, min_side + 1)
    eyes = []
    for lo, hi in ((0.0, 0.55), (0.45, 1.0)):
        x0, x1 = int(round(lo * top.shape[1])), int(round(hi * top.shape[1]))
        half = top[:, x0:x1]
        best = None
        for name in cascades:
            hits = np.reshape(_eye_cascade(name).detectMultiScale(
                half, scaleFactor=1.1, minNeighbors=min_neighbors,
                minSize=(min_side, min_side), maxSize=(max_side, max_side)), (-1, 4))
            if len(hits):
                ex, ey, ew, eh = max(hits, key=lambda r: r[2] * r[3])
                best = (max(x, 0) + x0 + ex + ew / 2.0, max(y, 0) + ey + eh / 2.0)
                break
        if best is None:
            return None
        eyes.append(best)
    left, right = sorted(eyes)
    if right[0] - left[0] < 0.15 * w:  # both halves found the same eye
        return None
    return left, right


def eyes_from_landmarks(landmarks):
    """The two eye points of a 5-point landmark set (YuNet order), image-left first."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] < 2 or points.shape[1] != 2:
        raise ValueError(f"landmarks must have shape (K, 2) with K >= 2 (eyes first), "
                         f"got {points.shape}")
    a, b = (tuple(p) for p in points[:2])
    return (a, b) if a[0] <= b[0] else (b, a)


def eye_angle(left, right):
    """Tilt of the eye line in degrees (positive: the image-right eye is lower)."""
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


def rotation_matrix(angle, centre):
    """2x3 matrix rotating image content by ``angle`` degrees counter-clockwise (as shown,
    y pointing down) about ``centre``: ``rotation_matrix(eye_angle(l, r), c)`` levels l, r."""
    import cv2

    return cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), 1.0)


def rotate_image(image, angle, centre):
    """``image`` rotated by ``rotation_matrix(angle, centre)``; borders replicate the edge so
    a rotated face does not get black corners the classifier never saw in training."""
    import cv2

    height, width = image.shape[:2]
    return cv2.warpAffine(image, rotation_matrix(angle, centre), (width, height),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
