"""``train(config)``: the one entry point every recipe and ``keras-fer train`` goes through."""

import dataclasses
import json
import os
import time

import numpy as np

import keras

from keras_fer.training.builders import (
    build_callbacks,
    build_loss,
    build_optimizer,
    set_batchnorm_momentum,
)
from keras_fer.training import warm_start
from keras_fer.training.atomic import save_atomically, write_json_atomically
from keras_fer.training.callbacks import BestModel
from keras_fer.training.config import TrainConfig
from keras_fer.training.loop import Trainer
from keras_fer.training.strategy import is_chief, make_strategy, split_cpu, wait_for_workers


@dataclasses.dataclass
class TrainResult:
    model: keras.Model
    history: list
    out_dir: str
    report: dict
    train_seconds: float


def load_splits(config):
    """(train, val) FERDatasets for the config's dataset and protocol."""
    from keras_fer import datasets
    from keras_fer.datasets import splits

    if not config.dataset or not config.data_root:
        raise ValueError("TrainConfig.dataset and data_root are needed when no datasets are "
                         "passed to train()")
    if config.protocol == "official" and config.train_split is None:
        if config.val_split is not None:
            raise ValueError(f"val_split={config.val_split!r} needs a train_split too")
        return official_splits(config)
    if config.protocol == "official":
        train = datasets.load(config.dataset, config.data_root, split=config.train_split,
                              **config.data_options)
        val = (datasets.load(config.dataset, config.data_root, split=config.val_split,
                             **config.data_options) if config.val_split else None)
        return train, val
    full = datasets.load(config.dataset, config.data_root, split=None, **config.data_options)
    if config.protocol == "subject_kfold":
        folds = splits.subject_kfold(full, config.folds, seed=config.seed)
    else:
        folds = splits.random_kfold(full, config.folds, seed=config.seed)
    train_idx, val_idx = folds[config.fold]
    return full.subset(train_idx, f"{full.name}/fold{config.fold}/train"), \
        full.subset(val_idx, f"{full.name}/fold{config.fold}/val")


# Fields whose change makes the checkpoints of an out_dir unusable (another model, another
# optimiser state or another class list): resuming must refuse them up front.
RESUME_INCOMPATIBLE = ("arch", "arch_options", "input_shape", "dataset", "label_mode",
                       "optimizer", "sam_rho", "mixed_precision")


def check_resume_compatible(config):
    """Raises ``ValueError`` naming the fields if ``config.out_dir`` holds checkpoints of a
    run whose config differs in a field of ``RESUME_INCOMPATIBLE``, before anything there is
    overwritten (a restart with another ``arch`` used to overwrite config.json and then fail
    with a raw shape error)."""
    path = os.path.join(config.out_dir, "config.json")
    checkpoints = os.path.join(config.out_dir, "checkpoints")
    if not os.path.isfile(path) or not (os.path.isdir(checkpoints) and os.listdir(checkpoints)):
        return
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the config of the run in {config.out_dir} "
                         f"({err}); use another out_dir or remove it") from None
    new = json.loads(config.to_json())
    changed = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in RESUME_INCOMPATIBLE
               if k in old and k in new and old[k] != new[k]]
    if changed:
        raise ValueError(f"{config.out_dir} holds checkpoints of another run ("
                         f"{'; '.join(changed)}): resuming would load them into a different "
                         f"model. Use another out_dir, or delete {checkpoints} to start over.")


# The official (train, validation) split names, in order of preference: FER2013 and FERPlus
# csvs validate on PublicTest (PrivateTest stays the held-out test set); folder layouts use
# their own names.
_OFFICIAL_TRAIN = ("Training", "train", "training")
_OFFICIAL_VAL = ("PublicTest", "val", "valid", "validation", "test", "testing")


def official_splits(config):
    """(train, val) from the splits the dataset itself carries, for protocol="official"
    without ``train_split``: reading every row as training data would train on test rows."""
    from keras_fer import datasets

    full = datasets.load(config.dataset, config.data_root, split=None, **config.data_options)
    present = [s for s in full.split_names() if s is not None]
    train_name = next((s for s in _OFFICIAL_TRAIN if s in present), None)
    val_name = next((s for s in _OFFICIAL_VAL if s in present), None)
    if train_name is None or val_name is None:
        found = f"its splits are {present}" if present else "it has no official split"
        raise ValueError(
            f"protocol='official' needs the dataset's training and validation splits, but "
            f"{config.dataset!r} at {config.data_root} has none to use ({found}): set "
            f"train_split and val_split, or protocol='subject_kfold' (or 'random')")
    index = full.split_indices()
    if config.verbose:
        print(f"protocol 'official': training on {train_name}, validating on {val_name}")
    return (full.subset(index[train_name], f"{full.name}/{train_name}"),
            full.subset(index[val_name], f"{full.name}/{val_name}"))


