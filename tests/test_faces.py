"""Face detectors, seed 003's crop rule, eye alignment.

The real-face checks use ``grace_hopper.jpg`` (public-domain US Navy portrait) that ships
inside matplotlib's wheel (``matplotlib/mpl-data/sample_data``); matplotlib is a runtime
dependency of keras-fer, so nothing is downloaded.
"""

import logging
import math

import numpy as np
import pytest

from keras_fer.faces import (
    Detection,
    DnnFaceDetector,
    FaceDetector,
    HaarFaceDetector,
    NoFaceError,
    YuNetFaceDetector,
    crop_faces,
    eye_angle,
    rotate_image,
    square_box,
)
from keras_fer.faces.align import eyes_from_landmarks, find_eyes
from keras_fer.faces.detectors import parse_ssd_output, parse_yunet_output


@pytest.fixture(scope="module")
def hopper():
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    try:
        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    except (OSError, ValueError):
        pytest.skip("matplotlib sample data not installed")
    return str(path), np.asarray(Image.open(path).convert("RGB"))


class StubDetector(FaceDetector):
    """Returns fixed detections, whatever the image."""

    def __init__(self, *detections):
        self.detections = list(detections)

    def detect(self, image):
        return list(self.detections)


# ------------------------------------------------------------------------ Haar, real face

def test_haar_finds_the_real_face(hopper):
    _, image = hopper
    faces = HaarFaceDetector().detect(image)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    # The face of the 512x600 portrait: centred around (266, 216), about 220 px wide.
    assert abs(x + w / 2 - 266) < 20 and abs(y + h / 2 - 216) < 20 and 180 < w < 260
    assert faces[0].confidence > 0.9
    # Grey input finds the same face.
    grey = HaarFaceDetector().detect(image.mean(-1).astype(np.uint8))
    assert len(grey) == 1 and np.abs(np.subtract(grey[0].box, faces[0].box)).max() < 10


def test_crop_faces_on_the_real_face(hopper):
    path, image = hopper
    crops = crop_faces(path, size=(48, 48), grayscale=True)
    assert len(crops) == 1
    crop = crops[0]
    assert crop.image.shape == (48, 48) and crop.image.dtype == np.uint8
    assert crop.box[2] == crop.box[3]  # squared
    rgb = crop_faces(image, size=(96, 64))[0].image
    assert rgb.shape == (96, 64, 3)


def test_haar_eye_alignment_on_the_real_face(hopper):
    import cv2

    _, image = hopper
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    face = HaarFaceDetector().detect(image)[0]
    eyes = find_eyes(grey, face.box)
    assert eyes is not None
    (lx, ly), (rx, ry) = eyes
    x, y, w, h = face.box
    assert x < lx < x + w / 2 < rx < x + w and y < min(ly, ry) and max(ly, ry) < y + 0.6 * h
    assert abs(eye_angle(*eyes)) < 5  # an upright portrait
    # Tilt the head both ways: the measured tilt follows the sign of the rotation.
    angles = {}
    for tilt in (-12, 12):
        rotated = rotate_image(image, tilt, (256, 300))
        crops = crop_faces(rotated, align=True)
        angles[tilt] = crops[0].angle
    assert angles[-12] > 5 and angles[12] < -5


# ------------------------------------------------------------------------- no face / errors

def test_no_face():
    blank = np.full((120, 100), 128, np.uint8)
    assert crop_faces(blank) == []
    with pytest.raises(NoFaceError, match="frame 7: no face found with confidence > 0.5"):
        crop_faces(blank, require_face=True, source="frame 7")
    assert issubclass(NoFaceError, ValueError)


def test_no_face_error_names_the_file(tmp_path):
    from PIL import Image

    path = tmp_path / "wall.png"
    Image.fromarray(np.full((64, 64), 200, np.uint8)).save(path)
    with pytest.raises(NoFaceError, match="wall.png"):
        crop_faces(str(path), require_face=True)


def test_threshold_is_strict_and_filters():
    image = np.zeros((50, 50), np.uint8)
    det = StubDetector(Detection((10, 10, 20, 20), 0.5), Detection((5, 5, 10, 10), 0.2))
    assert crop_faces(image, det) == []
    assert len(crop_faces(image, det, threshold=0.1)) == 2
    with pytest.raises(NoFaceError):
        crop_faces(image, det, require_face=True)


def test_box_outside_the_image_is_an_error_naming_the_box():
    image = np.zeros((40, 60, 3), np.uint8)
    det = StubDetector(Detection((100, 10, 20, 20), 0.9))
    with pytest.raises(ValueError, match=r"\(100, 10, 20, 20\) lies outside the 60x40 image"):
        crop_faces(image, det)


