"""Warm starts and training histories: a model trained over several interrupted runs.

A run folder on a laptop or a CI machine does not survive; a zoo entry or a committed
``.keras`` file does. ``TrainConfig(init=...)`` starts a run from one of them (then trains with
the run's own schedule: a warm restart), and every run writes ``training_history.json``: the
history it inherited from its source plus one record of its own (command, config, epochs,
images seen, validation metrics). Publishing the model copies that list into the zoo entry, so
a model trained across many sessions still says exactly how it was made.

``init`` values:

* ``"zoo:NAME"``: zoo entry ``NAME`` (bundled, cached or downloaded; sha256-checked).
* a path to a ``.keras`` file (its folder's ``training_history.json``, if any, is inherited).
* a path to the ``out_dir`` of an earlier run: its ``model.keras`` and history.
"""

import datetime
import json
import os
import shlex
import sys

ZOO_PREFIX = "zoo:"
HISTORY_FILE = "training_history.json"
INHERITED_FILE = "inherited_history.json"
#: What ``init_mode="layers"`` copied and what it left at its initialisation.
TRANSFER_FILE = "transfer.json"

#: Config fields a history record keeps (the rest are infrastructure or defaults).
RECORD_FIELDS = ("arch", "arch_options", "input_shape", "init", "init_mode", "dataset", "protocol",
                 "train_split", "val_split", "augment", "mixup", "cutmix", "batch_size",
                 "epochs", "optimizer", "learning_rate", "weight_decay", "schedule", "loss",
                 "label_smoothing", "label_mode", "mixed_precision", "ema_momentum", "sam_rho",
                 "seed")


def check_init(init):
    """Raises ``ValueError`` naming the problem unless ``init`` is a usable source."""
    if not isinstance(init, str) or not init.strip():
        raise ValueError(f"init must be 'zoo:NAME', a .keras file or a run folder, got {init!r}")
    if init.startswith(ZOO_PREFIX):
        if not init[len(ZOO_PREFIX):]:
            raise ValueError("init='zoo:' needs an entry name, e.g. 'zoo:mini_xception.fer2013'")
        return
    if os.path.isdir(init):
        if not os.path.isfile(os.path.join(init, "model.keras")):
            raise ValueError(f"init: {init} is a folder without model.keras (not a finished run)")
    elif not os.path.isfile(init):
        raise ValueError(f"init: {init} does not exist (expected 'zoo:NAME', a .keras file or "
                         f"a run folder)")
    elif not init.endswith(".keras"):
        raise ValueError(f"init: {init} is not a .keras file")


def read_history(path):
    """The history list stored in ``path`` (a JSON list), or [] when there is none."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        try:
            history = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(history, list):
        raise ValueError(f"{path}: a training history must be a JSON list of runs")
    return history


def entry_history(entry):
    """An entry's training history; entries published before histories existed get one
    record made from what they do carry (their recipe command and metrics)."""
    if entry.training_history:
        return [dict(run) for run in entry.training_history]
    metrics = entry.metrics or {}
    return [{"command": entry.recipe, "source": "published before training histories were "
             "recorded: reconstructed from the entry", "dataset": entry.dataset,
             "epochs": metrics.get("epochs"), "train_images": metrics.get("train_images"),
             "images_seen": (metrics["epochs"] * metrics["train_images"]
                             if "epochs" in metrics and "train_images" in metrics else None),
             "metrics": {k: metrics[k] for k in ("accuracy", "weighted_f1") if k in metrics},
             "finished": entry.created}]


def load_initial_model(init, num_classes, class_names):
    """``(model, inherited history)`` for ``init``; a new head when the class count differs.
    Call under the strategy's scope."""
    # Not ``keras_fer.zoo`` itself: its publish module reads histories from here.
    from keras_fer.models import load_model
    from keras_fer.models.ensemble import refuse_ensemble
    from keras_fer.zoo.loading import load, with_new_head
    from keras_fer.zoo.registry import describe

    check_init(init)
    if init.startswith(ZOO_PREFIX):
        name = init[len(ZOO_PREFIX):]
        entry = describe(name)
        model = load(name, num_classes=num_classes, class_names=class_names)
        refuse_ensemble(model, f"init={init!r}")
        history = entry_history(entry)
        for run in history[-1:]:
            run.setdefault("published_as", name)
        return model, history
    path = os.path.join(init, "model.keras") if os.path.isdir(init) else init
    model = load_model(path)
    refuse_ensemble(model, f"init={init!r}")
    if int(model.output_shape[-1]) != num_classes:
        model = with_new_head(model, num_classes, class_names)
    return model, read_history(os.path.join(os.path.dirname(path), HISTORY_FILE))


def read_transfer(path):
    """The ``TRANSFER_FILE`` of a run, or None when it did not transfer weights by layer."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def run_record(config, train_images, history, report=None, transfer=None):
    """One run of a model's history: how it was trained and what it measured."""
    epochs = len(history)
    vals = [h["val_accuracy"] for h in history if "val_accuracy" in h]
    metrics = {}
    if vals:
        metrics.update(val_accuracy_last=vals[-1], val_accuracy_best=max(vals),
                       best_epoch=vals.index(max(vals)) + 1)
    if report:
        metrics.update({k: report[k] for k in ("accuracy", "weighted_f1", "mean_class_accuracy")
                        if isinstance(report.get(k), (int, float))})
    settings = config.to_dict()
    record = {
        "command": " ".join(shlex.quote(a) for a in [os.path.basename(sys.argv[0])]
                            + sys.argv[1:]),
        "config": {k: settings[k] for k in RECORD_FIELDS if k in settings},
        "epochs": epochs,
        "train_images": int(train_images),
        "images_seen": int(train_images) * epochs,
        "train_seconds": round(sum(h.get("epoch_seconds", 0.0) for h in history), 1),
        "metrics": metrics,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if transfer:
        record["transfer"] = transfer
    return record
