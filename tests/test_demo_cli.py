"""The embedded demo and the command line."""

import os
import subprocess
import sys

import numpy as np
import pytest

from keras_fer.app.demo import DEMO_CLASSES, draw_faces, run_demo


def test_draw_faces_is_deterministic_and_balanced():
    a, la = draw_faces(200, seed=3)
    b, lb = draw_faces(200, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert a.shape == (200, 48, 48) and a.dtype == np.uint8
    assert set(np.unique(la)) == set(range(len(DEMO_CLASSES)))
    # Expressions differ in the mouth region: class means there are not all alike.
    mouth = a[:, 28:40, 14:34].reshape(200, -1).mean(1)
    means = [mouth[la == k].mean() for k in range(len(DEMO_CLASSES))]
    assert max(means) - min(means) > 5


def test_run_demo_exports_matching_savedmodel(tmp_path):
    import keras
    import tensorflow as tf

    acc = run_demo(out_dir=str(tmp_path), epochs=1, num_train=96, num_test=32)
    assert 0.0 <= acc <= 1.0
    model = keras.saving.load_model(tmp_path / "demo_hfc_cnn.keras")
    served = tf.saved_model.load(str(tmp_path / "saved_model" / "1"))
    x = draw_faces(4, seed=9)[0][..., None].astype("float32")
    np.testing.assert_allclose(served.serve(tf.constant(x)).numpy(),
                               model.predict(x, verbose=0), atol=1e-5)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "keras_fer.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_cli_help_and_errors():
    out = _cli("--help")
    assert out.returncode == 0 and "demo" in out.stdout and "train" in out.stdout
    out = _cli("train", "--set", "nonsense=1")
    assert out.returncode != 0 and "unknown TrainConfig fields: nonsense" in out.stderr
    out = _cli("train", "--set", "novalue")
    assert out.returncode != 0 and "key=value" in out.stderr
