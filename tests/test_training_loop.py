"""The training loop: replica equality, multi-worker, kill-and-resume."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(__file__), "scripts", "train_worker.py")


def _run(out, *args, env=None, check=True):
    cmd = [sys.executable, WORKER, "--out", str(out), *map(str, args)]
    return subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, check=check, timeout=300)


def _load(path):
    data = np.load(path)
    weights = [data[k] for k in sorted((k for k in data.files if k.startswith("w")),
                                       key=lambda k: int(k[1:]))]
    return data["losses"], data["epochs"], weights


def _assert_same_run(a, b, atol=1e-5):
    np.testing.assert_allclose(a[0], b[0], atol=atol, err_msg="per-epoch losses differ")
    np.testing.assert_array_equal(a[1], b[1])
    assert len(a[2]) == len(b[2])
    for wa, wb in zip(a[2], b[2]):
        np.testing.assert_allclose(wa, wb, atol=atol, err_msg="final weights differ")


@pytest.fixture(scope="module")
def single_replica(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "r.npz"
    _run(out, "--epochs", 3)
    return _load(out)


def test_two_replicas_equal_one_replica(tmp_path, single_replica):
    out = tmp_path / "r.npz"
    _run(out, "--epochs", 3, "--strategy", "mirrored", "--cpus", 2)
    result = _load(out)
    _assert_same_run(result, single_replica)
    assert result[0][-1] < result[0][0], "training did not reduce the loss"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_worker_processes_equal_one_replica(tmp_path, single_replica):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ,
               "TF_CONFIG": json.dumps({"cluster": cluster,
                                        "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen(
            [sys.executable, WORKER, "--out", str(tmp_path / f"w{index}.npz"), "--epochs", "3",
             "--strategy", "multi_worker"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text[-3000:]
    assert not (tmp_path / "w1.npz").exists(), "only the chief writes results"
    _assert_same_run(_load(tmp_path / "w0.npz"), single_replica)


def _two_workers(tmp_path, *args):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ,
               "TF_CONFIG": json.dumps({"cluster": cluster,
                                        "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen(
            [sys.executable, WORKER, "--out", str(tmp_path / f"w{index}.npz"),
             "--strategy", "multi_worker", *map(str, args)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=400)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text[-3000:]
    return outputs


@pytest.mark.slow
def test_two_workers_train_a_zoo_family_and_leave_without_a_coordination_error(tmp_path):
    """mini_xception (BatchNorm, separable convolutions) over two worker processes equals two
    mirrored replicas (the same per-replica batches). The chief then works 40 s before the
    final barrier, as train() does while it writes the model and the report: a worker that
    exited at once used to be declared crashed by the coordination service on the chief
    ("tasks are unhealthy (stopped sending heartbeats) ... CoordinationServiceError", about
    30 s after it left); with wait_for_workers they leave together and nothing is logged."""
    mirrored = tmp_path / "mirrored.npz"
    _run(mirrored, "--epochs", 2, "--strategy", "mirrored", "--cpus", 2,
         "--arch", "mini_xception")
    outputs = _two_workers(tmp_path, "--epochs", 2, "--arch", "mini_xception",
                           "--chief-delay", 40)
    for text in outputs:
        assert "CoordinationServiceError" not in text and "unhealthy" not in text, text[-3000:]
    result = _load(tmp_path / "w0.npz")
    assert len(result[2]) > 20  # the zoo model's weights, not the toy's four
    _assert_same_run(result, _load(mirrored))


def test_kill_mid_epoch_and_resume(tmp_path, single_replica):
    ckpt = tmp_path / "ckpt"
    out = tmp_path / "r.npz"
    args = ["--epochs", 3, "--checkpoint-dir", ckpt, "--checkpoint-every", 1]
    proc = subprocess.Popen([sys.executable, WORKER, "--out", str(out), *map(str, args),
                             "--slow-step", "0.4"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state_file = ckpt / "trainer_state.json"
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if state_file.exists():
            try:
                state = json.loads(state_file.read_text())
            except json.JSONDecodeError:
                state = {}
            if state.get("epochs_done") == 1 and state.get("step_in_epoch", 0) >= 2:
                proc.send_signal(signal.SIGKILL)
                killed_at = state
                break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished or stalled before it could be killed"
    assert not out.exists()

    resumed = _run(out, *args)
    result = _load(out)
    # Same number of epochs in the end, and the same trajectory as a run never interrupted.
    assert list(result[1]) == [1, 2, 3]
    _assert_same_run(result, single_replica, atol=1e-5)
    assert resumed.returncode == 0


def test_loop_rejects_bad_arguments():
    import keras
    from keras_fer.training.loop import Trainer

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="compiled"):
        Trainer(model)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="checkpoint_every"):
        Trainer(model, checkpoint_every=0)
    with pytest.raises(ValueError, match="epochs"):
        Trainer(model).fit(lambda e: None, epochs=0)


# ---- in-process fault tests (small model, uneven last batch) ---------------------------------

def _tiny_trainer(ckpt_dir, checkpoint_every=None, callbacks=(), n_classes=3):
    import keras
    from keras_fer.training.loop import Trainer

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(n_classes)(keras.layers.Dense(8, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=["categorical_accuracy"])
    return Trainer(model, checkpoint_dir=str(ckpt_dir), checkpoint_every=checkpoint_every,
                   callbacks=list(callbacks), verbose=0)


def _tiny_data(epoch, n=40, batch=16):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, n)]
    order = np.random.default_rng(epoch).permutation(n)
    return tf.data.Dataset.from_tensor_slices((x[order], y[order])).batch(batch)


class _Crash(Exception):
    pass


def _crash_after(step_index, epoch_index=0):
    import keras

    class Crash(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == epoch_index and batch == step_index:
                raise _Crash()
    return Crash()


def test_resumed_epoch_logs_the_same_loss_with_an_uneven_last_batch(tmp_path):
    # 40 samples in batches of 16, 16, 8: step-weighted means of the two parts of the epoch
    # were off by ~1 % of the loss; Keras weights by samples.
    plain = _tiny_trainer(tmp_path / "plain").fit(_tiny_data, epochs=2)
    crashing = _tiny_trainer(tmp_path / "resumed", checkpoint_every=1,
                             callbacks=[_crash_after(1, epoch_index=1)])
    with pytest.raises(_Crash):
        crashing.fit(_tiny_data, epochs=2)
    resumed = _tiny_trainer(tmp_path / "resumed", checkpoint_every=1).fit(_tiny_data, epochs=2)
    assert [h["epoch"] for h in resumed] == [1, 2]
    for key in ("loss", "categorical_accuracy"):
        np.testing.assert_allclose([h[key] for h in resumed], [h[key] for h in plain],
                                   rtol=1e-6, err_msg=key)


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    import glob
    import logging

    ckpt = tmp_path / "ckpt"
    _tiny_trainer(ckpt).fit(_tiny_data, epochs=2)
    data = sorted(glob.glob(str(ckpt / "ckpt-2.data-*")))
    assert data
    with open(data[0], "r+b") as f:
        f.truncate(os.path.getsize(data[0]) // 2)
    trainer = _tiny_trainer(ckpt)
    with caplog.at_level(logging.WARNING, logger="keras_fer.training"):
        history = trainer.fit(_tiny_data, epochs=3)
    assert any("ckpt-2" in r.getMessage() and "cannot be read" in r.getMessage()
               for r in caplog.records), caplog.text
    # Epoch 1 came back from ckpt-1 with its own history; epochs 2 and 3 were trained again.
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_lost_trainer_state_keeps_the_history(tmp_path, caplog):
    ckpt = tmp_path / "ckpt"
    first = _tiny_trainer(ckpt).fit(_tiny_data, epochs=2)
    os.remove(ckpt / "trainer_state.json")
    history = _tiny_trainer(ckpt).fit(_tiny_data, epochs=3)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[:2] == first


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    ckpt = tmp_path / "ckpt"
    _tiny_trainer(ckpt).fit(_tiny_data, epochs=1)
    with pytest.raises(ValueError, match="can be restored into this model"):
        _tiny_trainer(ckpt, n_classes=5).fit(_tiny_data, epochs=2)
