"""Shared checks that every layer and model of keras-fer goes through.

In the spirit of keras-hub's ``TestCase.run_layer_test``: one call checks output shape and
dtype, the ``get_config``/``from_config`` round-trip, ``.keras`` save/load and SavedModel
export with identical outputs, and that one training step moves every trainable weight with
finite gradients. Plain ``numpy.testing`` asserts, so it works under any test runner.
"""

import os
import tempfile

import numpy as np

import keras


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _to_numpy(x):
    return [keras.ops.convert_to_numpy(t) for t in _as_list(x)]


def _assert_all_close(actual, expected, atol, rtol, what):
    actual, expected = _to_numpy(actual), _to_numpy(expected)
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs vs {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, err_msg=f"{what} (output {i})")


def _functional_model(layer, input_data, call_kwargs):
    """Wraps ``layer`` in a functional model with a free batch dimension."""
    inputs = [
        keras.Input(shape=np.shape(x)[1:], dtype=keras.backend.standardize_dtype(x.dtype))
        for x in _as_list(input_data)
    ]
    layer_inputs = inputs if isinstance(input_data, (list, tuple)) else inputs[0]
    outputs = layer(layer_inputs, **call_kwargs)
    return keras.Model(layer_inputs, outputs)


def check_saving(model, input_data, atol=1e-6, rtol=1e-6):
    """``.keras`` round trip (safe mode) gives the same outputs and the same config."""
    expected = model(input_data, training=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    _assert_all_close(restored(input_data, training=False), expected, atol, rtol,
                      ".keras round trip")
    return restored


def check_export(model, input_data, atol=1e-6, rtol=1e-6):
    """SavedModel export (the TF Serving format) gives the same outputs."""
    import tensorflow as tf

    expected = model(input_data, training=False)
    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        reloaded = tf.saved_model.load(tmp)
        args = [tf.convert_to_tensor(x) for x in _as_list(input_data)]
        # Keras exports the model's input structure as it is: a list stays one argument.
        actual = reloaded.serve(args if isinstance(input_data, (list, tuple)) else args[0])
    _assert_all_close(actual, expected, atol, rtol, "SavedModel export")


def check_trainable(model, input_data, loss="mse", seed=0):
    """One optimiser step: finite gradients, and every trainable weight changes.

    The target is random noise of the output's shape, so the loss has a non-zero gradient
    whatever the model computes.
    """
    import tensorflow as tf

    outputs = _to_numpy(model(input_data, training=False))
    rng = np.random.default_rng(seed)
    targets = [rng.normal(size=o.shape).astype("float32") for o in outputs]
    with tf.GradientTape() as tape:
        preds = _as_list(model(input_data, training=True))
        value = sum(keras.ops.mean(keras.ops.square(p - t)) for p, t in zip(preds, targets))
    grads = tape.gradient(value, model.trainable_variables)
    names = [v.path for v in model.trainable_variables]
    for name, g in zip(names, grads):
        assert g is not None, f"no gradient reaches {name}"
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(g))), f"non-finite gradient for {name}"
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-2), loss=loss)
    y = targets if len(targets) > 1 else targets[0]
    model.fit(input_data, y, epochs=1, batch_size=len(outputs[0]), verbose=0, shuffle=False)
    unchanged = [n for n, b, v in zip(names, before, model.trainable_variables)
                 if np.array_equal(b, v.numpy())]
    assert not unchanged, f"weights not updated by a training step: {unchanged}"


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape=None,
    expected_output_dtype="float32",
    expected_num_trainable_weights=None,
    expected_num_params=None,
    call_kwargs=None,
    run_saving_check=True,
    run_export_check=True,
    run_training_check=True,
    atol=1e-6,
    rtol=1e-6,
):
    """Checks one layer class end to end and returns the built layer for further asserts."""
    call_kwargs = call_kwargs or {}
    layer = layer_cls(**init_kwargs)
    output = layer(input_data, **call_kwargs)
    out_list = _as_list(output)
    if expected_output_shape is not None:
        shapes = expected_output_shape if isinstance(output, (list, tuple)) else [expected_output_shape]
        for o, s in zip(out_list, shapes):
            assert tuple(o.shape) == tuple(s), f"output shape {tuple(o.shape)} != {tuple(s)}"
    for o in out_list:
        assert keras.backend.standardize_dtype(o.dtype) == expected_output_dtype, (
            f"output dtype {o.dtype} != {expected_output_dtype}")
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, (
            f"{len(layer.trainable_weights)} trainable weights, expected "
            f"{expected_num_trainable_weights}")
    if expected_num_params is not None:
        assert layer.count_params() == expected_num_params, (
            f"{layer.count_params()} parameters, expected {expected_num_params}")

    # Config round trip: the rebuilt layer, given the same weights, computes the same thing.
    config = layer.get_config()
    for key in init_kwargs:
        assert key in config, f"get_config() lacks constructor argument {key!r}"
    clone = layer_cls.from_config(config)
    clone(input_data, **call_kwargs)
    clone.set_weights(layer.get_weights())
    _assert_all_close(clone(input_data, **call_kwargs), output, atol, rtol, "from_config")
    serialized = keras.saving.serialize_keras_object(layer)
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is layer_cls, "serialize/deserialize changed the class"

    model = _functional_model(layer, input_data, call_kwargs)
    if run_saving_check:
        check_saving(model, input_data, atol, rtol)
    if run_export_check:
        check_export(model, input_data, atol, rtol)
    if run_training_check and layer.trainable_weights:
        check_trainable(model, input_data)
    return layer


