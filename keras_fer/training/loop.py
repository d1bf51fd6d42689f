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

import contextlib
import json
import logging
import os
import shutil
import time

import numpy as np

import keras

from keras_fer.training.strategy import is_chief, worker_index

logger = logging.getLogger("keras_fer.training")

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

    def _checkpoint_state_path(self, prefix):
        # One state file per checkpoint (next to its .index), so that falling back to an
        # older checkpoint also falls back to its history and running means, and a lost
        # trainer_state.json loses nothing.
        return prefix + ".trainer_state.json"

    def _read_state(self, prefix):
        """The trainer state saved with checkpoint ``prefix``: its own file, else
        trainer_state.json when that describes the same checkpoint, else None."""
        for path in (self._checkpoint_state_path(prefix), self._state_path):
            if not os.path.exists(path):
                continue
            try:
                with open(path) as f:
                    state = json.load(f)
            except (OSError, ValueError) as err:
                logger.warning("%s: unreadable trainer state (%s); ignored", path, err)
                continue
            if state.get("checkpoint") in (None, os.path.basename(prefix)):
                return state
        return None

    def restore(self):
        """Restores the latest intact checkpoint; returns True if there was one.

        A checkpoint that cannot be read (a truncated file after a full disk or a kill
        during the write) is reported with a warning naming it, and the previous one is
        used; if none can be read, the error names the folder and each file's problem.
        """
        if self._manager is None:
            return False
        import tensorflow as tf

        state = tf.train.get_checkpoint_state(self.checkpoint_dir)
        candidates = list(state.all_model_checkpoint_paths) if state else []
        latest = tf.train.latest_checkpoint(self.checkpoint_dir)
        if latest and latest not in candidates:
            candidates.append(latest)
        if not candidates:
            return False
        problems = []
        for prefix in reversed(candidates):
            try:
                self._checkpoint.restore(prefix).expect_partial()
            except Exception as err:  # TF raises IndexError, DataLossError, ValueError...
                reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                problems.append(f"{prefix}: {reason}")
                logger.warning("checkpoint %s cannot be read (%s); trying the previous one",
                               prefix, reason)
                continue
            break
        else:
            raise ValueError(f"no checkpoint in {self.checkpoint_dir} can be restored into this "
                             f"model (a different architecture or classes, or damaged "
                             f"files): " + "; ".join(problems) + ". Use another out_dir, or "
                             f"delete the checkpoints to start over.")
        if problems:
            logger.warning("resumed from the older checkpoint %s", prefix)
        state = self._read_state(prefix)
        epochs_done = int(self._epoch.numpy())
        if state is None:
            state = {}
            if epochs_done:
                logger.warning("%s: no trainer state for checkpoint %s: the history of its %d "
                               "finished epochs is lost (history.json will start at epoch %d)",
                               self.checkpoint_dir, os.path.basename(prefix), epochs_done,
                               epochs_done + 1)
        self.history = state.get("history", [])[:epochs_done]
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
        for target in (self._checkpoint_state_path(path), self._state_path):
            tmp = target + ".tmp"
            with open(tmp, "w") as f:
                json.dump(state, f, indent=1)
            os.replace(tmp, target)  # atomic: never a half-written state file
        # State files of checkpoints the manager has deleted (max_to_keep).
        kept = {os.path.basename(p) for p in self._manager.checkpoints}
        suffix = ".trainer_state.json"
        for name in os.listdir(self.checkpoint_dir):
            if name.endswith(suffix) and name[: -len(suffix)] not in kept:
                try:
                    os.remove(os.path.join(self.checkpoint_dir, name))
                except OSError:
                    pass

    # ---- steps ---------------------------------------------------------------------------
    def _make_step(self, step_fn):
        import tensorflow as tf

        strategy = self.strategy

        def replica_mean(value):
            # Keras keeps metric state per replica; with equal per-replica batches the mean of
            # the replicas' running means is the global one (what model.fit reports too).
            return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)

        def batch_size(batch):
            return tf.cast(tf.shape(tf.nest.flatten(batch)[0])[0], tf.float64)

        @tf.function(reduce_retracing=True)
        def run(batch):
            outputs = strategy.run(step_fn, args=(batch,))
            # Samples in the global batch: Keras weights its running means by samples, so
            # combining the means of two parts of an epoch must too (the last batch is
            # usually smaller).
            samples = strategy.reduce(tf.distribute.ReduceOp.SUM,
                                      strategy.run(batch_size, args=(batch,)), axis=None)
            return tf.nest.map_structure(replica_mean, outputs), samples

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
            samples = 0.0  # since this (re)start of the epoch
            for step, batch in enumerate(self._distribute(dataset), start=skip):
                callbacks.on_train_batch_begin(step)
                outputs, batch_samples = self._train_fn(batch)
                samples += float(batch_samples)
                logs = _combine(before, _to_python(outputs), samples, step + 1 - skip)
                self._step.assign(step + 1)
                callbacks.on_train_batch_end(step, logs)
                if self.checkpoint_every and (step + 1) % self.checkpoint_every == 0:
                    self._partial = {"steps": step + 1, "logs": logs,
                                     "samples": samples + (before or {}).get("samples", 0.0)}
                    self.save()
            self._partial = None
            # With EMA on, validation and the epoch-end callbacks (best model, TensorBoard)
            # see the averaged weights; training and the checkpoint keep the raw ones.
            with self._averaged_weights():
                if validation_data is not None:
                    logs.update({f"val_{k}": v
                                 for k, v in self.evaluate(validation_data).items()})
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
        if self._uses_ema():
            # The trained model is the averaged one (what model.fit leaves too).
            self.model.optimizer.finalize_variable_values(self.model.trainable_variables)
        callbacks.on_train_end(logs=self.history[-1] if self.history else None)
        return self.history

    def _uses_ema(self):
        optimizer = self.model.optimizer
        return bool(getattr(optimizer, "use_ema", False)) and optimizer.built

    @contextlib.contextmanager
    def _averaged_weights(self):
        """The optimizer's moving averages in place of the weights, for the duration."""
        if not self._uses_ema():
            yield
            return
        variables = self.model.trainable_variables
        raw = [v.numpy() for v in variables]
        self.model.optimizer.finalize_variable_values(variables)
        try:
            yield
        finally:
            for variable, value in zip(variables, raw):
                variable.assign(value)

    def evaluate(self, dataset):
        """Loss and compiled metrics over ``dataset`` (global batches), as a dict of floats."""
        self.model.reset_metrics()
        logs = {}
        for batch in self._distribute(dataset):
            logs, _ = self._test_fn(batch)
        logs = _to_python(logs)
        self.model.reset_metrics()
        return logs


def _combine(before, after, after_samples, after_steps=1):
    """Sample-weighted means of an epoch's logs from before and after a restart.

    Keras' running means (loss tracker, accuracy) weight each batch by its number of samples;
    weighting the two parts by steps instead was off whenever the batches differ in size
    (the epoch's last one), e.g. by ~1 % of the resumed epoch's loss.
    """
    if not before:
        return after
    n0 = before.get("samples")
    if n0 is None:  # a state written before samples were counted: steps are all it has
        n0, after_samples = before["steps"], after_steps
    total = n0 + after_samples
    return {k: (before["logs"].get(k, v) * n0 + v * after_samples) / total
            for k, v in after.items()}


def _cardinality(dataset):
    import tensorflow as tf

    n = int(dataset.cardinality().numpy())
    return n if n >= 0 and n != tf.data.INFINITE_CARDINALITY else None


def _to_python(logs):
    return {k: float(keras.ops.convert_to_numpy(v)) for k, v in logs.items()}
