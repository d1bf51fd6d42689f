"""keras_fer.app.tflite and the Predictor's TFLite backend.

The reference for every TFLite output is the Keras model itself, called separately (a different
runtime: TensorFlow kernels against TFLite/XNNPACK kernels), never the code under test.
"""

import json
import os
import sys
import warnings

import numpy as np
import pytest

from keras_fer.app import Predictor, sample_image_path, tflite
from keras_fer.app.tflite import TFLiteConversionError, TFLiteRunner, cached_tflite, to_tflite


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    """Every test gets an empty KERAS_FER_HOME: the cache never touches the user's."""
    monkeypatch.setenv("KERAS_FER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _sharp_mini_xception(seed=0):
    """A tiny mini-Xception with a large random classifier kernel: its probabilities are far
    from uniform, so a small change of the logits shows in them."""
    import keras

    from keras_fer.models import create_model

    keras.utils.set_random_seed(seed)
    model = create_model("mini_xception", num_classes=7, input_shape=(48, 48, 1))
    dense = model.get_layer("predictions")
    dense.kernel.assign(np.random.default_rng(seed).normal(0, 20, dense.kernel.shape)
                        .astype("float32"))
    return model


@pytest.fixture(scope="module")
def model():
    return _sharp_mini_xception()


@pytest.fixture(scope="module")
def model_path(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "sharp.keras"
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def content(model):
    return to_tflite(model)


@pytest.fixture(scope="module")
def photo():
    from PIL import Image

    return np.asarray(Image.open(sample_image_path()).convert("RGB"))


def _pixels(n, seed=0, shape=(48, 48, 1)):
    return np.random.default_rng(seed).uniform(0, 255, (n,) + shape).astype("float32")


def _keras(model, x):
    return np.asarray(model(x, training=False), dtype=np.float64)


# ------------------------------------------------------------------- backends agree


def test_tflite_and_keras_backends_give_the_same_probabilities_on_real_crops(model_path,
                                                                               photo):
    fast = Predictor(model_path, backend="tflite")
    slow = Predictor(model_path, backend="keras")
    assert (fast.backend, slow.backend) == ("tflite", "keras")
    assert fast.tflite is not None and slow.tflite is None
    two = np.concatenate([photo, photo], axis=1)
    grey = (photo.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    for image in (photo, two):
        faces, reference = fast.predict(image), slow.predict(image)
        assert len(faces) == len(reference) >= 1
        for face, ref in zip(faces, reference):
            assert face.box == ref.box
            np.testing.assert_allclose(list(face.probabilities.values()),
                                       list(ref.probabilities.values()), atol=1e-5)
    # Crops of several sizes (resized) and the 48x48 size (no resize), grey and RGB.
    crops = [photo[100:330, 150:380], grey[100:330, 150:380], grey[105:327:4, 155:377:4][:48, :48],
             grey[120:180, 200:290], photo[0:48, 0:48]]
    fast_p = fast.probabilities(fast.preprocess(crops))
    slow_p = slow.probabilities(slow.preprocess(crops))
    np.testing.assert_allclose(fast_p, slow_p, atol=1e-5)
    assert fast_p.max() > 0.5  # the model is sharp: the comparison is not between uniforms


def test_the_1e5_comparison_can_fail(model, content):
    """Dynamic-range quantisation changes the probabilities by far more than 1e-5, so the
    tolerance above is tight enough to see a different model; it is also 4x smaller."""
    from keras_fer.app.predictor import softmax

    quantised = to_tflite(model, quantize="dynamic")
    assert len(quantised) < 0.5 * len(content)
    x = _pixels(16, seed=3)
    expected = softmax(_keras(model, x))
    got = softmax(TFLiteRunner(quantised)(x))
    assert np.abs(got - expected).max() > 1e-4
    np.testing.assert_allclose(softmax(TFLiteRunner(content)(x)), expected, atol=1e-5)


def test_softmax_model_runs_on_tflite():
    import keras

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Rescaling(1 / 255.0)(keras.layers.AveragePooling2D(8)(inputs))
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    predictor = Predictor(model, backend="tflite")
    assert predictor.backend == "tflite" and predictor.outputs_probabilities
    assert predictor.tflite_path is None  # in memory: converted, not cached
    crop = np.random.default_rng(1).integers(0, 256, (48, 48), dtype=np.uint8)
    face = predictor.predict_crop(crop)
    np.testing.assert_allclose(list(face.probabilities.values()),
                               _keras(model, crop[None, :, :, None].astype("float32"))[0],
                               atol=1e-6)
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


# ------------------------------------------------------------------- runner


def test_runner_handles_changing_batch_sizes(model, content):
    runner = TFLiteRunner(content, num_threads=1)
    assert runner.input_shape == (48, 48, 1) and runner.fixed_batch is None
    for n in (1, 3, 1, 5, 2):
        x = _pixels(n, seed=n)
        expected = _keras(model, x)
        got = runner(x)
        assert got.shape == (n, 7) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    assert runner(np.zeros((0, 48, 48, 1))).shape == (0, 7)
    # uint8 pixels are accepted (converted to float32), as the Predictor's inputs are.
    x = _pixels(2, seed=9)
    np.testing.assert_allclose(runner(x.round().astype(np.uint8)), runner(x.round()))


def test_fixed_batch_model_runs_larger_batches_in_padded_chunks(model):
    runner = TFLiteRunner(to_tflite(model, batch_size=2))
    assert runner.fixed_batch == 2
    x = _pixels(3, seed=4)
    expected = _keras(model, x)
    np.testing.assert_allclose(runner(x), expected, rtol=0,
                               atol=1e-4 * np.abs(expected).max())


def test_runner_reads_a_file(content, model, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(content)
    x = _pixels(2)
    np.testing.assert_array_equal(TFLiteRunner(str(path))(x), TFLiteRunner(content)(x))


# ------------------------------------------------------------------- conversion checks


def test_conversion_check_rejects_a_model_that_computes_something_else(model, monkeypatch):
    original = TFLiteRunner.__call__
    monkeypatch.setattr(TFLiteRunner, "__call__", lambda self, b: original(self, b) + 0.5)
    with pytest.raises(TFLiteConversionError, match="differ from Keras"):
        to_tflite(model)
    monkeypatch.setattr(TFLiteRunner, "__call__", lambda self, b: original(self, b) * np.nan)
    with pytest.raises(TFLiteConversionError, match="differ from Keras"):
        to_tflite(model)


def _roll_model():
    """A model with ``tf.Roll`` (``keras.ops.roll``, as in Swin's shifted windows): no TFLite
    built-in kernel."""
    import keras

    inputs = keras.Input((16, 16, 1))
    x = _Roll()(inputs)
    outputs = keras.layers.Dense(7)(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def _register_roll():
    import keras

    @keras.saving.register_keras_serializable(package="keras_fer_tests")
    class Roll(keras.layers.Layer):
        def call(self, x):
            return keras.ops.roll(x, 1, axis=1)

    return Roll


_Roll = _register_roll()


def test_auto_falls_back_to_keras_with_a_one_line_warning(tmp_path, monkeypatch, capfd,
                                                          _private_home):
    model = _roll_model()
    with pytest.raises(TFLiteConversionError, match="ops without a TFLite built-in kernel: "
                                                    "tf.Roll") as info:
        Predictor(model, backend="tflite")
    # The converter's screenful of MLIR diagnostics is kept on the error, not printed.
    assert "tf.Roll" in info.value.converter_log
    assert "neither a custom op" not in capfd.readouterr().err
    with pytest.warns(RuntimeWarning) as caught:
        predictor = Predictor(model)
    message, = [str(w.message) for w in caught if "TFLite" in str(w.message)]
    assert "\n" not in message and "tf.Roll" in message and "Keras backend" in message
    assert predictor.backend == "keras" and predictor.tflite is None
    crop = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    assert len(predictor.predict_crop(crop).probabilities) == 7

    # From a file, the failure is remembered: the second Predictor does not convert again.
    path = tmp_path / "roll.keras"
    model.save(path)
    calls = []
    original = tflite.convert
    monkeypatch.setattr(tflite, "convert", lambda *a, **k: calls.append(1) or original(*a, **k))
    for _ in range(2):
        with pytest.warns(RuntimeWarning, match="tf.Roll"):
            assert Predictor(str(path)).backend == "keras"
    assert len(calls) == 1
    failed, = (_private_home / "tflite").glob("*.failed.json")
    assert "tf.Roll" in json.loads(failed.read_text())["error"]


# ------------------------------------------------------------------- cache


def test_cache_converts_once_per_file_content(model_path, model, monkeypatch, tmp_path,
                                              _private_home):
    import hashlib

    calls = []
    original = tflite.convert
    monkeypatch.setattr(tflite, "convert", lambda *a, **k: calls.append(1) or original(*a, **k))
    first = Predictor(model_path)
    assert first.backend == "tflite" and len(calls) == 1
    digest = hashlib.sha256(open(model_path, "rb").read()).hexdigest()
    assert first.tflite_path == str(_private_home / "tflite" / f"{digest}.tflite")
    mtime = os.stat(first.tflite_path).st_mtime_ns
    second = Predictor(model_path)
    assert len(calls) == 1 and second.tflite_path == first.tflite_path
    assert os.stat(first.tflite_path).st_mtime_ns == mtime
    # Without a loaded model, cached_tflite reads the same cache entry.
    assert cached_tflite(model_path) == first.tflite_path and len(calls) == 1
    assert os.listdir(_private_home / "tflite") == [f"{digest}.tflite"]  # no temporary left

    # Other weights in a file: another key, another conversion, other outputs.
    other = _sharp_mini_xception(seed=1)
    other_path = tmp_path / "other.keras"
    other.save(other_path)
    third = Predictor(str(other_path))
    assert len(calls) == 2 and third.tflite_path != first.tflite_path
    x = _pixels(2)
    np.testing.assert_allclose(third.tflite(x), _keras(other, x), rtol=0,
                               atol=1e-4 * np.abs(_keras(other, x)).max())


def test_unreadable_cache_file_is_converted_again(model_path, _private_home):
    path = Predictor(model_path).tflite_path
    with open(path, "wb") as f:
        f.write(b"truncated")
    predictor = Predictor(model_path)
    assert predictor.backend == "tflite" and predictor.tflite_path == path
    assert os.path.getsize(path) > 1000


def test_zoo_model_is_cached_under_its_entry_digest(_private_home, monkeypatch, tmp_path):
    from keras_fer import zoo
    from keras_fer.zoo import store

    monkeypatch.setattr(store, "BUNDLED_DIR", tmp_path / "bundled")
    model = _sharp_mini_xception(seed=2)
    model.class_names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    entry = zoo.publish(model, "mini_xception.tflitetest", metrics={"accuracy": 0.5},
                        dataset="synthetic", protocol="none", recipe="none")
    predictor = Predictor("mini_xception.tflitetest")
    digest = entry.files[entry.keras_file]["sha256"]
    assert predictor.backend == "tflite"
    assert predictor.tflite_path == str(_private_home / "tflite" / f"{digest}.tflite")
    x = _pixels(2)
    np.testing.assert_allclose(predictor.tflite(x), _keras(model, x), rtol=0,
                               atol=1e-4 * np.abs(_keras(model, x)).max())


# ------------------------------------------------------------------- interpreter


def test_tf_lite_interpreter_fallback_is_silent(content, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # as if not installed
    assert tflite.interpreter_class()[1] == "tf.lite"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner = TFLiteRunner(content)
    assert runner.interpreter_name == "tf.lite"
    assert not [w for w in caught if "deprecated" in str(w.message)]


def test_ai_edge_litert_is_preferred_when_installed(content):
    pytest.importorskip("ai_edge_litert.interpreter")
    assert TFLiteRunner(content).interpreter_name == "ai_edge_litert"


# ------------------------------------------------------------------- arguments


def test_bad_arguments(model, content, model_path, tmp_path):
    import keras

    with pytest.raises(ValueError, match="quantize must be one of .*got 'int8'"):
        to_tflite(model, quantize="int8")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1 or None, got 0"):
        to_tflite(model, batch_size=0)
    a, b = keras.Input((8, 8, 1)), keras.Input((8, 8, 1))
    with pytest.raises(ValueError, match="exactly one input, got 2"):
        to_tflite(keras.Model([a, b], keras.layers.Add()([a, b])))
    with pytest.raises(ValueError, match="num_threads must be an integer >= 1 or None, got 0"):
        TFLiteRunner(content, num_threads=0)
    with pytest.raises(ValueError, match="not a loadable TFLite model"):
        TFLiteRunner(b"not a flatbuffer at all")
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        TFLiteRunner(str(tmp_path / "missing.tflite"))
    with pytest.raises(ValueError, match=r"batch must have shape \(N,\) \+ \(48, 48, 1\), "
                                         r"got \(2, 32, 32, 1\)"):
        TFLiteRunner(content)(np.zeros((2, 32, 32, 1)))
    with pytest.raises(ValueError, match="model_path is required"):
        cached_tflite()
    with pytest.raises(ValueError, match="model_path: file not found"):
        cached_tflite(str(tmp_path / "none.keras"))
    with pytest.raises(ValueError, match="backend must be one of"):
        Predictor(model, backend="onnx")
    with pytest.raises(ValueError, match="quantize='dynamic' needs the TFLite backend"):
        Predictor(model, backend="keras", quantize="dynamic")
