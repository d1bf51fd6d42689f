"""The face-expression app: keras_fer.app, `keras-fer predict` and `keras-fer video`.

The model is a tiny mini-Xception saved to a temporary .keras file (never the zoo), with a
random, large classifier kernel so that its probabilities are far from uniform: a
preprocessing mistake (wrong resize, BGR for RGB) then moves them by 1e-3 or more, far beyond
the 1e-5 tolerance of the independent reference below.
"""

import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from keras_fer.app import FacePrediction, Predictor, annotate, process_video, sample_image_path
from keras_fer.app.cli import add_predict_parsers

LUMA = np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module", autouse=True)
def _private_home(tmp_path_factory):
    """The TFLite cache goes to a private KERAS_FER_HOME, never the user's."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("home")
        mp.setenv("KERAS_FER_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import keras

    from keras_fer.models import create_model

    keras.utils.set_random_seed(0)
    model = create_model("mini_xception", num_classes=7, input_shape=(48, 48, 1))
    dense = model.get_layer("predictions")
    rng = np.random.default_rng(0)
    dense.kernel.assign(rng.normal(0, 20, dense.kernel.shape).astype("float32"))
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def predictor(model_path):
    return Predictor(model_path)


@pytest.fixture(scope="module")
def reference_model(model_path):
    """The same file loaded separately, for the independent reference."""
    import keras

    import keras_fer.models  # noqa: F401  (registers the classes)

    return keras.saving.load_model(model_path)


@pytest.fixture(scope="module")
def photo():
    from PIL import Image

    return np.asarray(Image.open(sample_image_path()).convert("RGB"))


@pytest.fixture(scope="module")
def files(tmp_path_factory, photo):
    """The photo, the photo twice side by side, a blank image and a corrupt JPEG, as files."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    paths = {"two": root / "two.png", "blank": root / "blank.png", "bad": root / "bad.jpg",
             "crop": root / "crop48.png"}
    Image.fromarray(np.concatenate([photo, photo], axis=1)).save(paths["two"])
    Image.fromarray(np.full((240, 320, 3), 90, np.uint8)).save(paths["blank"])
    paths["bad"].write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 20)
    grey = (photo[105:327, 155:377].astype(np.float64) @ LUMA).astype(np.uint8)
    Image.fromarray(grey[::4, ::4][:48, :48].copy()).save(paths["crop"])
    return {k: str(v) for k, v in paths.items()}


def _reference_probabilities(model, image, box, colour=False):
    """softmax(model(crop)) by the documented preprocessing, written out independently: NumPy
    crop at the reported box, Rec. 601 luma in float (unless ``colour``), bilinear antialiased
    resize (tf.image.resize), rounding to whole grey levels, grey replicated for an RGB model."""
    import tensorflow as tf

    x, y, w, h = box
    crop = np.asarray(image, dtype=np.float64)[y:y + h, x:x + w]
    if crop.ndim == 2:
        crop = crop[:, :, None]
    pixels = crop if colour else (crop @ LUMA)[:, :, None] if crop.shape[-1] == 3 else crop
    size = tuple(model.input_shape[1:3])
    if pixels.shape[:2] != size:
        pixels = tf.image.resize(pixels, size, method="bilinear", antialias=True).numpy()
    pixels = np.clip(np.round(pixels), 0, 255).astype("float32")
    if pixels.shape[-1] != model.input_shape[-1]:
        pixels = np.repeat(pixels, model.input_shape[-1], axis=-1)
    logits = np.asarray(model(pixels[None]), dtype=np.float64)[0]
    e = np.exp(logits - logits.max())
    return e / e.sum()


def _run(capsys, *argv):
    """Runs a predict/video command in-process through the real argument parser."""
    parser = argparse.ArgumentParser(prog="keras-fer")
    add_predict_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args([str(a) for a in argv])
    code = args.func(args)
    out = capsys.readouterr()
    return code, out.out, out.err


# ----------------------------------------------------------------------------- API


