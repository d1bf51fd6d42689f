"""Optimiser, learning-rate schedule, loss and callbacks from a ``TrainConfig``."""

import numpy as np

import keras


def build_optimizer(config, steps_per_epoch):
    """SGD / Adam / AdamW with the config's schedule.

    "step" and "cosine" are step-based schedules (the epoch count times ``steps_per_epoch``);
    "plateau" keeps a plain learning rate that ``ReduceLROnPlateau`` lowers (a schedule
    object cannot be lowered by a callback).
    """
    lr = config.learning_rate
    if config.schedule == "step":
        if steps_per_epoch is None:
            raise ValueError("schedule='step' needs a dataset of known length")
        boundaries = [steps_per_epoch * e for e in range(config.step_epochs, config.epochs,
                                                          config.step_epochs)]
        values = [lr * config.step_factor ** i for i in range(len(boundaries) + 1)]
        lr = (keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
              if boundaries else lr)
    elif config.schedule == "cosine":
        if steps_per_epoch is None:
            raise ValueError("schedule='cosine' needs a dataset of known length")
        lr = keras.optimizers.schedules.CosineDecay(lr, steps_per_epoch * config.epochs)
    ema = ({"use_ema": True, "ema_momentum": config.ema_momentum}
           if config.ema_momentum else {})
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay or None, **ema)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr, weight_decay=config.weight_decay or None, **ema)
    return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay or 0.004, **ema)


def build_loss(config, prior=None):
    """The loss on logits. ``prior`` (class frequencies) feeds PDLS/F-PDLS on hard labels."""
    if config.loss == "ce":
        return keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.label_smoothing)
    if config.loss == "focal":
        return keras.losses.CategoricalFocalCrossentropy(from_logits=True,
                                                         gamma=config.focal_gamma)
    from keras_fer.losses import FPDLS, PDLS

    # With vote distributions as targets the distribution itself is d; with one-hot targets
    # the training set's class prior is.
    kwargs = {"alpha": config.pdls_alpha}
    if config.label_mode == "onehot":
        if prior is None:
            raise ValueError(f"loss={config.loss!r} with one-hot labels needs the class prior")
        kwargs["prior"] = [float(p) for p in np.asarray(prior) / np.sum(prior)]
    if config.loss == "pdls":
        return PDLS(**kwargs)
    return FPDLS(gamma=config.focal_gamma, **kwargs)


def build_callbacks(config):
    """ReduceLROnPlateau and EarlyStopping as the config asks (seed 002's settings)."""
    callbacks = []
    if config.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=config.plateau_factor, patience=config.plateau_patience,
            verbose=1 if config.verbose else 0))
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience))
    return callbacks


def set_batchnorm_momentum(model, momentum):
    """Sets ``momentum`` on every BatchNormalization layer of ``model``, nested models included.
    Returns how many layers were changed (0 tells the caller the option had no effect)."""
    from keras_fer.layers.walk import iter_layers

    changed = 0
    for layer in iter_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
            changed += 1
    return changed
