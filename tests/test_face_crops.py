"""``keras_fer.datasets.face_crops``: portraits cropped to their face, as the app frames it."""

import numpy as np
import pytest

from keras_fer.datasets.face_crops import crop_to_faces
from keras_fer.datasets.records import FERDataset, Record
from keras_fer.faces import NoFaceError
from keras_fer.faces.detectors import Detection, FaceDetector


class BrightSquare(FaceDetector):
    """A stand-in detector: the bounding box of the pixels above 200, confidence 0.9."""

    def detect(self, image):
        ys, xs = np.nonzero(np.asarray(image) > 200)
        if not len(ys):
            return []
        box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
               int(ys.max() - ys.min() + 1))
        return [Detection(box=box, confidence=0.9), Detection(box=(0, 0, 4, 4), confidence=0.6)]


def _portrait(x, y, w, h, size=64, seed=0):
    image = np.random.default_rng(seed).integers(0, 100, (size, size), dtype=np.uint8)
    image[y:y + h, x:x + w] = 255
    return image


def test_crops_the_most_confident_face_with_the_apps_box_rule(tmp_path):
    from PIL import Image

    on_disk = tmp_path / "p1.png"
    Image.fromarray(_portrait(10, 20, 16, 24, seed=1)).save(on_disk)
    ds = FERDataset("toy", [
        Record(source="p0", label=1, image=_portrait(30, 8, 20, 20), subject="A", meta={"k": 1}),
        Record(source=str(on_disk), label=0, path=str(on_disk), subject="B",
               distribution=np.array([0.5, 0.5]))], ("angry", "happy"), info={"file": "x"})
    cropped = crop_to_faces(ds, detector=BrightSquare())
    a, b = cropped
    np.testing.assert_array_equal(a.image, ds[0].image[8:28, 30:50])
    assert a.meta == {"k": 1, "face_box": (30, 8, 20, 20)} and a.label == 1 and a.subject == "A"
    # Square: the longer side (24), centred on the box; read from the file.
    assert b.meta["face_box"] == (6, 20, 24, 24) and b.path is None
    np.testing.assert_array_equal(b.image, _portrait(10, 20, 16, 24, seed=1)[20:44, 6:30])
    np.testing.assert_array_equal(b.distribution, [0.5, 0.5])
    assert cropped.classes == ds.classes and cropped.info["file"] == "x"
    assert cropped.info["face_crop"]["detector"] == "BrightSquare"
    with_margin = crop_to_faces(ds, detector=BrightSquare(), margin=0.25)
    assert with_margin[0].meta["face_box"] == (25, 3, 30, 30)
    assert ds[0].meta == {"k": 1}  # the source dataset is untouched


def test_pictures_without_a_face_are_named_not_dropped():
    blank = np.zeros((32, 32), np.uint8)
    ds = FERDataset("toy", [Record(source="face.png", label=0, image=_portrait(4, 4, 8, 8, 32)),
                            Record(source="blank.png", label=0, image=blank)], ("angry",))
    with pytest.raises(NoFaceError, match=r"1 of 2 images: blank\.png"):
        crop_to_faces(ds, detector=BrightSquare())
    with pytest.raises(NoFaceError, match="confidence > 0.95"):
        crop_to_faces(ds.subset([0]), detector=BrightSquare(), threshold=0.95)


def test_a_real_portrait_is_cropped_by_the_default_detector():
    from keras_fer.app.preprocessing import sample_image_path
    from keras_fer.datasets.image_io import read_image

    photo = read_image(sample_image_path())
    canvas = np.full((photo.shape[0] + 200, photo.shape[1] + 200), 128, np.uint8)
    canvas[100:-100, 100:-100] = photo
    (face,) = crop_to_faces(FERDataset("one", [Record(source="gh", label=0, image=canvas)],
                                       ("angry",)))
    x, y, w, h = face.meta["face_box"]
    assert w == h and 60 <= w <= 0.8 * photo.shape[1]
    assert 100 <= x and x + w <= 100 + photo.shape[1]  # inside the photo, not the padding