def test_bundled_photo_is_shipped_and_has_one_face(predictor, reference_model, photo):
    path = sample_image_path()
    assert os.path.isfile(path) and os.path.getsize(path) < 300_000
    assert os.path.isfile(os.path.join(os.path.dirname(path), "README.md"))
    import configparser

    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(os.path.join(os.path.dirname(__file__), os.pardir, "setup.cfg"))
    assert "assets/*" in setup_cfg["options.package_data"]["keras_fer"].split()

    faces = predictor.predict(path)
    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, FacePrediction)
    x, y, w, h = face.box
    assert w == h and 150 < w < 300 and 100 < x < 220 and 60 < y < 160  # the head, not the flag
    assert face.score > 0.5 and face.detection_box is not None
    assert list(face.probabilities) == predictor.class_names == [
        "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-9)
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    np.testing.assert_allclose(list(face.probabilities.values()),
                               _reference_probabilities(reference_model, photo, face.box),
                               atol=1e-5)


def test_reference_can_tell_a_different_preprocessing(predictor, reference_model, photo):
    """The reference above has power: OpenCV grey + INTER_AREA resize of the same crop moves the
    probabilities well beyond the 1e-5 tolerance."""
    import cv2

    model = reference_model
    face = predictor.predict(photo)[0]
    x, y, w, h = face.box
    alt = cv2.resize(cv2.cvtColor(photo[y:y + h, x:x + w], cv2.COLOR_RGB2GRAY), (48, 48),
                     interpolation=cv2.INTER_AREA).astype("float32")
    logits = np.asarray(model(alt[None, :, :, None]), dtype=np.float64)[0]
    alt_probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert np.abs(alt_probs - list(face.probabilities.values())).max() > 1e-4


def test_two_faces_go_through_the_model_in_one_call(predictor, reference_model, photo,
                                                    monkeypatch):
    two = np.concatenate([photo, photo], axis=1)
    calls = []
    original = predictor.probabilities
    monkeypatch.setattr(predictor, "probabilities",
                        lambda inputs: calls.append(len(inputs)) or original(inputs))
    faces = predictor.predict(two)
    assert calls == [2]
    assert sorted(f.box[0] < photo.shape[1] for f in faces) == [False, True]  # one per half
    for face in faces:
        assert face.box[0] + face.box[2] <= two.shape[1]
        np.testing.assert_allclose(list(face.probabilities.values()),
                                   _reference_probabilities(reference_model, two, face.box),
                                   atol=1e-5)


def test_blank_image_has_no_face_and_corrupt_file_names_itself(predictor, files):
    from keras_fer.datasets.image_io import ImageReadError

    assert predictor.predict(files["blank"]) == []
    assert predictor.predict(np.zeros((64, 80), np.uint8)) == []
    with pytest.raises(ImageReadError, match=re.escape(files["bad"])):
        predictor.predict(files["bad"])
    with pytest.raises(ImageReadError, match="does not exist"):
        predictor.predict(files["bad"] + ".missing")
    with pytest.raises(ValueError, match="image must be uint8"):
        predictor.predict(np.zeros((64, 64), np.float32))


def test_predict_crop_classifies_the_whole_image(predictor, reference_model, files):
    from PIL import Image

    crop = np.asarray(Image.open(files["crop"]))
    face = predictor.predict_crop(files["crop"])
    assert face.box == (0, 0, 48, 48) and face.score is None and face.detection_box is None
    # 48x48 grey is already the model's input: no resize, so this is softmax(model(pixels)).
    logits = np.asarray(reference_model(crop[None, :, :, None].astype("float32")))[0]
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(list(face.probabilities.values()), expected, atol=1e-5)
    faces = predictor.predict_crops([crop, np.repeat(crop[:, :, None], 3, axis=2)])
    np.testing.assert_allclose(list(faces[0].probabilities.values()),
                               list(faces[1].probabilities.values()), atol=1e-6)


def test_numpy_standardisation_is_bytewise_the_pipeline_one():
    """standardize_numpy (the app's fast path) against the training pipeline's TensorFlow
    function itself, traced as the pipeline runs it: identical bytes on random crops of every
    kind (grey, grey+alpha, RGB, RGBA; 1 pixel to 400; down- and upscaled; odd sizes)."""
    import tensorflow as tf

    from keras_fer.datasets.pipeline import standardize_image
    from keras_fer.app.preprocessing import standardize_numpy

    rng = np.random.default_rng(7)
    for channels, size in ((1, (48, 48)), (3, (64, 64)), (1, (40, 56)), (3, (224, 224))):
        fn = tf.function(lambda image: standardize_image(image, channels, size),
                         input_signature=[tf.TensorSpec([None, None, None], tf.uint8)])
        shapes = [(1, 1, 1), (1, 5, 3), size + (1,), size + (3,)] + [
            (int(rng.integers(1, 400)), int(rng.integers(1, 400)), int(rng.choice([1, 2, 3, 4])))
            for _ in range(12 if size == (224, 224) else 40)]
        for shape in shapes:
            crop = rng.integers(0, 256, shape, dtype=np.uint8)
            np.testing.assert_array_equal(standardize_numpy(crop, channels, size),
                                          fn(crop).numpy(), err_msg=str((shape, size)))


def test_preprocess_matches_the_pipeline_for_huge_crops_too(predictor):
    """A crop side above 2048 pixels takes the TensorFlow path (no 2048^2 weight table)."""
    import tensorflow as tf

    from keras_fer.datasets.pipeline import standardize_image

    crop = np.random.default_rng(2).integers(0, 256, (2100, 40, 3), dtype=np.uint8)
    expected = tf.function(lambda image: standardize_image(image, 1, (48, 48)))(crop).numpy()
    np.testing.assert_array_equal(predictor.preprocess([crop])[0], expected)


def test_tensorflow_standardisation_is_used_if_numpy_ever_differs(model_path, photo,
                                                                  monkeypatch):
    import keras_fer.app.preprocessing as preprocessing

    reference = Predictor(model_path, backend="keras")
    expected = reference.predict(photo)
    assert reference.preprocessor.uses_numpy
    original = preprocessing.standardize_numpy
    monkeypatch.setattr(preprocessing, "standardize_numpy",
                        lambda crop, c, size: original(crop, c, size) ^ np.uint8(1))
    predictor = Predictor(model_path, backend="keras")
    faces = predictor.predict(photo)
    assert not predictor.preprocessor.uses_numpy
    assert [f.probabilities for f in faces] == [f.probabilities for f in expected]


def test_softmax_model_outputs_are_used_as_probabilities():
    import keras

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Rescaling(1 / 255.0)(keras.layers.AveragePooling2D(8)(inputs))
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    predictor = Predictor(model)
    assert predictor.outputs_probabilities
    crop = np.random.default_rng(1).integers(0, 256, (48, 48), dtype=np.uint8)
    face = predictor.predict_crop(crop)
    np.testing.assert_allclose(list(face.probabilities.values()),
                               np.asarray(model(crop[None, :, :, None].astype("float32")))[0],
                               atol=1e-6)


def test_rgb_model_gets_grey_faces_unless_colour_is_asked(photo):
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((40, 40, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, kernel_initializer=keras.initializers.RandomNormal(0, 1))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(
        7, kernel_initializer=keras.initializers.RandomNormal(0, 3))(x))
    grey_face = Predictor(model).predict(photo)[0]
    colour_face = Predictor(model, grayscale=False).predict(photo)[0]
    assert grey_face.box == colour_face.box
    grey_probs = list(grey_face.probabilities.values())
    colour_probs = list(colour_face.probabilities.values())
    np.testing.assert_allclose(grey_probs, _reference_probabilities(model, photo, grey_face.box),
                               atol=1e-5)
    np.testing.assert_allclose(colour_probs, _reference_probabilities(
        model, photo, colour_face.box, colour=True), atol=1e-5)
    assert np.abs(np.subtract(grey_probs, colour_probs)).max() > 1e-3


def test_annotate_keeps_the_size_and_draws(predictor, photo):
    faces = predictor.predict(photo)
    before = photo.copy()
    drawn = annotate(photo, faces)
    assert drawn.shape == photo.shape and drawn.dtype == np.uint8
    assert not np.array_equal(drawn, photo)
    np.testing.assert_array_equal(photo, before)  # drawn on a copy
    x, y, w, h = faces[0].box
    assert (drawn[y + h // 2, x] != photo[y + h // 2, x]).any()  # the box's left edge
    grey = annotate(photo[:, :, 0], faces)
    assert grey.shape == photo.shape  # grey input comes back as RGB


def test_bad_arguments(model_path, tmp_path):
    with pytest.raises(ValueError, match="min_face must be an integer >= 1, got 0"):
        Predictor(model_path, min_face=0)
    with pytest.raises(ValueError, match="margin must be >= 0, got -1"):
        Predictor(model_path, margin=-1)
    with pytest.raises(ValueError, match="grayscale must be True or False, got 'yes'"):
        Predictor(model_path, grayscale="yes")
    with pytest.raises(ValueError, match="detector 'yunet' needs detector_model"):
        Predictor(model_path, detector="yunet")
    with pytest.raises(ValueError, match="detector must be one of"):
        Predictor(model_path, detector="mtcnn")
    with pytest.raises(ValueError, match="model: file not found: .*nothing.keras"):
        Predictor(str(tmp_path / "nothing.keras"))
    with pytest.raises(ValueError, match="video source .*no such file"):
        process_video(None, str(tmp_path / "missing.mp4"))


# ----------------------------------------------------------------------------- CLI


def test_cli_json_matches_independent_reference(model_path, reference_model, files, capsys):
    from PIL import Image

    code, out, err = _run(capsys, "predict", files["two"], files["blank"], "--json",
                          "--model", model_path)
    assert code == 0
    doc = json.loads(out)
    assert doc["detector"] == "haar" and len(doc["class_names"]) == 7
    two, blank = doc["images"]
    assert len(two["faces"]) == 2 and blank["faces"] == []
    assert (two["width"], two["height"]) == (1024, 600)
    model = reference_model
    image = np.asarray(Image.open(files["two"]).convert("RGB"))
    for face in two["faces"]:
        probs = [face["probabilities"][n] for n in doc["class_names"]]
        assert sum(probs) == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(probs, _reference_probabilities(model, image, face["box"]),
                                   atol=1e-5)
        assert face["label"] == doc["class_names"][int(np.argmax(probs))]


def test_cli_table_out_and_no_face_message(model_path, files, tmp_path, capsys):
    from PIL import Image

    out_file = tmp_path / "annotated.png"
    code, out, _ = _run(capsys, "predict", files["two"], "--model", model_path,
                        "--out", out_file)
    assert code == 0 and "2 faces" in out and "neutral" in out and str(out_file) in out
    assert Image.open(out_file).size == (1024, 600)

    out_dir = tmp_path / "annotated"
    code, out, _ = _run(capsys, "predict", files["two"], files["blank"], "--model", model_path,
                        "--out", out_dir)
    assert code == 0 and "no face found" in out
    assert Image.open(out_dir / "two_annotated.png").size == (1024, 600)
    assert Image.open(out_dir / "blank_annotated.png").size == (320, 240)


def test_cli_sample_photo_no_detect_and_errors(model_path, files, capsys):
    code, out, err = _run(capsys, "predict", "--model", model_path)
    assert code == 0 and "bundled sample photo" in err and "1 face" in out

    code, out, _ = _run(capsys, "predict", files["crop"], "--no-detect", "--json",
                        "--model", model_path)
    face, = json.loads(out)["images"][0]["faces"]
    assert face["box"] == [0, 0, 48, 48] and face["score"] is None

    code, out, err = _run(capsys, "predict", files["two"], files["bad"], "--model", model_path)
    assert code == 1 and "2 faces" in out and files["bad"] in err and "Traceback" not in err
    code, out, err = _run(capsys, "predict", files["two"], "--model", "missing/model.keras")
    assert code == 1 and "model: file not found: missing/model.keras" in err


def test_cli_backends_agree(model_path, files, capsys, _private_home):
    """--backend keras and the default (auto: TFLite, converted once into the cache) print the
    same probabilities; the model line and the JSON name the backend."""
    docs = {}
    for backend in ("auto", "keras", "tflite"):
        code, out, _ = _run(capsys, "predict", files["two"], "--json", "--model", model_path,
                            "--backend", backend)
        assert code == 0
        docs[backend] = json.loads(out)
    assert [docs[b]["backend"] for b in docs] == ["tflite", "keras", "tflite"]
    for backend in ("auto", "tflite"):
        for face, ref in zip(docs[backend]["images"][0]["faces"],
                             docs["keras"]["images"][0]["faces"]):
            assert face["box"] == ref["box"]
            np.testing.assert_allclose(list(face["probabilities"].values()),
                                       list(ref["probabilities"].values()), atol=1e-5)
    assert len(list((_private_home / "tflite").glob("*.tflite"))) == 1
    code, out, _ = _run(capsys, "predict", files["crop"], "--no-detect", "--model", model_path,
                        "--backend", "keras")
    assert code == 0 and "backend keras" in out.splitlines()[0]


def test_cli_video_every_2(model_path, photo, tmp_path, capsys):
    import cv2

    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0,
                             (photo.shape[1], photo.shape[0]))
    if not writer.isOpened():
        clip = tmp_path / "clip.avi"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0,
                                 (photo.shape[1], photo.shape[0]))
    for i in range(10):
        writer.write(cv2.cvtColor(np.roll(photo, 4 * i, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()

    out_video = tmp_path / "annotated.mp4"
    code, out, _ = _run(capsys, "video", clip, "--every", "2", "--out", out_video,
                        "--model", model_path, "--no-progress")
    assert code == 0
    assert "frames processed: 10 (5 analysed" in out
    assert "faces found: 5" in out
    fps = re.search(r"speed: (\d+\.\d) FPS", out)
    assert fps and float(fps.group(1)) > 0
    written = re.search(r"annotated video: (\S+)", out).group(1)
    capture = cv2.VideoCapture(written)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 10 and frames[0].shape == photo.shape


def test_cli_help_for_each_command():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    expected = {(): ("predict", "video"),
                ("predict",): ("--json", "--no-detect", "--backend", "examples:"),
                ("video",): ("--every", "--max-frames", "examples:")}
    for argv, words in expected.items():
        out = subprocess.run([sys.executable, "-m", "keras_fer.cli", *argv, "--help"],
                             capture_output=True, text=True, timeout=120, env=env)
        assert out.returncode == 0, out.stderr
        for word in words:
            assert word in out.stdout, (argv, word)


# ----------------------------------------------------------------------------- bad input


def _bomb_png(width, height):
    """A PNG whose header claims width x height pixels, with a tiny IDAT (PIL refuses it as
    a decompression bomb from the header alone)."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_cli_bad_files_are_reported_and_the_others_still_processed(model_path, files, tmp_path,
                                                                   capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_bomb_png(30000, 30000))
    missing = tmp_path / "missing.png"
    code, out, err = _run(capsys, "predict", files["two"], bomb, missing, files["blank"],
                          "--json", "--model", model_path)
    assert code == 1
    doc = json.loads(out)
    assert [image["path"] for image in doc["images"]] == [files["two"], str(bomb), str(missing),
                                                          files["blank"]]
    two, bombed, absent, blank = doc["images"]
    assert len(two["faces"]) == 2 and blank["faces"] == []
    assert "too many pixels" in bombed["error"] and "does not exist" in absent["error"]
    lines = err.strip().splitlines()
    assert len(lines) == 3 and "Traceback" not in err
    assert lines[0] == f"keras-fer predict: error: {missing}: file does not exist"  # at once
    assert str(bomb) in lines[1] and "too many pixels" in lines[1]
    assert lines[2] == f"keras-fer predict: note: {files['blank']}: no face found"
    # Only bad files: nothing to do, the model is not even loaded.
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = _run(capsys, "predict", missing, empty, "--model", model_path)
    assert code == 1 and out == ""
    assert err.splitlines() == [f"keras-fer predict: error: {empty}: no image files in this "
                                f"folder (looked for .png, .jpg, .jpeg, .bmp, .tif, .tiff, "
                                f".webp)",
                                f"keras-fer predict: error: {missing}: file does not exist"]


def test_empty_batch_in_the_app(predictor):
    assert predictor.predict_crops([]) == []
    assert predictor.probabilities(np.zeros((0, 48, 48, 1), np.float32)).shape == (0, 7)
