"""SAM / ASAM (Foret et al. 2021; Kwon et al. 2021) against hand-computed NumPy steps."""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import keras

from keras_fer.optimizers import SAMModel, sam_perturbation

N, D, K = 8, 3, 2


# ---------------------------------------------------------------- NumPy reference
def np_linear_loss_grad(w, b, x, y, l2=0.0):
    """MSE of ``x @ w + b`` (Keras: mean over outputs, then over the batch) + l2 * |w|^2."""
    r = x @ w + b - y
    loss = np.mean(r ** 2) + l2 * np.sum(w ** 2)
    gw = 2.0 / r.size * x.T @ r + 2.0 * l2 * w
    gb = 2.0 / r.size * r.sum(axis=0)
    return loss, [gw, gb]


def np_sam_gradient(params, grad_fn, rho, adaptive=False, eta=0.01):
    """Foret et al. Alg. 1 (and ASAM): the gradient at w + e, e from the global norm."""
    _, g = grad_fn(*params)
    t = [np.abs(p) + eta if adaptive else np.ones_like(p) for p in params]
    norm = np.sqrt(sum(np.sum((ti * gi) ** 2) for ti, gi in zip(t, g)))
    e = [rho * ti ** 2 * gi / (norm + 1e-12) for ti, gi in zip(t, g)]
    _, g_sharp = grad_fn(*[p + ei for p, ei in zip(params, e)])
    return g_sharp


class NpSGD:
    def __init__(self, lr, momentum=0.0):
        self.lr, self.momentum, self.m = lr, momentum, None

    def step(self, params, grads):
        if self.m is None:
            self.m = [np.zeros_like(p) for p in params]
        self.m = [self.momentum * m - self.lr * g for m, g in zip(self.m, grads)]
        return [p + m for p, m in zip(params, self.m)]


class NpAdam:
    """Keras' Adam (and AdamW: decoupled decay ``w -= lr * wd * w`` before the Adam step)."""

    def __init__(self, lr, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-7):
        self.lr, self.wd, self.b1, self.b2, self.eps = lr, weight_decay, b1, b2, eps
        self.t, self.m, self.v = 0, None, None

    def step(self, params, grads):
        if self.m is None:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        self.t += 1
        alpha = self.lr * np.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        out = []
        for i, (p, g) in enumerate(zip(params, grads)):
            p = p - p * self.wd * self.lr
            self.m[i] = self.m[i] + (g - self.m[i]) * (1 - self.b1)
            self.v[i] = self.v[i] + (g ** 2 - self.v[i]) * (1 - self.b2)
            out.append(p - alpha * self.m[i] / (np.sqrt(self.v[i]) + self.eps))
        return out


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype("float32")
    y = rng.normal(size=(N, K)).astype("float32")
    w0 = rng.normal(size=(D, K)).astype("float32")
    b0 = rng.normal(size=(K,)).astype("float32")
    return x, y, w0, b0


def _linear_sam(w0, b0, l2=0.0, **sam_kwargs):
    inputs = keras.Input((D,))
    reg = keras.regularizers.L2(l2) if l2 else None
    dense = keras.layers.Dense(K, kernel_regularizer=reg, name="dense")
    model = SAMModel(keras.Model(inputs, dense(inputs)), **sam_kwargs)
    dense.set_weights([w0, b0])
    return model, dense


# ---------------------------------------------------------------- single-device steps
@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("adaptive", [False, True])
def test_two_steps_match_numpy(name, adaptive):
    x, y, w0, b0 = _problem()
    rho, l2 = 0.3, 0.05
    model, dense = _linear_sam(w0, b0, l2=l2, rho=rho, adaptive=adaptive)
    keras_opt, np_opt = {
        "sgd": (keras.optimizers.SGD(0.1, momentum=0.9), NpSGD(0.1, momentum=0.9)),
        "adam": (keras.optimizers.Adam(0.05), NpAdam(0.05)),
        "adamw": (keras.optimizers.AdamW(0.05, weight_decay=0.1), NpAdam(0.05, 0.1)),
    }[name]
    model.compile(optimizer=keras_opt, loss="mse", metrics=["mae"])

    def grad_fn(w, b):
        return np_linear_loss_grad(w, b, x.astype("float64"), y.astype("float64"), l2)

    params = [w0.astype("float64"), b0.astype("float64")]
    for _ in range(2):
        logs = model.train_on_batch(x, y, return_dict=True)
        # Reported loss and metrics: those of pass 1, at the weights before the update.
        loss, _ = grad_fn(*params)
        np.testing.assert_allclose(logs["loss"], loss, rtol=1e-5)
        np.testing.assert_allclose(logs["mae"], np.mean(np.abs(x @ params[0] + params[1] - y)),
                                   rtol=1e-5)
        params = np_opt.step(params, np_sam_gradient(params, grad_fn, rho, adaptive))
    for got, want in zip(dense.get_weights(), params):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The test can fail: the plain (non-SAM) update lands elsewhere.
    _, g = grad_fn(w0.astype("float64"), b0.astype("float64"))
    sam_g = np_sam_gradient([w0.astype("float64"), b0.astype("float64")], grad_fn, rho, adaptive)
    assert np.abs(g[0] - sam_g[0]).max() > 1e-2


