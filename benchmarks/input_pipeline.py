"""Input-pipeline throughput vs. the time a small CNN needs per step.

    python benchmarks/input_pipeline.py [--data-root ../shared/data] [--batch-size 64]

For FER2013 (train split, 48x48) and CK+48 (96x96) it prints, with and without augmentation:

* ``first epoch``: seconds to build the dataset and run one pass (decode + resize + cache);
* ``pipeline img/s``: steady-state images per second of ``make_dataset`` alone (cached);
* ``CNN ms/step``: a training step of a small CNN on batches already in memory;
* ``fit ms/step``: the same CNN trained from the pipeline (``model.fit``);
* ``starved``: whether the pipeline needs longer per batch than the model does.

Reads the real data from ``--data-root`` (default: ``$KERAS_FER_DATA`` or ``../shared/data``)
through ``keras_fer.datasets.load``. Numbers depend on the machine and on what else it runs.
"""

import argparse
import os
import time

import numpy as np


def small_cnn(input_shape, num_classes):
    import keras

    inputs = keras.Input(input_shape)
    x = inputs
    for width in (32, 64, 128):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes)(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def pipeline_rate(ds, batches, batch_size):
    it = iter(ds)
    for _ in range(3):  # warm up: tracing, autotune, prefetch buffers
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - start
    return batches * batch_size / elapsed, 1000 * elapsed / batches


def model_step_ms(model, batch, steps):
    x, y = batch
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return 1000 * (time.perf_counter() - start) / steps


def fit_step_ms(model, ds, steps):
    model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return 1000 * (time.perf_counter() - start) / steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("KERAS_FER_DATA", "../shared/data"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=40, help="timed pipeline batches")
    parser.add_argument("--steps", type=int, default=15, help="timed model steps")
    parser.add_argument("--augment", nargs="+", default=["none", "basic", "randaugment"])
    args = parser.parse_args(argv)

    import tensorflow as tf

    from keras_fer.datasets import load, make_dataset

    configs = [("fer2013", "train", (48, 48)), ("ckplus48", None, (96, 96))]
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, batch {args.batch_size}")
    header = (f"{'dataset':10} {'size':>7} {'augment':>11} {'first epoch s':>13} "
              f"{'pipeline img/s':>14} {'pipe ms/batch':>13} {'CNN ms/step':>11} "
              f"{'fit ms/step':>11} {'starved':>7}")
    print(header)
    print("-" * len(header))
    for name, split, size in configs:
        data = load(name, os.path.join(args.data_root, name), split=split)
        model = small_cnn(size + (1,), len(data.classes))
        for augment in args.augment:
            aug = None if augment == "none" else augment
            start = time.perf_counter()
            ds = make_dataset(data, image_size=size, channels=1, batch_size=args.batch_size,
                              seed=0, augment=aug, repeat=True, drop_remainder=True)
            steps_per_epoch = len(data) // args.batch_size
            it = iter(ds)
            for _ in range(steps_per_epoch):
                batch = next(it)
            first = time.perf_counter() - start
            rate, pipe_ms = pipeline_rate(ds, args.batches, args.batch_size)
            batch = (np.asarray(batch[0]), np.asarray(batch[1]))
            cnn_ms = model_step_ms(model, batch, args.steps)
            fit_ms = fit_step_ms(model, ds, args.steps)
            starved = "yes" if pipe_ms > cnn_ms else "no"
            print(f"{name:10} {size[0]:>3}x{size[1]:<3} {augment:>11} {first:13.1f} "
                  f"{rate:14.0f} {pipe_ms:13.1f} {cnn_ms:11.1f} {fit_ms:11.1f} {starved:>7}",
                  flush=True)


if __name__ == "__main__":
    main()