@pytest.mark.parametrize("image, match", [
    (np.zeros((10, 10), np.float32), "must be uint8"),
    (np.zeros((10, 10, 2), np.uint8), r"shape \(H, W\) or \(H, W, 3\)"),
    (np.zeros((0, 10), np.uint8), r"shape \(H, W\)"),
])
def test_bad_images(image, match):
    with pytest.raises(ValueError, match=match):
        HaarFaceDetector().detect(image)


@pytest.mark.parametrize("kwargs, match", [
    ({"size": (48,)}, "size must be"),
    ({"threshold": 1.5}, "threshold must be in"),
    ({"grayscale": "yes"}, "grayscale must be"),
    ({"margin": -0.1}, "margin must be >= 0"),
])
def test_bad_crop_arguments(kwargs, match):
    det = StubDetector(Detection((1, 1, 5, 5), 0.9))
    with pytest.raises(ValueError, match=match):
        crop_faces(np.zeros((10, 10), np.uint8), det, **kwargs)


# ----------------------------------------------------------------------- crop geometry

@pytest.mark.parametrize("box, shape, kwargs, expected", [
    # Tall box: side = h = 50, centred on (25, 45), clipped at x = 0.
    ((10, 20, 30, 50), (100, 100), {}, (0, 20, 50, 50)),
    # Wide box fully inside: side = w = 40, centred on (50, 55).
    ((30, 50, 40, 10), (100, 100), {}, (30, 35, 40, 40)),
    # Bottom-right corner: square (80, 70)-(110, 100) clipped to the 100x100 image.
    ((80, 80, 30, 10), (100, 100), {}, (80, 70, 20, 30)),
    # Not squared: the box itself (clipped).
    ((10, 20, 30, 50), (100, 100), {"square": False}, (10, 20, 30, 50)),
    # Margin 0.25 on a 20 px square: 30 px, centred on (50, 50).
    ((40, 40, 20, 20), (100, 100), {"margin": 0.25}, (35, 35, 30, 30)),
    # Odd sizes.
    ((3, 4, 5, 7), (9, 11), {}, (2, 4, 7, 5)),
])
def test_square_box(box, shape, kwargs, expected):
    assert square_box(box, shape, **kwargs) == expected


def test_square_box_errors():
    with pytest.raises(ValueError, match="has no area"):
        square_box((1, 1, 0, 5), (10, 10))
    with pytest.raises(ValueError, match=r"\(-30, -30, 10, 10\) lies outside"):
        square_box((-30, -30, 10, 10), (10, 10))


def test_crop_contents_and_multiple_faces_in_confidence_order():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    det = StubDetector(Detection((5, 10, 12, 16), 0.7), Detection((50, 30, 16, 8), 0.95))
    crops = crop_faces(image, det, size=(16, 16))
    assert [c.detection.confidence for c in crops] == [0.95, 0.7]
    # Regions are 16x16, the output size: no resampling, so the pixels are a plain slice.
    assert crops[0].box == (50, 26, 16, 16) and crops[1].box == (3, 10, 16, 16)
    np.testing.assert_array_equal(crops[0].image, image[26:42, 50:66])
    np.testing.assert_array_equal(crops[1].image, image[10:26, 3:19])
    grey = crop_faces(image, det, size=(16, 16), grayscale=True)[1].image
    luma = image[10:26, 3:19].astype(float) @ [0.299, 0.587, 0.114]
    np.testing.assert_allclose(grey, luma, atol=1.0)


def test_crop_resizes_and_converts_grey_to_rgb():
    image = np.zeros((100, 100), np.uint8)
    image[20:60, 30:70] = 200
    crops = crop_faces(image, StubDetector(Detection((30, 20, 40, 40), 0.9)), size=(10, 10),
                       grayscale=False)
    assert crops[0].image.shape == (10, 10, 3)
    np.testing.assert_array_equal(crops[0].image, 200)


# ---------------------------------------------------------------------------- alignment

def _two_dots(shape, left, right):
    image = np.zeros(shape, np.uint8)
    for x, y in (left, right):
        image[int(round(y)) - 1:int(round(y)) + 2, int(round(x)) - 1:int(round(x)) + 2] = 255
    return image


def _centroids(image):
    from scipy import ndimage

    labels, n = ndimage.label(image > 100)
    assert n == 2
    return sorted(ndimage.center_of_mass(image, labels, [1, 2]), key=lambda p: p[1])


