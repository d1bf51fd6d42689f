"""The app's batches, folders and video tracking (issue 14): ``Predictor.predict_batch``,
``keras-fer predict DIR --csv/--jsonl``, ``keras_fer.app.tracking``, per-stage video times,
the fast Haar default. Every image is made here (the bundled portrait, blank and corrupt
files, short videos of the portrait moving); the model is a tiny random mini-Xception."""

import csv
import json
import re

import numpy as np
import pytest

from keras_fer.app import FacePrediction, Predictor, process_video, sample_image_path
from keras_fer.app.tracking import FaceTracks, box_iou
from keras_fer.faces import HaarFaceDetector

from test_predict import _private_home, _run  # noqa: F401  (fixture: private cache)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import keras

    from keras_fer.models import create_model

    keras.utils.set_random_seed(1)
    model = create_model("mini_xception", num_classes=7, input_shape=(48, 48, 1), width=1)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def predictor(model_path):
    return Predictor(model_path)


@pytest.fixture(scope="module")
def photo():
    from PIL import Image

    return np.asarray(Image.open(sample_image_path()).convert("RGB"))


def _video(path, frames, fps=10.0):
    """Writes RGB frames as an mp4v (or MJPG .avi) file; returns the path written."""
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        path = path.with_suffix(".avi")
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps,
                                 (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


# ----------------------------------------------------------------------------- detector


def test_default_haar_scans_a_downscaled_copy_and_maps_boxes_back(photo):
    from keras_fer.app.predictor import make_detector

    fast, fer = make_detector("haar", 50), make_detector("haar-fer", 50)
    assert (fast.scale_factor, fast.min_neighbors, fast.scan_size) == (1.25, 1, 40)
    assert (fer.scale_factor, fer.min_neighbors, fer.scan_size) == (1.1, 5, None)
    assert fast.scan_scale() == pytest.approx(0.8) and fer.scan_scale() == 1.0
    assert make_detector("haar", 32).scan_scale() == 1.0  # never upscaled
    big = np.repeat(np.repeat(photo, 2, axis=0), 2, axis=1)  # the face is ~440 px here
    coarse = HaarFaceDetector(min_size=(100, 100), scan_size=30).detect(big)
    full = HaarFaceDetector(min_size=(100, 100)).detect(big)
    assert coarse and full
    assert box_iou(coarse[0].box, full[0].box) > 0.7  # boxes are in the big image's pixels
    with pytest.raises(ValueError, match="scan_size"):
        HaarFaceDetector(scan_size=0)


# ----------------------------------------------------------------------------- batches


def test_predict_batch_is_predict_per_image_in_one_model_call(predictor, photo, monkeypatch):
    blank = np.full((200, 300, 3), 90, np.uint8)
    two = np.concatenate([photo, photo], axis=1)
    singles = [predictor.predict(image) for image in (photo, blank, two)]
    calls = []
    original = predictor.probabilities
    monkeypatch.setattr(predictor, "probabilities",
                        lambda inputs: calls.append(len(inputs)) or original(inputs))
    batch = predictor.predict_batch([photo, blank, sample_image_path(), two])
    assert calls == [1 + 0 + 1 + 2]  # every face of every image in one call
    assert [len(faces) for faces in batch] == [1, 0, 1, 2]
    for got, want in zip([batch[0], batch[1], batch[3]], singles):
        assert [f.box for f in got] == [f.box for f in want]
        for g, w in zip(got, want):
            assert g.label == w.label
            np.testing.assert_allclose(list(g.probabilities.values()),
                                       list(w.probabilities.values()), atol=1e-6)
    assert predictor.predict_batch([]) == []
    with pytest.raises(ValueError, match="one list per image"):
        predictor.predict_batch([photo], [])


# ----------------------------------------------------------------------------- tracking


def _face(box, probs, names=("a", "b")):
    return FacePrediction(box=box, label=names[int(np.argmax(probs))],
                          probabilities=dict(zip(names, probs)), score=0.9, detection_box=box)


def test_tracks_keep_identity_smooth_labels_and_follow_a_moving_face():
    rng = np.random.default_rng(0)
    frame = np.zeros((200, 300), np.uint8)
    texture = rng.integers(0, 256, (60, 60)).astype(np.uint8)
    frame[50:110, 40:100] = texture
    tracks = FaceTracks(window=3)
    shown = tracks.update([_face((40, 50, 60, 60), [0.9, 0.1])], frame)
    assert shown[0].label == "a"
    # The face moves 7 pixels right and 4 down: follow() moves its box with it.
    moved = np.zeros_like(frame)
    moved[54:114, 47:107] = texture
    followed = tracks.follow(moved)
    # Matched on the face reduced to 32 pixels: to about one reduced pixel (2 here).
    assert np.abs(np.subtract(followed[0].box, (47, 54, 60, 60))).max() <= 2
    assert followed[0].detection_box == followed[0].box
    assert followed[0].label == "a"
    # Next analysed frame: the same face (IoU > 0.3) says "b" weakly: the average over the
    # window still says "a"; a second face far away starts its own track.
    shown = tracks.update([_face((48, 54, 60, 60), [0.4, 0.6]),
                           _face((200, 100, 50, 50), [0.2, 0.8])], moved)
    assert shown[0].label == "a"
    assert shown[0].probabilities["a"] == pytest.approx((0.9 + 0.4) / 2)
    assert shown[1].label == "b" and len(tracks.tracks) == 2
    # Without smoothing each analysed frame's own probabilities are shown.
    raw = FaceTracks(window=1)
    raw.update([_face((40, 50, 60, 60), [0.9, 0.1])], frame)
    assert raw.update([_face((40, 50, 60, 60), [0.4, 0.6])], frame)[0].label == "b"
    # A face that is gone ends its track.
    assert tracks.update([], moved) == [] and tracks.tracks == []


# ----------------------------------------------------------------------------- video


def test_video_stages_tracking_and_smoothing(predictor, photo, tmp_path, capsys):
    frames = [np.roll(photo, 6 * i, axis=1) for i in range(9)]
    clip = _video(tmp_path / "moving.mp4", frames)
    result = process_video(predictor, clip, out=tmp_path / "out.mp4", every=3, progress=False)
    assert (result.frames, result.analysed, result.faces) == (9, 3, 3)
    assert set(result.stage_seconds) == {"decode", "detect", "classify", "track", "draw",
                                         "write"}
    assert all(v >= 0 for v in result.stage_seconds.values())
    assert result.stage_seconds["draw"] > 0 and result.total_fps <= result.fps
    # Held still (--no-track) the box of frame 2 is frame 0's; tracked, it moved with the face.
    held = process_video(predictor, clip, every=3, track=False, smooth=1, progress=False)
    assert held.frames == 9

    code, out, err = _run(capsys, "video", clip, "--every", "3", "--out", tmp_path / "a.mp4",
                          "--model", predictor.model_name, "--no-progress", "--no-smooth")
    assert code == 0, err
    assert "frames processed: 9 (3 analysed, one in 3)" in out
    stages = re.search(r"ms per frame: decode ([\d.]+), detect ([\d.]+), classify ([\d.]+), "
                       r"track ([\d.]+), draw ([\d.]+), write ([\d.]+)", out)
    assert stages, out
    assert re.search(r"speed: [\d.]+ FPS .*; [\d.]+ FPS with drawing and encoding", out)


def test_tracked_boxes_follow_the_face_between_detections(predictor, photo):
    import cv2

    frames = [np.roll(photo, 6 * i, axis=1) for i in range(4)]
    kept = predictor.detect(frames[0])
    tracks = FaceTracks()
    start = tracks.update(predictor.classify(frames[0], kept),
                          cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY))[0].box
    for i in range(1, 4):
        box = tracks.follow(cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY))[0].box
        assert abs(box[0] - (start[0] + 6 * i)) <= 3 and abs(box[1] - start[1]) <= 3


