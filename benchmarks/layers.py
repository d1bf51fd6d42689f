"""Forward+backward time and peak memory of keras-fer's layers next to their plain baselines.

    python benchmarks/layers.py [--repeats 10] [--quick]

Each case runs in its own subprocess so that its peak resident memory (ru_maxrss) is its own;
the "memory" column is that peak minus the peak of a subprocess that builds the same input and
runs no layer. Times are medians of --repeats compiled (tf.function) steps after one warm-up.
Compare within one run (the ratio columns): this machine is noisy.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CASES = {
    # name: (group, layer expression, input shape)
    "conv1x1@56": ("spatial 56x56x64", "keras.layers.Conv2D(64, 1)", (32, 56, 56, 64)),
    "hfc@56": ("spatial 56x56x64", "L.HighFrequencyAttention()", (32, 56, 56, 64)),
    "bam@56": ("spatial 56x56x64", "L.BAM()", (32, 56, 56, 64)),
    "conv1x1@112": ("spatial 112x112x64", "keras.layers.Conv2D(64, 1)", (32, 112, 112, 64)),
    "hfc@112": ("spatial 112x112x64", "L.HighFrequencyAttention()", (32, 112, 112, 64)),
    "bam@112": ("spatial 112x112x64", "L.BAM()", (32, 112, 112, 64)),
    "mha@196x64": ("tokens 196x64", "keras.layers.MultiHeadAttention(num_heads=1, key_dim=64)",
                   (32, 196, 64)),
    "cpe@196x64": ("tokens 196x64", "L.CosineAttention(axis='tokens')", (32, 196, 64)),
    "bpc@196x64": ("tokens 196x64", "L.BatchAttention(axis='tokens')", (32, 196, 64)),
    "mha@576x192": ("tokens 576x192", "keras.layers.MultiHeadAttention(num_heads=1, key_dim=192)",
                    (32, 576, 192)),
    "cpe@576x192": ("tokens 576x192", "L.CosineAttention(axis='tokens')", (32, 576, 192)),
    "bpc@576x192": ("tokens 576x192", "L.BatchAttention(axis='tokens')", (32, 576, 192)),
}
BASELINES = {"spatial": "conv1x1", "tokens": "mha"}


def run_case(name, repeats):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    import keras
    import keras_fer.layers as L  # noqa: F401  (used by the layer expressions)

    group, expr, shape = CASES[name] if name != "none" else (None, None, (32, 8))
    x = tf.constant(np.random.default_rng(0).normal(size=shape).astype("float32"))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if expr is None:
        return {"rss_kb": base_rss}
    layer = eval(expr, {"keras": keras, "L": L})
    is_mha = isinstance(layer, keras.layers.MultiHeadAttention)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, x) if is_mha else layer(x)
            loss = tf.reduce_mean(tf.square(y))
        return tape.gradient(loss, [x] + layer.trainable_variables)

    step(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        [g.numpy() for g in step(x) if g is not None]
        times.append(time.perf_counter() - t0)
    return {"ms": 1e3 * statistics.median(times), "params": layer.count_params(),
            "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="only the 56x56 and 196-token cases")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.repeats)))
        return

    def sub(name):
        out = subprocess.run([sys.executable, __file__, "--case", name, "--repeats",
                              str(args.repeats)], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    idle_rss = sub("none")["rss_kb"]
    names = [n for n in CASES if not args.quick or ("@56" in n or "196" in n)]
    results = {n: sub(n) for n in names}
    header = f"{'group':20s} {'layer':12s} {'params':>9s} {'fwd+bwd ms':>11s} {'x base':>7s} " \
             f"{'peak MB':>8s} {'x base':>7s}"
    print(header)
    print("-" * len(header))
    for name in names:
        group, _, _ = CASES[name]
        base = f"{BASELINES[group.split()[0]]}@{name.split('@')[1]}"
        r, b = results[name], results[base]
        mem, bmem = (r["rss_kb"] - idle_rss) / 1024, (b["rss_kb"] - idle_rss) / 1024
        print(f"{group:20s} {name.split('@')[0]:12s} {r['params']:9,d} {r['ms']:11.1f} "
              f"{r['ms'] / b['ms']:7.2f} {mem:8.1f} {mem / max(bmem, 1e-9):7.2f}")


if __name__ == "__main__":
    main()
