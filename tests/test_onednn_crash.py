"""The oneDNN strided-1x1 weight-gradient crash (keras_fer.layers.onednn_safe).

The regression runs train in fresh subprocesses (a heap corruption takes the whole process
down, and only sometimes: several runs) and fail on a signal. Without the workaround
(``KERAS_FER_ONEDNN_WORKAROUND=0``) the same script died in every run on this project's
AVX-512 CPU with TensorFlow 2.21 (checked by hand; see docs/training.md).
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras

from keras_fer.layers import is_onednn_safe, make_onednn_safe
from keras_fer.testing import run_model_test

# Every path a user takes to train: create_model + fit, a zoo model fine-tuned with fit, and
# a plain Keras model with the crashing layer as train() receives it.
# 127 images in batches of 16 give an odd last batch, which is what set the crash off.
REPRODUCTION = textwrap.dedent("""
    import numpy as np, keras
    from keras_fer.models import create_model
    from keras_fer import zoo
    from keras_fer.layers import make_onednn_safe

    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, (127, 48, 48, 1)).astype("float32")
    y = rng.randint(0, 7, 127)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    m = create_model("mini_xception", num_classes=7, input_shape=(48, 48, 1))
    m.compile(optimizer="adam", loss=loss)
    m.fit(x, y, batch_size=16, epochs=2, verbose=0)

    m = zoo.load("mini_xception.ckplus48")
    m.compile(optimizer="adam", loss=loss)
    m.fit(x, y, batch_size=16, epochs=2, verbose=0)

    inputs = keras.Input((48, 48, 1))
    h = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    h = keras.layers.Conv2D(16, 1, strides=2)(h)
    outputs = keras.layers.Dense(7)(keras.layers.GlobalAveragePooling2D()(h))
    plain = keras.Model(inputs, outputs)
    plain.compile(optimizer="adam", loss=loss)
    make_onednn_safe(plain)  # what train() does with a model passed to it
    plain.fit(x, y, batch_size=16, epochs=3, verbose=0)
    print("SURVIVED")
