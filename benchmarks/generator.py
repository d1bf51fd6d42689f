"""Training throughput and peak memory of the patchy BPC generator vs a MultiHeadAttention one.

    python benchmarks/generator.py [--sizes 48 96] [--batch-size 64] [--repeats 5]

Three generators with the same Dense layers, decoder and parameters everywhere except the
attention (paper 000, Figure 2, grey images, default patch size, 2 levels):

* ``bpc-batch``: keras-fer's patchy generator, CPE + patchy BPC attending across the
  mini-batch (the author's configuration);
* ``bpc-tokens``: the same, attending within each image (batch-invariant);
* ``mha``: every attention layer replaced by ``keras.layers.MultiHeadAttention`` (one head,
  key_dim = the token width, with its value and output projections) over the same patch
  tokens: the CPE over the image's patches, each BPC level over its patches.

Each case runs in its own subprocess so that its peak resident memory (``ru_maxrss``) is its
own; "memory" is that peak minus the peak of a subprocess that imports everything and builds
the inputs but no model. Throughput: training images per second over ``--repeats`` compiled
train steps (after one warm-up step), median step time. This machine is shared and noisy:
compare within one run.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("bpc-batch", "bpc-tokens", "mha")


def mha_generator(input_shape, num_conditions, patch_size, level_patch_size=8, levels=2,
                  compression=1 / 3):
    """The patchy generator's layout with MultiHeadAttention in place of CPE/BPC."""
    import math

    import keras

    from keras_fer.generators import common

    groups = common.parse_condition_groups(num_conditions)
    image, conditions, metadata = common.make_inputs(input_shape, groups)
    h, w, c = input_shape
    p, q = patch_size, level_patch_size

    def self_attention(tokens, name):
        return keras.layers.MultiHeadAttention(1, tokens.shape[-1], name=name)(tokens, tokens)

    x = common.encoder_input(image, True, 1e-3)
    offset = keras.layers.Dense(math.prod(input_shape))(metadata)
    x = keras.layers.Add()([x, keras.layers.Reshape(input_shape)(offset)])
    # Patch tokens; the order of the tokens does not matter to self-attention.
    tokens = keras.layers.Reshape((h // p, p, w // p, p, c))(x)
    tokens = keras.layers.Permute((1, 3, 5, 2, 4))(tokens)
    tokens = keras.layers.Reshape(((h // p) * (w // p) * c, p * p))(tokens)
    x = self_attention(tokens, "mha_cpe")
    units = math.prod(input_shape)
    for level in range(1, levels + 1):
        if level == 1:
            y = self_attention(x, "mha_level_1")
        else:
            y = self_attention(keras.layers.Reshape((units // (q * q), q * q))(x),
                               f"mha_level_{level}")
        y = common.with_metadata(keras.layers.Flatten()(y), metadata, f"level_{level}_meta")
        if level == levels:
            x = keras.layers.Dense(sum(groups.values()), name="bottleneck")(y)
        else:
            units = common.round_up(units * compression, q * q)
            x = keras.layers.Dense(units)(y)
    z = common.with_metadata(x, metadata, "bottleneck_and_metadata")
    out = common.build_decoder(z, image, input_shape, None, False, True, 1e-3)
    return keras.Model([image, *conditions], out, name="mha_generator")


def build(variant, size, num_conditions=7):
    from keras_fer import generators

    shape = (size, size, 1)
    patch = generators.common.default_patch_size(size, size)
    if variant == "mha":
        return mha_generator(shape, num_conditions, patch)
    axis = variant.split("-")[1]
    return generators.create_generator("patchy", input_shape=shape,
                                       num_conditions=num_conditions, axis=axis)


def run_case(variant, size, batch_size, repeats):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    import keras
    import keras_fer.generators  # noqa: F401  (imports as in a real case)

    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch_size, size, size, 1)).astype("float32"))
    c = tf.constant(np.eye(7, dtype="float32")[np.arange(batch_size) % 7])
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if variant == "none":
        return {"rss_kb": base_rss}
    model = build(variant, size)
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def step(x, c):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model([x, c], training=True) - x))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    step(x, c).numpy()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step(x, c).numpy()
        times.append(time.perf_counter() - t0)
    attention = sum(layer.count_params() for layer in model.layers
                    if "attention" in type(layer).__name__.lower())
    return {"images_per_second": batch_size / statistics.median(times),
            "step_ms": 1e3 * statistics.median(times), "params": model.count_params(),
            "attention_params": attention,
            "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 96])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        variant, size = args.case
        print(json.dumps(run_case(variant, int(size), args.batch_size, args.repeats)))
        return

    def sub(variant, size):
        cmd = [sys.executable, __file__, "--case", variant, str(size), "--batch-size",
               str(args.batch_size), "--repeats", str(args.repeats)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    rows = []
    for size in args.sizes:
        base = sub("none", size)["rss_kb"]
        for variant in args.variants:
            r = sub(variant, size)
            r.update(variant=variant, size=size, memory_mb=(r["rss_kb"] - base) / 1024)
            rows.append(r)
            print(f"{size}x{size} {variant:10s} {r['images_per_second']:8.1f} img/s  "
                  f"step {r['step_ms']:8.1f} ms  peak +{r['memory_mb']:7.1f} MB  "
                  f"params {r['params']:,} (attention {r['attention_params']:,})", flush=True)
    print()
    print(f"| size | encoder | train img/s (batch {args.batch_size}) | peak memory (MB) | "
          "params | attention params |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']}x{r['size']} | {r['variant']} | {r['images_per_second']:.1f} | "
              f"{r['memory_mb']:.0f} | {r['params']:,} | {r['attention_params']:,} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