def run_model_test(model, input_data, run_saving_check=True, run_export_check=True,
                   run_training_check=True, atol=1e-5, rtol=1e-5):
    """The same checks for a whole model (built, functional or subclassed)."""
    if run_saving_check:
        check_saving(model, input_data, atol, rtol)
    if run_export_check:
        check_export(model, input_data, atol, rtol)
    if run_training_check:
        check_trainable(model, input_data)
    return model


def numeric_gradient(fn, x, eps=1e-3):
    """Central-difference gradient of the scalar ``fn`` at ``x`` (float64 numpy)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        up = fn(x)
        flat[i] = orig - eps
        down = fn(x)
        flat[i] = orig
        gflat[i] = (up - down) / (2 * eps)
    return grad


def check_gradients(layer, input_data, eps=1e-3, atol=1e-3, rtol=1e-2, seed=0):
    """Autodiff gradient of a random projection of the layer's output vs central differences.

    Runs in float64 through a copy of the layer, so finite differences are accurate; checks
    the gradient with respect to the input and to every trainable weight.
    """
    import tensorflow as tf

    config = layer.get_config()
    config["dtype"] = "float64"
    layer64 = type(layer).from_config(config)
    x64 = np.asarray(input_data, dtype=np.float64)
    layer64(x64)
    layer64.set_weights([np.asarray(w, dtype=np.float64) for w in layer.get_weights()])
    out_shape = keras.ops.convert_to_numpy(layer64(x64)).shape
    proj = np.random.default_rng(seed).normal(size=out_shape)

    def scalar(x):
        return float(np.sum(keras.ops.convert_to_numpy(layer64(x)) * proj))

    xt = tf.Variable(x64)
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(layer64(xt) * proj)
    grads = tape.gradient(value, [xt] + list(layer64.trainable_variables))
    # Gathers (embedding tables, relative-position biases) give IndexedSlices: make them dense.
    grads = [tf.convert_to_tensor(g) for g in grads]
    np.testing.assert_allclose(grads[0].numpy(), numeric_gradient(scalar, x64, eps),
                               atol=atol, rtol=rtol, err_msg="d output / d input")
    for var, g in zip(layer64.trainable_variables, grads[1:]):
        w0 = var.numpy().copy()

        def scalar_w(w, var=var):
            var.assign(w)
            return float(np.sum(keras.ops.convert_to_numpy(layer64(x64)) * proj))

        num = numeric_gradient(scalar_w, w0, eps)
        var.assign(w0)
        np.testing.assert_allclose(g.numpy(), num, atol=atol, rtol=rtol,
                                   err_msg=f"d output / d {var.path}")