def test_perturbation_helper():
    g = [np.array([3.0, 0.0], "float32"), np.array([4.0], "float32"), None]
    w = [np.array([1.0, -2.0], "float32"), np.array([0.5], "float32"), np.zeros(2, "float32")]
    e = sam_perturbation(g, w, rho=0.5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(e[0]), [0.3, 0.0], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(e[1]), [0.4], rtol=1e-6)
    assert e[2] is None
    zero = sam_perturbation([np.zeros(3, "float32")], [np.ones(3, "float32")], rho=0.5)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(zero[0]), 0.0)
    # ASAM: T = |w| + eta; e = rho T^2 g / ||T g||.
    e = sam_perturbation(g[:2], w[:2], rho=0.5, adaptive=True, eta=0.0)
    tg = np.array([3.0 * 1.0, 0.0, 4.0 * 0.5])
    expected = 0.5 * np.array([1.0 * 3.0, 0.0, 0.25 * 4.0]) / np.linalg.norm(tg)
    got = np.concatenate([keras.ops.convert_to_numpy(t) for t in e])
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_batchnorm_statistics_come_from_the_first_pass_only():
    x, y, _, _ = _problem(seed=1)
    inputs = keras.Input((D,))
    h = keras.layers.Dense(4, name="d1")(inputs)
    h = keras.layers.BatchNormalization(momentum=0.5, name="bn")(h)
    model = SAMModel(keras.Model(inputs, keras.layers.Dense(K)(h)), rho=0.5)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    w1, b1 = model.inner.get_layer("d1").get_weights()
    model.train_on_batch(x, y)
    features = x @ w1 + b1  # the BN input at w, i.e. in pass 1
    bn = model.inner.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.5 * features.mean(axis=0), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.5 + 0.5 * features.var(axis=0),
                               rtol=1e-5)


def test_dropout_mask_is_shared_by_both_passes():
    x, y, w0, b0 = _problem(seed=2)
    inputs = keras.Input((D,))
    drop = keras.layers.Dropout(0.5, seed=7)
    dense = keras.layers.Dense(K)
    model = SAMModel(keras.Model(inputs, dense(drop(inputs))), rho=0.2)
    dense.set_weights([w0, b0])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    state = drop.seed_generator.state
    before = state.numpy().copy()
    mask = keras.ops.convert_to_numpy(drop(np.ones_like(x), training=True))  # the step's mask
    after_one_draw = state.numpy().copy()
    state.assign(before)
    assert 0 < np.count_nonzero(mask) < mask.size

    model.train_on_batch(x, y)
    xd = (x * mask).astype("float64")

    def grad_fn(w, b):
        return np_linear_loss_grad(w, b, xd, y.astype("float64"))

    params = [w0.astype("float64"), b0.astype("float64")]
    want = NpSGD(0.1).step(params, np_sam_gradient(params, grad_fn, 0.2))
    for got, expected in zip(dense.get_weights(), want):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # The random state moved on by one draw (pass 1's), so the next step gets a fresh mask.
    np.testing.assert_array_equal(state.numpy(), after_one_draw)