def test_video_that_does_not_open_is_one_line(model_path, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 10)
    code, out, err = _run(capsys, "video", broken, "--model", model_path, "--no-progress",
                          "--out", tmp_path / "x.mp4")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "OpenCV cannot open it" in lines[0] and "Traceback" not in err


# ----------------------------------------------------------------------------- folders


def test_predict_folder_writes_one_row_per_face(model_path, photo, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(np.concatenate([photo, photo], axis=1)).save(folder / "two.png")
    Image.fromarray(photo).save(folder / "sub" / "one.jpg")
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(folder / "blank.png")
    (folder / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"broken" * 30)
    (folder / "notes.txt").write_text("not an image")
    empty = tmp_path / "empty"
    empty.mkdir()
    rows_csv, rows_jsonl = tmp_path / "faces.csv", tmp_path / "out" / "faces.jsonl"
    code, out, err = _run(capsys, "predict", folder, empty, "--model", model_path,
                          "--csv", rows_csv, "--jsonl", rows_jsonl)
    assert code == 1  # a bad file and an empty folder; the others were still processed
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 2 and "Traceback" not in err
    assert "no image files in this folder" in errors[0] and str(empty) in errors[0]
    assert str(folder / "bad.jpg") in errors[1]
    assert f"keras-fer predict: note: {folder / 'blank.png'}: no face found" in err
    assert "4 images: 3 faces, 1 without a face, 2 errors" in out

    with open(rows_csv, newline="") as handle:
        table = list(csv.DictReader(handle))
    files = [row["file"] for row in table]
    assert files == [str(folder / n) for n in ("bad.jpg", "blank.png", "sub/one.jpg",
                                                "two.png", "two.png")]
    assert table[0]["error"] and table[1]["error"] == "no face found"
    for row in table[2:]:
        assert row["error"] == "" and row["label"] in ("angry", "disgust", "fear", "happy",
                                                        "sad", "surprise", "neutral")
        assert int(row["w"]) > 50 and float(row[row["label"]]) == float(row["probability"])
        assert sum(float(row[n]) for n in ("angry", "disgust", "fear", "happy", "sad",
                                           "surprise", "neutral")) == pytest.approx(1, abs=1e-6)
    assert [row["face"] for row in table[3:]] == ["1", "2"]
    lines = [json.loads(line) for line in rows_jsonl.read_text().splitlines()]
    assert [line["file"] for line in lines] == files
    assert lines[3]["probabilities"][lines[3]["label"]] == pytest.approx(lines[3]["probability"])
