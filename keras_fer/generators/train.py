"""Training a generator (reconstruct each image under its own label) and feeding it data."""

import json
import os

import numpy as np

import keras

from keras_fer.generators.common import condition_groups
from keras_fer.generators.generate import as_model_images, encode_conditions


def dataset_arrays(dataset, image_size, channels=1, batch_size=256):
    """uint8 images (n, H, W, channels) and int labels of a ``FERDataset``, in record order.

    Goes through ``keras_fer.datasets.make_dataset`` so that decoding, grey/colour conversion
    and resizing are the same as for the classifiers.
    """
    from keras_fer.datasets.pipeline import make_dataset

    ds = make_dataset(dataset, image_size=tuple(image_size), channels=channels,
                      batch_size=batch_size, shuffle=False, label_mode="int",
                      normalization={"scale": 1.0}, cache=False)
    images, labels = [], []
    for x, y in ds:
        images.append(np.round(np.asarray(x)).astype(np.uint8))
        labels.append(np.asarray(y))
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def _epoch_data(x_u8, conditions, batch_size, seed, drop_remainder):
    """``epoch -> tf.data`` of ((image, *conditions), image), shuffled by a per-epoch seed so
    a resumed run sees the same batches (the Trainer's requirement for exact resuming)."""
    import tensorflow as tf

    base = tf.data.Dataset.from_tensor_slices((x_u8, tuple(conditions)))

    def to_example(image, conds):
        image = tf.cast(image, tf.float32) / 255.0
        return (image,) + tuple(conds), image

    def make(epoch):
        ds = base
        if seed is not None:
            ds = ds.shuffle(len(x_u8), seed=seed * 100003 + epoch, reshuffle_each_iteration=False)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        return ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)

    return make


def _as_uint8(images, image_shape):
    x, was_uint8, _ = as_model_images(images, image_shape)
    if was_uint8:
        return np.round(x * 255.0).astype(np.uint8)
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"float images must lie in [0, 1], got values in [{x.min():g}, "
                         f"{x.max():g}]")
    return np.round(x * 255.0).astype(np.uint8)


def train_generator(model, images, condition, epochs, batch_size=64, learning_rate=1e-3,
                    out_dir=None, validation=None, callbacks=(), seed=0, verbose=1,
                    checkpoint_every=None):
    """Trains ``model`` to reconstruct ``images`` given their own ``condition`` (MSE on [0, 1]
    pixels, Adam), the paper's training objective; returns the history (one dict per epoch).

    Args:
        images: (n, H, W[, C]) uint8 or [0, 1] floats.
        condition: the images' own labels in any form :func:`generate` accepts.
        epochs, batch_size, learning_rate: the paper used Adam at 1e-3, batch 2048 for MNIST
            and 64 for faces.
        out_dir: checkpoints (``out_dir/checkpoints``, resumed when the same call is run again),
            ``generator.keras`` and ``history.json``; None trains in memory only.
        validation: optional ``(images, condition)`` for a ``val_loss``.
        callbacks: Keras callbacks (e.g. :class:`MutationTableCallback`).
        seed: shuffling seed (per epoch); None keeps the given order.
        checkpoint_every: also checkpoint every this many steps.

    The last incomplete batch of an epoch is dropped (when there is at least one full batch):
    with ``axis="batch"`` attention a small last batch would give noisy column statistics.
    The order is reshuffled every epoch, so every image is still used.
    """
    from keras_fer.training import Trainer

    epochs = int(epochs)
    image_shape = tuple(model.inputs[0].shape[1:])
    groups = condition_groups(model)
    x = _as_uint8(images, image_shape)
    conds = encode_conditions(groups, condition, len(x))
    if len(x) == 0:
        raise ValueError("images must hold at least one image")
    batch_size = min(int(batch_size), len(x))
    make = _epoch_data(x, conds, batch_size, seed, drop_remainder=True)
    val = None
    if validation is not None:
        vx = _as_uint8(validation[0], image_shape)
        vconds = encode_conditions(groups, validation[1], len(vx))
        val = _epoch_data(vx, vconds, min(batch_size, len(vx)), None, False)(0)
    if getattr(model, "optimizer", None) is None or not model.compiled:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    checkpoint_dir = os.path.join(out_dir, "checkpoints") if out_dir else None
    trainer = Trainer(model, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                      callbacks=list(callbacks), verbose=verbose)
    history = trainer.fit(make, epochs=epochs, validation_data=val,
                          steps_per_epoch=len(x) // batch_size)
    if out_dir:
        model.save(os.path.join(out_dir, "generator.keras"))
        with open(os.path.join(out_dir, "history.json"), "w") as f:
            json.dump(history, f, indent=1)
    return history
