"""Running a recipe's list of trainings: ``Run``, ``run_key``, ``run_all`` (resuming and
reusing), the best-epoch callback and the summary row of a finished run.

Resuming: every run lives in ``<out>/<run key>/``. A finished run leaves ``result.json``
(its summary row and the config it ran with); re-running the recipe reuses it when the config
is unchanged. An unfinished run resumes from its last checkpoint (``train``'s own resume).
``--force`` deletes a run's folder first.
"""

import dataclasses
import json
import math
import os
import shutil
import time
import traceback

import numpy as np

from keras_fer.recipes._common.jsonio import json_ready
from keras_fer.recipes._common.tables import fmt_pct, fmt_seconds


@dataclasses.dataclass
class Run:
    """One training of a recipe: ``key`` names it (and its folder under the output), ``tags``
    are the table columns it fills (model, dataset, protocol, fold, variant, ...)."""

    key: str
    config: object  # keras_fer.training.TrainConfig
    train_data: object = None
    val_data: object = None
    tags: dict = dataclasses.field(default_factory=dict)


def run_key(*parts):
    """A run's key (its folder under the output), ``parts`` joined by ``/``: a split's tags
    (from ``protocol_splits``) become its protocol, followed by ``fold<i>`` for subject folds;
    ``run_key("ckplus48", {"protocol": "subject", "fold": 0}, "resnet18")`` is
    ``"ckplus48/subject/fold0/resnet18"``."""
    names = []
    for part in parts:
        if isinstance(part, dict):
            names.append(part["protocol"])
            if part["protocol"] == "subject":
                names.append(f"fold{part['fold']}")
        else:
            names.append(str(part))
    return "/".join(names)


def base_config(**values):
    """A ``TrainConfig`` with the recipes' common choices (one line per epoch, TensorBoard on)
    overridden by ``values``."""
    from keras_fer.training import TrainConfig

    values.setdefault("verbose", 2)
    return TrainConfig(**values)


def _best_epoch_callback():
    import keras

    class BestEpochWeights(keras.callbacks.Callback):
        """Keeps the weights of the epoch with the highest ``monitor`` (validation accuracy)
        on disk and loads them back when training ends, so the evaluation report describes
        the best epoch: the papers' "accuracy @ best epoch" (seeds 002, 003).

        Selecting the epoch on the test split is the papers' protocol and is optimistic; the
        summary row also keeps the last epoch's accuracy. ``best``/``best_epoch`` are plain
        numbers so the training loop's checkpoint carries them across a restart.
        """

        def __init__(self, path, monitor="val_accuracy"):
            super().__init__()
            self.path, self.monitor = path, monitor
            self.best, self.best_epoch = -math.inf, -1

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(self.monitor)
            if value is not None and value > self.best:
                self.best, self.best_epoch = float(value), int(epoch)
                self.model.save_weights(self.path)

        def on_train_end(self, logs=None):
            if os.path.exists(self.path):
                self.model.load_weights(self.path)

    return BestEpochWeights


def BestEpochWeights(path, monitor="val_accuracy"):  # noqa: N802 - a class, built lazily
    """A callback restoring the best epoch's weights at the end (see its docstring); built on
    first use so that importing the recipes does not import TensorFlow."""
    return _best_epoch_callback()(path, monitor)


def summarize(run, result):
    """The summary row of a finished run: its tags plus accuracy at the best epoch (the
    evaluation report, written after the best weights are restored), the last epoch's
    accuracy, mean per-class accuracy (the papers' "Average"), per-class accuracy, weighted
    P/R/F1, parameters, FLOPs and training time."""
    report, history = result.report, result.history
    val_acc = [h.get("val_accuracy", float("nan")) for h in history]
    best = int(np.nanargmax(val_acc)) if history and not np.all(np.isnan(val_acc)) else -1
    per_class = report.get("per_class", {})
    row = dict(run.tags)
    row.update(
        key=run.key,
        accuracy=report.get("accuracy"),
        mean_class_accuracy=report.get("macro", {}).get("recall"),
        best_epoch=best + 1 if best >= 0 else None,
        last_accuracy=val_acc[-1] if val_acc else None,
        epochs=len(history),
        train_seconds=report.get("train_seconds"),
        params=report.get("params", {}).get("total"),
        flops=report.get("flops"),
        weighted=report.get("weighted"),
        per_class={k: v["recall"] for k, v in per_class.items()},
        per_class_prf={k: {m: v[m] for m in ("precision", "recall", "f1", "support")}
                       for k, v in per_class.items()},
        confusion_matrix=report.get("confusion_matrix"),
        accuracy_7class=report.get("accuracy_7class"),
        n_train=len(run.train_data) if run.train_data is not None else None,
        n_test=report.get("num_samples"),
        report=os.path.join(result.out_dir, "evaluation", "report.md"),
    )
    return json_ready(row)