def train(config, train_data=None, val_data=None, model=None, extra_callbacks=(),
          evaluation_options=None):
    """Trains ``config.arch`` and writes checkpoints, TensorBoard logs and an evaluation report
    under ``config.out_dir``. Re-running the same call after an interruption resumes.

    ``train_data``/``val_data``: FERDatasets to use instead of loading ``config.dataset``
    (recipes pass folds this way). ``model``: an uncompiled model to train instead of
    ``create_model(config.arch, ...)`` (built under the strategy's scope by the caller).
    ``evaluation_options``: arguments of the report's ``evaluate_model`` (``tsne_samples=0``
    leaves the t-SNE pictures out); not part of the config: they change no number.
    """
    from keras_fer.datasets.pipeline import make_dataset
    from keras_fer.layers.onednn_safe import make_onednn_safe
    from keras_fer.layers.walk import weighted_leaves
    from keras_fer.models import create_model
    from keras_fer.models.ensemble import refuse_ensemble
    from keras_fer.zoo.loading import transfer_weights

    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    check_resume_compatible(config)  # before config.json is overwritten
    os.makedirs(config.out_dir, exist_ok=True)
    config.to_json(os.path.join(config.out_dir, "config.json"))
    if config.cpus and config.cpus > 1:
        split_cpu(config.cpus)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(config.mixed_precision)
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.strategy)

    if train_data is None:
        train_data, loaded_val = load_splits(config)
        val_data = loaded_val if val_data is None else val_data
    if config.balance_per_class:
        from keras_fer.datasets.balance import balance

        train_data = balance(train_data, per_class=config.balance_per_class, seed=config.seed)
    num_classes = len(train_data.classes)
    counts = np.array(list(train_data.class_counts().values()), dtype=np.float64)
    if config.verbose:
        print(f"train: {len(train_data)} images {dict(train_data.class_counts())}")
        if val_data is not None:
            print(f"val:   {len(val_data)} images {dict(val_data.class_counts())}")

    inherited_path = os.path.join(config.out_dir, warm_start.INHERITED_FILE)
    transfer_path = os.path.join(config.out_dir, warm_start.TRANSFER_FILE)
    with strategy.scope():
        if model is None and config.init:
            model, inherited = warm_start.load_initial_model(
                config.init, num_classes, list(train_data.classes))
            if config.init_mode == "layers":
                source, model = model, create_model(
                    config.arch, num_classes=num_classes,
                    input_shape=config.input_shape or tuple(model.input_shape[1:]),
                    **config.arch_options)
                fresh = transfer_weights(source, model, skip_layers=())
                del source
                copied = len(weighted_leaves(model)) - len(fresh)
                if config.verbose:
                    print(f"init_mode='layers': {copied} layers from {config.init}; "
                          f"{len(fresh)} keep their initialisation: {', '.join(fresh)}")
                if is_chief(strategy):
                    write_json_atomically(transfer_path, {
                        "from": config.init, "layers_copied": copied,
                        "layers_initialised": fresh})
            if config.input_shape and tuple(model.input_shape[1:]) != tuple(config.input_shape):
                raise ValueError(f"init={config.init!r} takes {tuple(model.input_shape[1:])} "
                                 f"inputs, but input_shape={tuple(config.input_shape)}")
            # Copied at the start: by the end the source may have changed (a warm restart
            # republishes the very entry it started from).
            if is_chief(strategy) and not os.path.exists(inherited_path):
                write_json_atomically(inherited_path, inherited)
        elif model is None:
            model = create_model(config.arch, num_classes=num_classes,
                                 input_shape=config.input_shape, **config.arch_options)
    refuse_ensemble(model, "train")
    # A model passed in may hold stock strided 1x1 convolutions (keras_fer.layers.onednn_safe).
    make_onednn_safe(model)
    if config.bn_momentum is not None:
        changed = set_batchnorm_momentum(model, config.bn_momentum)
        if config.verbose:
            print(f"bn_momentum={config.bn_momentum} set on {changed} BatchNormalization layers")
    if hasattr(model, "class_names"):
        # The builders default to the canonical names; the data knows its own (CK+48's seven
        # end in contempt, not neutral). Part of the saved config, so it must be right.
        model.class_names = list(train_data.classes)
    image_size, channels = tuple(model.input_shape[1:3]), int(model.input_shape[3])
    pipeline = dict(image_size=image_size, channels=channels, batch_size=config.batch_size,
                    label_mode=config.label_mode, normalization={"scale": 1.0})

    def train_epoch(epoch):
        # A fresh, epoch-seeded pipeline: the same epoch gives the same batches in every run,
        # which is what makes resuming exact.
        return make_dataset(train_data, shuffle=True, seed=config.seed * 100003 + epoch,
                            augment=config.augment, mixup=config.mixup, cutmix=config.cutmix,
                            validate=epoch == 0, **pipeline)

    val_ds = (make_dataset(val_data, shuffle=False, **pipeline) if val_data is not None
              else None)
    steps_per_epoch = -(-len(train_data) // config.batch_size)

    with strategy.scope():
        trainee = model
        if config.sam_rho:
            from keras_fer.optimizers import SAMModel

            trainee = SAMModel(model, rho=config.sam_rho)
        trainee.compile(optimizer=build_optimizer(config, steps_per_epoch),
                        loss=build_loss(config, prior=counts),
                        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])

    callbacks = build_callbacks(config) + list(extra_callbacks)
    if val_data is not None and is_chief(strategy):
        callbacks.append(BestModel(model, os.path.join(config.out_dir, "best.keras")))
    if config.tensorboard:
        from keras_fer.training.tensorboard import FERTensorBoard

        callbacks.append(FERTensorBoard(
            os.path.join(config.out_dir, "tensorboard"), model, val_ds, train_data.classes,
            step_every=config.tensorboard_step_every, graph=config.tensorboard_graph,
            histogram_every=config.tensorboard_histogram_every,
            profile_batches=config.profile_batches, hparams=config.to_dict()))
    trainer = Trainer(trainee, strategy, checkpoint_dir=os.path.join(config.out_dir, "checkpoints"),
                      checkpoint_every=config.checkpoint_every, callbacks=callbacks,
                      verbose=config.verbose)
    t0 = time.time()
    try:
        history = trainer.fit(train_epoch, epochs=config.epochs, validation_data=val_ds,
                              steps_per_epoch=steps_per_epoch)
    except Exception as err:
        import tensorflow as tf

        if not isinstance(err, tf.errors.InvalidArgumentError):
            raise
        # A decode error inside tf.data names no file: find it, and say what to do.
        from keras_fer.datasets.pipeline import find_unreadable_image

        bad = find_unreadable_image(train_data, val_data)
        if bad is None:
            raise
        raise type(bad)(f"{bad} (the input pipeline stopped on it; read the dataset with "
                        f"on_error='skip' to leave bad files out, or validate='full' to "
                        f"find them all before training)") from err
    seconds = time.time() - t0
    report = {}
    if trainer.chief:
        save_atomically(model, os.path.join(config.out_dir, "model.keras"))
        write_json_atomically(os.path.join(config.out_dir, "history.json"), history)
        if val_data is not None:
            from keras_fer.evaluation import evaluate_model

            report = evaluate_model(
                model, val_ds, train_data.classes, os.path.join(config.out_dir, "evaluation"),
                train_seconds=sum(h.get("epoch_seconds", 0.0) for h in history),
                extra={"config": config.to_dict(), "val_dataset": val_data.name},
                **(evaluation_options or {}))
        write_json_atomically(
            os.path.join(config.out_dir, warm_start.HISTORY_FILE),
            warm_start.read_history(inherited_path)
            + [warm_start.run_record(config, len(train_data), history, report,
                                     transfer=warm_start.read_transfer(transfer_path))])
    # The workers leave together, after the chief's writes (a worker that exits first is
    # reported as crashed by the coordination service on the chief).
    wait_for_workers(strategy)
    return TrainResult(model, history, config.out_dir, report, seconds)
