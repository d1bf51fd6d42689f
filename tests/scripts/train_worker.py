"""A small, deterministic training run used by the distribution and resume tests.

    python train_worker.py --out result.npz [--strategy default|mirrored|multi_worker]
        [--cpus N] [--epochs E] [--checkpoint-dir D] [--checkpoint-every K] [--sam RHO]
        [--slow-step SECONDS] [--arch toy|mini_xception] [--chief-delay SECONDS]

Writes the per-epoch losses and the final weights to --out (chief only). ``--arch
mini_xception``: a zoo family (BatchNorm, separable convolutions) at 16x16 and a quarter
width instead of the toy model. ``--chief-delay``: the chief works that long after training
(as ``train`` does, writing the model and the report) before the workers' final barrier.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--strategy", default="default")
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--checkpoint-dir")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--sam", type=float)
    p.add_argument("--slow-step", type=float, default=0.0)
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--arch", default="toy", choices=("toy", "mini_xception"))
    p.add_argument("--chief-delay", type=float, default=0.0)
    args = p.parse_args()

    from keras_fer.training.strategy import make_strategy, split_cpu

    if args.cpus > 1:
        split_cpu(args.cpus)
    import numpy as np
    import tensorflow as tf

    import keras
    from keras_fer.training.loop import Trainer
    from keras_fer.training.strategy import wait_for_workers

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(0)
    strategy = make_strategy(args.strategy)
    rng = np.random.default_rng(0)
    size = 16 if args.arch == "mini_xception" else 8
    x = rng.normal(size=(64, size, size, 1)).astype("float32")
    if args.arch == "mini_xception":
        x = (x * 40 + 128).astype("float32")  # pixel values, as the zoo's models take
    y = keras.ops.convert_to_numpy(keras.ops.one_hot(rng.integers(0, 3, 64), 3))
    global_batch = 16

    def epoch_data(epoch):
        order = np.random.default_rng(epoch).permutation(len(x))
        return tf.data.Dataset.from_tensor_slices((x[order], y[order])).batch(global_batch)

    with strategy.scope():
        keras.utils.set_random_seed(0)
        if args.arch == "mini_xception":
            from keras_fer.models import create_model

            model = create_model("mini_xception", num_classes=3, input_shape=(size, size, 1),
                                 width=0.25)
        else:
            inputs = keras.Input((8, 8, 1))
            h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
            h = keras.layers.Flatten()(h)
            outputs = keras.layers.Dense(3)(h)
            model = keras.Model(inputs, outputs)
        if args.sam:
            from keras_fer.optimizers import SAMModel

            model = SAMModel(model, rho=args.sam)
        opt = (keras.optimizers.SGD(0.1, momentum=0.9) if args.optimizer == "sgd"
               else keras.optimizers.Adam(1e-2))
        model.compile(optimizer=opt,
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                      metrics=["categorical_accuracy"])

    callbacks = []
    if args.slow_step:
        class Slow(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                time.sleep(args.slow_step)
        callbacks.append(Slow())
    trainer = Trainer(model, strategy, checkpoint_dir=args.checkpoint_dir,
                      checkpoint_every=args.checkpoint_every, callbacks=callbacks, verbose=0)
    history = trainer.fit(epoch_data, epochs=args.epochs)
    if trainer.chief:
        time.sleep(args.chief_delay)
        weights = [w.numpy() for w in model.weights]
        np.savez(args.out, losses=np.array([h["loss"] for h in history]),
                 epochs=np.array([h["epoch"] for h in history]),
                 **{f"w{i}": w for i, w in enumerate(weights)})
    wait_for_workers(strategy)  # as train() does: leave together, after the chief's writes
    return 0


if __name__ == "__main__":
    sys.exit(main())
