"""The training loop: ``model.train_step`` under ``strategy.run``, with checkpoints that resume.

Why not ``model.fit``: under ``MultiWorkerMirroredStrategy`` it crashes in Keras 3.15
(keras-team/keras#20585), and Keras' ``BackupAndRestore`` keeps model weights but not the
optimiser's slots, so a resumed run is not the run that was interrupted. This loop drives the
model's own ``train_step``/``test_step`` (so ``SAMModel`` and any custom step work unchanged)
through ``strategy.run`` for every strategy (default, mirrored, multi-worker, TPU), runs the
usual Keras callbacks, and checkpoints model + optimiser + position (epoch, step in epoch)
with ``tf.train.Checkpoint``. Re-running the same command after a kill continues from the last
checkpoint, mid-epoch included, and ends after the same number of epochs.

Resuming is exact when the data is: ``train_data(epoch)`` must give the same batches for the
same epoch in every run (shuffle seeded by the epoch). Random augmentation is not replayed.
"""

import json
import os
import shutil
import time

import numpy as np

import keras

from keras_fer.training.strategy import is_chief, worker_index

# Numeric state of the stock callbacks that must survive a restart (ReduceLROnPlateau,
# EarlyStopping): without it a resumed run would wait longer before reducing or stopping.
_CALLBACK_STATE = ("wait", "best", "cooldown_counter", "stopped_epoch", "best_epoch")


