"""Batch-1 TFLite latency of test-time augmentation and ensembles (``EnsembleClassifier``).

    python benchmarks/tta_latency.py [--repeats 300] [--threads 1 2] [--width 0.5]

Rows: one ResNet18 (``width_multiplier=--width``, 48x48x1, the zoo's FER2013 backbone size;
also without the stem's max-pool, ``stem_pool=False``, as ``resnet18.fer2013`` is now),
the same with horizontal-flip TTA (image and mirror as one batch of 2), the plain model called
twice (image, then mirror: the TTA one could write outside the model) and a 2-member flip
ensemble (two such ResNet18s, each on a batch of 2). Each model is converted as the app
converts it (``keras_fer.app.tflite.to_tflite``: float32, dynamic batch, checked against
Keras) and run by ``TFLiteRunner`` on one 48x48 face per call, for each ``--threads`` value.
Weights are random: latency does not depend on them.

Times: median and 10th percentile of ``--repeats`` calls after 20 warm-up calls, in
milliseconds. The rows run interleaved (every model makes one call before any makes the
next), so that a change of load on the machine falls on all rows alike; the numbers still
depend on the machine and on what else runs on it.
"""

import argparse
import time

import numpy as np


def models(width):
    import keras

    from keras_fer.models import EnsembleClassifier, create_model, flip_tta

    def resnet(seed, **options):
        keras.utils.set_random_seed(seed)
        return create_model("resnet18", input_shape=(48, 48, 1), width_multiplier=width,
                            **options)

    single, unpooled = resnet(0), resnet(3, stem_pool=False)
    return {"resnet18": single, "resnet18 + flip": flip_tta(single),
            "2 x resnet18 + flip": EnsembleClassifier([resnet(1), resnet(2)], flip=True),
            # The zoo's resnet18.fer2013 since session 5: the stem without its max-pool.
            "resnet18 stem_pool=False": unpooled,
            "resnet18 stem_pool=False + flip": flip_tta(unpooled),
            "resnet18 stem_pool=False + resnet18, flip": EnsembleClassifier(
                [resnet(4, stem_pool=False), resnet(5)], flip=True)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--width", type=float, default=0.5)
    args = parser.parse_args(argv)

    from keras_fer.app.tflite import TFLiteRunner, to_tflite

    built = models(args.width)
    contents = {name: to_tflite(model) for name, model in built.items()}
    face = np.random.default_rng(0).uniform(0, 255, (1, 48, 48, 1)).astype(np.float32)
    mirror = np.ascontiguousarray(face[:, :, ::-1])
    calls = {}
    for t in args.threads:
        for name, content in contents.items():
            calls[(name, t)] = lambda runner=TFLiteRunner(content, num_threads=t): runner(face)
        # Flip TTA as two calls of the plain model, the alternative to one batch of 2.
        single = TFLiteRunner(contents["resnet18"], num_threads=t)
        calls[("resnet18, 2 calls (image, mirror)", t)] = \
            lambda runner=single: (runner(face), runner(mirror))
    times = {key: [] for key in calls}
    for i in range(20 + args.repeats):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            if i >= 20:
                times[key].append(1e3 * (time.perf_counter() - start))
    print("| model | params | threads | median ms | p10 ms | vs single |")
    print("|---|---|---|---|---|---|")
    for (name, threads), values in sorted(times.items(), key=lambda kv: kv[0][1]):
        base = np.median(times[("resnet18", threads)])
        params = built.get(name, built["resnet18"]).count_params()
        print(f"| {name} | {params:,} | {threads} | "
              f"{np.median(values):.3f} | {np.percentile(values, 10):.3f} | "
              f"{np.median(values) / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