def test_save_load_round_trip_resumes_training():
    x, y, w0, b0 = _problem(seed=3)
    model, _ = _linear_sam(w0, b0, rho=0.1, adaptive=True, eta=0.02)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.train_on_batch(x, y)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sam.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
    assert type(restored) is SAMModel
    assert (restored.rho, restored.adaptive, restored.eta) == (0.1, True, 0.02)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    assert int(restored.optimizer.iterations.numpy()) == 1
    model.train_on_batch(x, y)
    restored.train_on_batch(x, y)
    for a, b in zip(restored.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    config = model.get_config()
    clone = SAMModel.from_config(config)
    assert clone.get_config()["model"] == config["model"]


def test_fit_with_jit_and_dataset():
    import tensorflow as tf

    x, y, w0, b0 = _problem(seed=4)
    results = []
    for jit in (False, True):
        model, dense = _linear_sam(w0, b0, rho=0.2)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", jit_compile=jit)
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
        history = model.fit(data, epochs=2, verbose=0, shuffle=False)
        assert np.all(np.isfinite(history.history["loss"]))
        results.append(dense.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, word", [
    ({"rho": 0.0}, "rho"),
    ({"rho": -0.05}, "rho"),
    ({"rho": float("nan")}, "rho"),
    ({"rho": True}, "rho"),
    ({"eta": -1.0}, "eta"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"adaptive": "yes"}, "adaptive"),
])
def test_bad_arguments(kwargs, word):
    inputs = keras.Input((D,))
    model = keras.Model(inputs, keras.layers.Dense(K)(inputs))
    with pytest.raises(ValueError, match=word):
        SAMModel(model, **kwargs)
    with pytest.raises(ValueError, match="model"):
        SAMModel("resnet18")


# ---------------------------------------------------------------- tf.distribute
_DISTRIBUTED_SCRIPT = r"""
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
import keras
from keras_fer.optimizers import SAMModel

args = json.loads(sys.argv[1])
x, y = np.array(args["x"], "float32"), np.array(args["y"], "float32")
w0, b0 = np.array(args["w0"], "float32"), np.array(args["b0"], "float32")


def run(strategy):
    with strategy.scope():
        inputs = keras.Input((x.shape[1],))
        dense = keras.layers.Dense(y.shape[1])
        model = SAMModel(keras.Model(inputs, dense(inputs)), rho=args["rho"])
        dense.set_weights([w0, b0])
        model.compile(optimizer=keras.optimizers.SGD(args["lr"], momentum=0.9), loss="mse")
    losses = []
    for _ in range(2):
        hist = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
        losses.append(hist.history["loss"][0])
    return {"replicas": strategy.num_replicas_in_sync, "losses": losses,
            "weights": [w.tolist() for w in dense.get_weights()]}


devices = [d.name for d in tf.config.list_logical_devices("CPU")]
print(json.dumps({"one": run(tf.distribute.get_strategy()),
                  "two": run(tf.distribute.MirroredStrategy(devices[:2]))}))
"""


def test_mirrored_two_replicas_equal_one_replica():
    """Under MirroredStrategy (2 logical CPUs, in a subprocess so this process's TF device
    setup is untouched) a SAM step on the global batch equals the single-device step: the
    first-pass gradient is all-reduced before ``e`` is formed."""
    x, y, w0, b0 = _problem(seed=5)
    rho, lr = 0.5, 0.1
    args = {"x": x.tolist(), "y": y.tolist(), "w0": w0.tolist(), "b0": b0.tolist(),
            "rho": rho, "lr": lr}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
         os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _DISTRIBUTED_SCRIPT, json.dumps(args)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["two"]["replicas"] == 2
    one, two = result["one"], result["two"]
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    for a, b in zip(two["weights"], one["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # Both equal the NumPy global-batch SAM steps ...
    x64, y64 = x.astype("float64"), y.astype("float64")

    def run_numpy(shards):
        params, opt = [w0.astype("float64"), b0.astype("float64")], NpSGD(lr, momentum=0.9)
        for _ in range(2):
            grads = [np.zeros_like(p) for p in params]
            for part in shards:
                def local(w, b, part=part):  # a replica's share of the global-mean loss
                    loss, g = np_linear_loss_grad(w, b, x64[part], y64[part])
                    return loss / len(shards), [gi / len(shards) for gi in g]
                # With several shards, e comes from each one's local gradient: the bug
                # guarded against. The pass-2 gradients are then summed, as all-reduce does.
                sharp = np_sam_gradient(params, local, rho)
                grads = [a + b for a, b in zip(grads, sharp)]
            params = opt.step(params, grads)
        return params

    for a, b in zip(two["weights"], run_numpy([slice(None)])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # ... and differ from the per-replica (not all-reduced) perturbation, so the check bites.
    local_e = run_numpy([slice(0, N // 2), slice(N // 2, None)])
    assert np.abs(np.asarray(two["weights"][0]) - local_e[0]).max() > 1e-3