@pytest.mark.parametrize("tilt", [-15.0, 8.0])
def test_rotate_image_levels_the_eyes(tilt):
    # Eyes 40 px apart on a line tilted by `tilt` degrees (positive: right eye lower).
    cx, cy, half = 60.0, 50.0, 20.0
    dx, dy = half * math.cos(math.radians(tilt)), half * math.sin(math.radians(tilt))
    left, right = (cx - dx, cy - dy), (cx + dx, cy + dy)
    image = _two_dots((100, 120), left, right)
    assert eye_angle(left, right) == pytest.approx(tilt)
    levelled = rotate_image(image, eye_angle(left, right), (cx, cy))
    (ly, lx), (ry, rx) = _centroids(levelled)
    assert abs(ly - ry) < 0.5 and abs((rx - lx) - 2 * half) < 1.0


def test_align_uses_detector_landmarks():
    left, right = (40.0, 40.0), (70.0, 52.0)
    image = _two_dots((100, 110), left, right)
    landmarks = np.array([right, left, (55, 60), (62, 75), (45, 72)], np.float32)
    det = StubDetector(Detection((30, 25, 50, 50), 0.9, landmarks=landmarks))
    crop = crop_faces(image, det, size=(50, 50), align=True)[0]
    assert crop.angle == pytest.approx(math.degrees(math.atan2(12, 30)))
    (ly, _), (ry, _) = _centroids(crop.image)
    assert abs(ly - ry) < 0.5
    assert eyes_from_landmarks(landmarks) == (left, right)


def test_align_without_eyes_warns_and_crops_unaligned(caplog):
    image = np.full((80, 80), 90, np.uint8)
    det = StubDetector(Detection((20, 20, 40, 40), 0.9))
    with caplog.at_level(logging.WARNING, logger="keras_fer.faces"):
        crops = crop_faces(image, det, align=True, source="clip.mp4 frame 3")
    assert crops[0].angle == 0.0
    assert "clip.mp4 frame 3: eyes not found" in caplog.text


def test_landmarks_shape_error():
    with pytest.raises(ValueError, match=r"landmarks must have shape \(K, 2\)"):
        eyes_from_landmarks(np.zeros((1, 2)))


# ------------------------------------------------------------------ DNN / YuNet detectors

def test_dnn_and_yunet_need_local_files(tmp_path):
    with pytest.raises(ValueError, match="prototxt is required"):
        DnnFaceDetector(caffemodel="x.caffemodel")
    proto = tmp_path / "deploy.prototxt"
    proto.write_text("name: 'x'\n")
    with pytest.raises(ValueError, match="caffemodel is required"):
        DnnFaceDetector(prototxt=str(proto))
    with pytest.raises(FileNotFoundError, match="caffemodel: file not found: .*res10.caffemodel"):
        DnnFaceDetector(prototxt=str(proto), caffemodel=str(tmp_path / "res10.caffemodel"))
    with pytest.raises(ValueError, match="model is required"):
        YuNetFaceDetector()
    with pytest.raises(FileNotFoundError, match="model: file not found: .*yunet.onnx"):
        YuNetFaceDetector(model=str(tmp_path / "yunet.onnx"))


def test_parse_ssd_output():
    out = np.zeros((1, 1, 3, 7), np.float32)
    out[0, 0, 0] = [0, 1, 0.9, 0.1, 0.2, 0.5, 0.6]
    out[0, 0, 1] = [0, 1, 0.3, 0.0, 0.0, 0.1, 0.1]
    out[0, 0, 2] = [0, 1, 0.97, -0.1, 0.5, 0.3, 1.2]  # spills over the border
    dets = parse_ssd_output(out, width=200, height=100)
    assert [d.confidence for d in dets] == pytest.approx([0.97, 0.9, 0.3])
    assert dets[0].box == (0, 50, 60, 50)
    assert dets[1].box == (20, 20, 80, 40)
    assert len(parse_ssd_output(out, 200, 100, min_confidence=0.5)) == 2


def test_parse_yunet_output():
    row = np.array([[10, 20, 30, 40, 15, 30, 32, 31, 25, 40, 18, 50, 30, 51, 0.88]], np.float32)
    det = parse_yunet_output(row, width=100, height=100)[0]
    assert det.box == (10, 20, 30, 40) and det.confidence == pytest.approx(0.88)
    np.testing.assert_allclose(det.landmarks[:2], [[15, 30], [32, 31]])
    assert parse_yunet_output(None, 10, 10) == []


def test_haar_arguments():
    with pytest.raises(FileNotFoundError, match="cascade: no such file 'nope.xml'"):
        HaarFaceDetector(cascade="nope.xml")
    with pytest.raises(ValueError, match="scale_factor must be > 1"):
        HaarFaceDetector(scale_factor=1.0)