def _comparable(config_dict):
    return {k: v for k, v in config_dict.items() if k not in ("verbose", "out_dir")}


def _saved_row(result_path, config, head, log):
    """The row ``result.json`` holds when it was written for the same settings, else None."""
    if not os.path.exists(result_path):
        return None
    with open(result_path) as f:
        saved = json.load(f)
    if _comparable(saved.get("config", {})) == _comparable(json_ready(config.to_dict())):
        log(f"{head}: done before, reusing {result_path}")
        return saved["row"]
    log(f"{head}: settings changed since the saved result; training (resuming any "
        "checkpoint; --force starts over)")
    return None


def _size(data):
    return len(data) if data is not None else "?"


def _train(run, config, out_dir, select_best, evaluation_options=None):
    """Trains one run and returns its summary row (with ``wall_seconds``)."""
    from keras_fer.training import train

    t0 = time.time()
    os.makedirs(out_dir, exist_ok=True)
    extra = ([BestEpochWeights(os.path.join(out_dir, "best.weights.h5"))]
             if select_best and run.val_data is not None else [])
    result = train(config, run.train_data, run.val_data, extra_callbacks=extra,
                   evaluation_options=evaluation_options)
    row = summarize(run, result)
    row["wall_seconds"] = time.time() - t0
    return row


def run_one(run, out, force=False, log=print, select_best=True, head=None,
            evaluation_options=None):
    """Trains (or resumes, or reuses) one run under ``<out>/<run key>/`` and returns its
    summary row; a failure is returned as a row with ``error`` (and logged).
    ``evaluation_options``: ``train``'s (``{"tsne_samples": 0}``: no t-SNE pictures)."""
    import keras

    head = head or run.key
    out_dir = os.path.join(out, *run.key.split("/"))
    config = run.config.replace(out_dir=out_dir)
    result_path = os.path.join(out_dir, "result.json")
    if force and os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    row = _saved_row(result_path, config, head, log)
    if row is not None:
        return row
    log(f"{head}: {config.arch} {config.arch_options or ''} input {config.input_shape}, "
        f"{config.epochs} epochs, {_size(run.train_data)} train / {_size(run.val_data)} "
        "test images")
    try:
        row = _train(run, config, out_dir, select_best, evaluation_options)
    except Exception as err:  # noqa: BLE001 - reported in the row and the log
        log(f"{head}: FAILED: {type(err).__name__}: {err}")
        traceback.print_exc()
        return json_ready(dict(run.tags, key=run.key, error=f"{type(err).__name__}: {err}"))
    finally:
        keras.backend.clear_session()  # a sweep builds many models: free the last one's graph
    with open(result_path, "w") as f:
        json.dump({"config": json_ready(config.to_dict()), "row": row}, f, indent=1)
    log(f"{head}: accuracy {fmt_pct(row['accuracy'])} (best epoch {row['best_epoch']}, "
        f"last {fmt_pct(row['last_accuracy'])}), {fmt_seconds(row['train_seconds'])} "
        "training")
    return row


def run_all(runs, out, force=False, log=print, select_best=True, evaluation_options=None):
    """Trains every run (resuming unfinished ones, reusing finished ones) and returns their
    summary rows in order. A run that fails is reported (row with ``error``) and the others
    go on: one model that does not fit must not cost the rest of a long sweep.

    ``select_best``: evaluate the weights of the epoch with the best validation accuracy (the
    papers' protocol, optimistic); False evaluates the last epoch (what the zoo publishes).
    ``evaluation_options``: see ``run_one``."""
    keys = [r.key for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"run keys must be unique, got duplicates in {keys}")
    return [run_one(run, out, force, log, select_best, head=f"[{i}/{len(runs)}] {run.key}",
                    evaluation_options=evaluation_options)
            for i, run in enumerate(runs, 1)]