""")


@pytest.mark.parametrize("run", range(3))
def test_training_survives_in_a_fresh_process(run):
    env = dict(os.environ)
    env.pop("KERAS_FER_ONEDNN_WORKAROUND", None)
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # the default build, oneDNN on, as users have it
    env.pop("DNNL_MAX_CPU_ISA", None)
    proc = subprocess.run([sys.executable, "-c", REPRODUCTION], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0 and "SURVIVED" in proc.stdout, (
        f"run {run} ended with {proc.returncode} (negative: killed by signal "
        f"{-proc.returncode}):\n{proc.stderr[-2000:]}")


def numpy_strided_pointwise(x, kernel, bias, stride):
    """Reference: every stride-th pixel times the (in, out) matrix, plus bias."""
    sub = np.asarray(x, np.float64)[:, ::stride[0], ::stride[1], :]
    return sub @ np.asarray(kernel, np.float64)[0, 0] + np.asarray(bias, np.float64)


def _stock_and_switched(size, stride, padding, channels=5):
    inputs = keras.Input((size, size, channels))
    conv = keras.layers.Conv2D(4, 1, strides=stride, padding=padding, name="conv",
                               bias_initializer="random_normal")
    stock = keras.Model(inputs, conv(inputs))
    switched = keras.Model.from_config(stock.get_config())
    switched.set_weights(stock.get_weights())
    assert make_onednn_safe(switched) == 1
    return stock, switched


@pytest.mark.parametrize("size,stride,padding", [(9, (2, 2), "same"), (8, (2, 2), "valid"),
                                                 (10, (3, 2), "same"), (7, (3, 3), "valid")])
def test_equals_numpy_and_the_stock_layer_with_equal_gradients(size, stride, padding):
    import tensorflow as tf

    x = np.random.default_rng(0).normal(size=(3, size, size, 5)).astype("float32")
    stock, switched = _stock_and_switched(size, stride, padding)
    kernel, bias = stock.get_weights()
    got = keras.ops.convert_to_numpy(switched(x))
    np.testing.assert_allclose(got, numpy_strided_pointwise(x, kernel, bias, stride),
                               atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(stock(x)), atol=1e-5)
    proj = np.random.default_rng(1).normal(size=got.shape).astype("float32")
    grads = []
    for model in (stock, switched):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(model(xt) * proj)
        grads.append([g.numpy() for g in tape.gradient(loss, [xt] + model.trainable_weights)])
    for a, b in zip(*grads):
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4)
    # The analytic kernel gradient: sum over batch and positions of x_sub^T proj.
    sub = x[:, ::stride[0], ::stride[1], :]
    np.testing.assert_allclose(grads[1][1][0, 0], np.einsum("nhwc,nhwk->ck", sub, proj),
                               atol=1e-3, rtol=1e-4)


def test_switched_models_keep_keras_files_interchangeable(tmp_path):
    stock, switched = _stock_and_switched(8, (2, 2), "valid")
    assert type(switched.get_layer("conv")) is keras.layers.Conv2D
    assert is_onednn_safe(switched.get_layer("conv")) and not is_onednn_safe(stock.get_layer("conv"))
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 5)).astype("float32")
    # Weights files name the layers by class: a switched model's load into a stock one.
    path = str(tmp_path / "w.weights.h5")
    switched.save_weights(path)
    fresh = keras.Model.from_config(stock.get_config())
    fresh.load_weights(path)
    np.testing.assert_allclose(fresh(x), stock(x), atol=1e-6)
    # A .keras file of a switched model is a stock Keras file.
    switched.save(str(tmp_path / "m.keras"))
    plain = keras.saving.load_model(str(tmp_path / "m.keras"))
    assert type(plain.get_layer("conv")) is keras.layers.Conv2D
    np.testing.assert_allclose(plain(x), stock(x), atol=1e-6)
    run_model_test(switched, x)


def test_switches_only_strided_pointwise_convolutions_and_keeps_outputs():
    inputs = keras.Input((12, 12, 3))
    a = keras.layers.Conv2D(8, 1, strides=2, name="strided_1x1")(inputs)
    b = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="strided_3x3")(inputs)
    c = keras.layers.Conv2D(8, 1, name="unit_1x1")(inputs)
    inner = keras.Model(inputs, keras.layers.Concatenate()([a, b, keras.layers.MaxPooling2D()(c)]))
    outer_in = keras.Input((12, 12, 3))
    model = keras.Model(outer_in, keras.layers.Conv2D(4, 1, strides=3, name="outer")(inner(outer_in)))
    x = np.random.default_rng(2).normal(size=(2, 12, 12, 3)).astype("float32")
    before = keras.ops.convert_to_numpy(model(x))
    assert make_onednn_safe(model) == 2  # strided_1x1 in the nested model, and outer
    assert is_onednn_safe(inner.get_layer("strided_1x1")) and is_onednn_safe(model.get_layer("outer"))
    assert not is_onednn_safe(inner.get_layer("strided_3x3"))
    assert not is_onednn_safe(inner.get_layer("unit_1x1"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), before, atol=1e-5)
    assert make_onednn_safe(model) == 0  # idempotent


def test_models_the_package_builds_and_loads_are_switched(tmp_path):
    from keras_fer.models import create_model, load_model

    model = create_model("mini_xception", num_classes=7, input_shape=(48, 48, 1))
    switched = [l for l in model._flatten_layers() if is_onednn_safe(l)]
    assert len(switched) == 4  # one shortcut per Xception module
    stock = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Conv2D(3, 1, strides=2)])
    path = str(tmp_path / "stock.keras")
    stock.save(path)
    loaded = load_model(path)
    assert is_onednn_safe(loaded.layers[0])
    x = np.random.default_rng(3).normal(size=(1, 8, 8, 2)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)),
                               keras.ops.convert_to_numpy(stock(x)), atol=1e-6)
