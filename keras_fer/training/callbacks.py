"""Callbacks of the engine's own (the stock Keras ones are built in ``builders``)."""

import os

import keras

from keras_fer.training.atomic import save_atomically, write_json_atomically


class BestModel(keras.callbacks.Callback):
    """Saves ``model`` to ``path`` (atomically) whenever ``monitor`` improves, and the epoch's
    logs beside it (``best.json``), so a run that is cut off still leaves its
    validation-selected model. ``best`` is restored on resume (``loop._CALLBACK_STATE``).

    ``model`` is the network itself, not the object being trained (a ``SAMModel`` wraps it);
    with EMA on, the loop calls ``on_epoch_end`` while the averaged weights are in place.
    """

    def __init__(self, model, path, monitor="val_accuracy", mode="max"):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.network, self.path, self.monitor, self.mode = model, path, monitor, mode
        self.best = float("-inf") if mode == "max" else float("inf")
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        value = float(value)
        if value > self.best if self.mode == "max" else value < self.best:
            self.best, self.best_epoch = value, epoch + 1
            save_atomically(self.network, self.path)
            write_json_atomically(
                os.path.splitext(self.path)[0] + ".json",
                {"epoch": epoch + 1, "monitor": self.monitor, "value": value,
                 "logs": {k: float(v) for k, v in (logs or {}).items()}})