class Trainer:
    """Runs ``epochs`` of training of a compiled ``model`` built under ``strategy.scope()``.

    Args:
        model: a compiled Keras model (a ``SAMModel`` wrapper included).
        strategy: the ``tf.distribute`` strategy the model was built under (default: the
            model's own ``distribute_strategy``).
        checkpoint_dir: where checkpoints go; None disables checkpointing and resuming.
        checkpoint_every: also checkpoint every this many steps inside an epoch (None: at
            epoch ends only).
        callbacks: Keras callbacks (TensorBoard, ReduceLROnPlateau, EarlyStopping, ...).
        verbose: 1 shows a Keras progress bar, 2 one line per epoch, 0 nothing.
    """

    def __init__(self, model, strategy=None, checkpoint_dir=None, checkpoint_every=None,
                 callbacks=(), verbose=1, max_to_keep=2):
        import tensorflow as tf

        if checkpoint_every is not None and checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1 step, got {checkpoint_every}")
        if getattr(model, "optimizer", None) is None:
            raise ValueError("the model must be compiled (optimizer, loss) before training")
        self.model = model
        self.strategy = strategy or model.distribute_strategy
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.callbacks = list(callbacks)
        self.verbose = verbose
        self.history = []
        self._partial = None
        self.chief = is_chief(self.strategy)
        with self.strategy.scope():
            self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_done")
            self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
        self._manager = None
        if checkpoint_dir:
            ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                       epochs_done=self._epoch, step_in_epoch=self._step)
            self._manager = tf.train.CheckpointManager(
                ckpt, self._write_dir(), max_to_keep=max_to_keep)
            self._checkpoint = ckpt
        self._train_fn = self._make_step(model.train_step)
        self._test_fn = self._make_step(model.test_step)

    # ---- checkpointing -------------------------------------------------------------------
    def _write_dir(self):
        # Under multi-worker every worker must save (the save is collective), but only the
        # chief's copy is kept.
        if self.chief:
            return self.checkpoint_dir
        return os.path.join(self.checkpoint_dir, f".worker{worker_index(self.strategy)}_tmp")

    @property
    def _state_path(self):
        return os.path.join(self.checkpoint_dir, "trainer_state.json")

    def restore(self):
        """Restores the latest checkpoint; returns True if there was one."""
        if self._manager is None:
            return False
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(self.checkpoint_dir)
        if latest is None:
            return False
        self._checkpoint.restore(latest).expect_partial()
        state = {}
        if os.path.exists(self._state_path):
            with open(self._state_path) as f:
                state = json.load(f)
        self.history = state.get("history", [])[: int(self._epoch.numpy())]
        self._partial = state.get("partial") if int(self._step.numpy()) else None
        for cb, saved in zip(self.callbacks, state.get("callbacks", [])):
            if saved.get("class") == type(cb).__name__:
                for key, value in saved["state"].items():
                    setattr(cb, key, value)
        return True

    def save(self):
        if self._manager is None:
            return
        path = self._manager.save()
        if not self.chief:
            shutil.rmtree(self._write_dir(), ignore_errors=True)
            return
        state = {
            "checkpoint": os.path.basename(path),
            "epochs_done": int(self._epoch.numpy()),
            "step_in_epoch": int(self._step.numpy()),
            "history": self.history,
            # Running means of the interrupted epoch, so its logs cover all of its steps.
            "partial": self._partial,
            "callbacks": [
                {"class": type(cb).__name__,
                 "state": {k: float(getattr(cb, k)) for k in _CALLBACK_STATE
                           if isinstance(getattr(cb, k, None), (int, float, np.number))}}
                for cb in self.callbacks],
        }
        tmp = self._state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, self._state_path)  # atomic: never a half-written state file

    # ---- steps ---------------------------------------------------------------------------
    def _make_step(self, step_fn):
        import tensorflow as tf

        strategy = self.strategy

        def replica_mean(value):
            # Keras keeps metric state per replica; with equal per-replica batches the mean of
            # the replicas' running means is the global one (what model.fit reports too).
            return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)

        @tf.function(reduce_retracing=True)
        def run(batch):
            outputs = strategy.run(step_fn, args=(batch,))
            return tf.nest.map_structure(replica_mean, outputs)

        return run

    def _distribute(self, dataset):
        return self.strategy.experimental_distribute_dataset(dataset)

    # ---- the loop ------------------------------------------------------------------------
    def fit(self, train_data, epochs, validation_data=None, steps_per_epoch=None):
        """Trains until ``epochs`` epochs are done in total (resumed epochs count).

        ``train_data``: ``epoch -> tf.data.Dataset`` of global batches (deterministic per
        epoch for exact resuming), or a dataset used as it is every epoch.
        ``validation_data``: a dataset of global batches, or None.
        Returns the history: one dict of logs per epoch.
        """
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        make_epoch = train_data if callable(train_data) else (lambda epoch: train_data)
        resumed = self.restore()
        start_epoch, start_step = int(self._epoch.numpy()), int(self._step.numpy())
        if resumed and self.verbose:
            print(f"Resuming from {self.checkpoint_dir}: {start_epoch} epochs done, "
                  f"{start_step} steps into epoch {start_epoch + 1}")
        if steps_per_epoch is None:
            steps_per_epoch = _cardinality(make_epoch(start_epoch))
        callbacks = keras.callbacks.CallbackList(
            self.callbacks, add_history=False, add_progbar=self.verbose != 0, model=self.model,
            epochs=epochs, steps=steps_per_epoch, verbose=self.verbose)
        self.model.stop_training = False
        callbacks.on_train_begin()
        for epoch in range(start_epoch, epochs):
            t0 = time.time()
            skip = start_step if epoch == start_epoch else 0
            self._step.assign(skip)
            self.model.reset_metrics()
            callbacks.on_epoch_begin(epoch)
            dataset = make_epoch(epoch)
            if skip:
                dataset = dataset.skip(skip)
            if steps_per_epoch is not None:
                dataset = dataset.take(steps_per_epoch - skip)
            before = self._partial if skip else None
            logs = {}
            for step, batch in enumerate(self._distribute(dataset), start=skip):
                callbacks.on_train_batch_begin(step)
                logs = _combine(before, _to_python(self._train_fn(batch)), step + 1 - skip)
                self._step.assign(step + 1)
                callbacks.on_train_batch_end(step, logs)
                if self.checkpoint_every and (step + 1) % self.checkpoint_every == 0:
                    self._partial = {"steps": step + 1, "logs": logs}
                    self.save()
            self._partial = None
            if validation_data is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(validation_data).items()})
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))
            logs["epoch_seconds"] = time.time() - t0
            callbacks.on_epoch_end(epoch, logs)
            self.history.append({"epoch": epoch + 1, **logs})
            self._epoch.assign(epoch + 1)
            self._step.assign(0)
            self.save()
            if self.model.stop_training:
                break
        callbacks.on_train_end(logs=self.history[-1] if self.history else None)
        return self.history

    def evaluate(self, dataset):
        """Loss and compiled metrics over ``dataset`` (global batches), as a dict of floats."""
        self.model.reset_metrics()
        logs = {}
        for batch in self._distribute(dataset):
            logs = self._test_fn(batch)
        logs = _to_python(logs)
        self.model.reset_metrics()
        return logs


def _combine(before, after, after_steps):
    """Step-weighted means of an epoch's logs from before and after a restart.

    Exact for losses and accuracies averaged over equal-size batches (the metrics here).
    """
    if not before:
        return after
    n0 = before["steps"]
    total = n0 + after_steps
    return {k: (before["logs"].get(k, v) * n0 + v * after_steps) / total for k, v in after.items()}


def _cardinality(dataset):
    import tensorflow as tf

    n = int(dataset.cardinality().numpy())
    return n if n >= 0 and n != tf.data.INFINITE_CARDINALITY else None


def _to_python(logs):
    return {k: float(keras.ops.convert_to_numpy(v)) for k, v in logs.items()}
