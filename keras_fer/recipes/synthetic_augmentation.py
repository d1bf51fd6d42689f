"""Paper 000's Table 1: does training on generated faces help a classifier?

    keras-fer train synthetic_augmentation --dataset ckplus48 --out runs/synthetic_aug \\
        [--arch mini_xception | inception_v3 --input-size 75] [--folds 5] [--smoke]

For each of ``--folds`` subject-independent folds (no person on both sides):

1. train the emotion generator on the training fold only (``generator_faces.py``'s model);
2. synthetic set: every training face re-rendered under every emotion (n x classes images,
   the paper's 838 -> 6704), labelled with the emotion asked for;
3. train the same classifier (``--arch``, through ``keras_fer.training.train``) on the
   *original*, the *synthetic* and the *combined* (original + synthetic) training sets, then
   re-estimate its BatchNorm statistics over its training set (see
   ``recalibrate_batchnorm``: short runs leave the moving averages near their initial values);
4. test each on the original test fold.

Prints and writes (``results.md``, ``results.json``) mean +- std accuracy over folds
(std with ddof=1) and the one-sided Wilcoxon signed-rank p-values (``scipy.stats.wilcoxon``,
``alternative="greater"``) for synthetic > original and combined > original. With 5 folds the
exact test's smallest possible p-value is 1/32 = 0.031, reached only when all five folds
improve: that is the paper's p = 0.031.

Everything resumes: a finished run leaves ``result.json`` (skipped next time), an interrupted
one resumes from its checkpoints (generator and classifier both), so re-run the same command.
"""

import argparse
import os
import tempfile
import time

import numpy as np

from keras_fer.recipes import _common, generator_faces

CONDITIONS = ("original", "synthetic", "combined")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_data_args(parser, "runs/synthetic_augmentation")
    generator_faces.add_generator_args(parser, epochs=40)
    parser.add_argument("--arch", default="mini_xception",
                        help="classifier (keras_fer.models); the paper used inception_v3")
    parser.add_argument("--input-size", type=int, default=None,
                        help="classifier input side (default: the architecture's own, at "
                             "least 75 for inception_v3)")
    parser.add_argument("--input-channels", type=int, default=None, choices=(1, 3))
    parser.add_argument("--epochs", type=int, default=10, help="classifier epochs")
    parser.add_argument("--equal-budget", action="store_true",
                        help="train every classifier on about as many images as --epochs "
                             "epochs of the original set (synthetic and combined sets are "
                             "k and k + 1 times larger, so they get proportionally fewer "
                             "epochs); default: the same epochs for all (the paper's)")
    parser.add_argument("--batch-size", type=int, default=64, help="classifier batch size")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--augment", default=None, help="classifier augmentation (e.g. basic)")
    parser.add_argument("--only-folds", type=int, nargs="*", default=None,
                        help="run only these folds (the table uses every finished fold)")
    parser.add_argument("--report", action="store_true",
                        help="also write keras-fer's full evaluation report per run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.dataset, args.folds, args.image_size = "ckplus48", 2, 24
        args.generator_epochs, args.generator_batch_size = 1, 16
        args.epochs, args.batch_size = 1, 16
        args.input_size = args.input_size or 32
    return generator_faces.check_data_root(args)


def synthetic_dataset(model, ds, x, train_idx, names):
    """Every training face under every emotion, as an inline-image FERDataset."""
    from keras_fer.datasets.records import FERDataset, Record

    k = len(names)
    renders = generator_faces.render_all(model, x[train_idx], k)  # (k, n, H, W, C) uint8
    records = []
    for j in range(k):
        for i, idx in enumerate(train_idx):
            src = ds.records[idx]
            image = renders[j, i]
            records.append(Record(source=f"synthetic:{names[j]}<-{src.source}", label=j,
                                  image=image[..., 0] if image.shape[-1] == 1 else image,
                                  subject=src.subject))
    return FERDataset(f"{ds.name}/synthetic", records, ds.classes), renders


def combined_dataset(original, synthetic):
    from keras_fer.datasets.records import FERDataset

    return FERDataset(f"{original.name}+synthetic", original.records + synthetic.records,
                      original.classes)


def _batchnorm_layers(layer):
    import keras

    found = [layer] if isinstance(layer, keras.layers.BatchNormalization) else []
    for sub in getattr(layer, "layers", []):
        found += _batchnorm_layers(sub)
    return found


def recalibrate_batchnorm(model, train_data, input_shape, batch_size=64):
    """Re-estimates every BatchNorm's moving mean and variance as the plain average of its
    batch statistics over one pass of the training data ("precise BN").

    Why: these runs are short (about 140 steps on CK+48), and Keras' default momentum of 0.99
    leaves 0.99^140 = 24% of the initial statistics (mean 0, variance 1) in the moving
    averages. Measured on fold 0: mini-Xception scored 1.00 on its own training images in
    training mode but 0.06 in inference mode (0.04 on the test fold, a single predicted class);
    after this pass, 1.00 and 0.66. Only BN statistics change, no weights, for every
    condition alike.
    """
    from keras_fer.datasets.pipeline import make_dataset

    layers = _batchnorm_layers(model)
    if not layers:
        return 0
    saved = [layer.momentum for layer in layers]
    ds = make_dataset(train_data, image_size=input_shape[:2], channels=input_shape[2],
                      batch_size=batch_size, shuffle=False, label_mode="int",
                      normalization={"scale": 1.0})
    try:
        for step, (x, _) in enumerate(ds, start=1):
            for layer in layers:  # cumulative mean: weight 1/step on the newest batch
                layer.momentum = 1.0 - 1.0 / step
            model(x, training=True)
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
    return len(layers)


def accuracy(model, test, input_shape):
    from keras_fer.datasets.pipeline import make_dataset

    ds = make_dataset(test, image_size=input_shape[:2], channels=input_shape[2], batch_size=64,
                      shuffle=False, label_mode="int", normalization={"scale": 1.0})
    correct = total = 0
    for x, y in ds:
        pred = np.argmax(np.asarray(model(x, training=False)), axis=-1)
        correct += int(np.sum(pred == np.asarray(y)))
        total += len(pred)
    return correct / total


def run_classifier(args, condition, train_data, test_data, out_dir, fold, n_original):
    """Trains one classifier (resumable) and returns its test-fold result."""
    from keras_fer.models import get_architecture
    from keras_fer.training import TrainConfig, train

    result_path = os.path.join(out_dir, "result.json")
    if os.path.exists(result_path):
        return _common.read_json(result_path)
    spec = get_architecture(args.arch)
    default = spec.default_input_shape
    side = args.input_size or (max(75, default[0]) if args.arch == "inception_v3"
                               else default[0])
    channels = args.input_channels or default[2]
    shape = (side, side, channels)
    epochs = args.epochs
    if args.equal_budget:
        epochs = max(1, round(args.epochs * n_original / len(train_data)))
    config = TrainConfig(arch=args.arch, input_shape=shape, epochs=epochs,
                         batch_size=args.batch_size, learning_rate=args.learning_rate,
                         augment=args.augment, out_dir=out_dir, tensorboard=False,
                         seed=args.seed + fold, verbose=2)
    # No validation set: the only held-out data is the test fold, and it must not steer
    # training. The test fold is scored once, after the last epoch.
    t0 = time.time()
    result = train(config, train_data=train_data, val_data=None)
    recalibrated = recalibrate_batchnorm(result.model, train_data, shape, args.batch_size)
    acc = accuracy(result.model, test_data, shape)
    if args.report:
        from keras_fer.datasets.pipeline import make_dataset
        from keras_fer.evaluation import evaluate_model

        evaluate_model(result.model, make_dataset(test_data, image_size=shape[:2],
                                                  channels=shape[2], shuffle=False,
                                                  label_mode="onehot",
                                                  normalization={"scale": 1.0}),
                       train_data.classes, os.path.join(out_dir, "evaluation"))
    out = {"fold": fold, "condition": condition, "accuracy": acc, "train_images": len(train_data),
           "test_images": len(test_data), "arch": args.arch, "input_shape": list(shape),
           "epochs": epochs, "images_seen": epochs * len(train_data),
           "precise_bn_layers": recalibrated,
           "seconds": time.time() - t0}
    _common.write_json(result_path, out)
    return out


def run_fold(args, ds, x, y, names, fold, train_idx, test_idx):
    from keras_fer import generators

    fold_dir = os.path.join(args.out, f"fold{fold}")
    train_ds = ds.subset(train_idx, f"{ds.name}/fold{fold}/train")
    test_ds = ds.subset(test_idx, f"{ds.name}/fold{fold}/test")
    t0 = time.time()
    model, _ = generator_faces.train_face_generator(
        args, x[train_idx], y[train_idx], names, os.path.join(fold_dir, "generator"),
        verbose=0)
    gen_seconds = time.time() - t0
    synthetic, renders = synthetic_dataset(model, ds, x, train_idx, names)
    # Training faces under every emotion (the paper's Figure 7) and held-out test faces;
    # random picks, because neighbouring CK+48 records are frames of one sequence.
    rng = np.random.default_rng(args.seed + fold)
    for part, idx in (("train", train_idx), ("test", test_idx)):
        generators.mutation_table(model, x[rng.permutation(idx)[:8]], names=names,
                                  path=os.path.join(fold_dir, f"mutation_{part}.png"))
    data = {"original": train_ds, "synthetic": synthetic,
            "combined": combined_dataset(train_ds, synthetic)}
    results = {}
    for condition in CONDITIONS:
        results[condition] = run_classifier(args, condition, data[condition], test_ds,
                                            os.path.join(fold_dir, condition), fold,
                                            len(train_ds))
        print(f"fold {fold} {condition:9s}: accuracy {results[condition]['accuracy']:.4f} "
              f"({results[condition]['train_images']} training images)", flush=True)
    results["generator_seconds"] = gen_seconds
    return results


def summarize(per_fold):
    """Mean, std and the one-sided Wilcoxon tests over the finished folds."""
    from scipy.stats import wilcoxon

    acc = {c: np.array([f[c]["accuracy"] for f in per_fold]) for c in CONDITIONS}
    table = {c: {"mean": float(acc[c].mean()),
                 "std": float(acc[c].std(ddof=1)) if len(acc[c]) > 1 else 0.0,
                 "per_fold": acc[c].tolist(),
                 "epochs": [f[c]["epochs"] for f in per_fold],
                 "train_images": [f[c]["train_images"] for f in per_fold]}
             for c in CONDITIONS}
    tests = {}
    for c in ("synthetic", "combined"):
        diff = acc[c] - acc["original"]
        if len(diff) < 2 or np.all(diff == 0):
            tests[f"{c}>original"] = {"p_value": None, "note": "too few folds or no difference"}
            continue
        res = wilcoxon(acc[c], acc["original"], alternative="greater")
        tests[f"{c}>original"] = {"statistic": float(res.statistic),
                                  "p_value": float(res.pvalue),
                                  "folds_better": int(np.sum(diff > 0)),
                                  "folds_worse": int(np.sum(diff < 0))}
    return table, tests


def markdown(table, tests, args, n_folds):
    lines = [f"Accuracy of `{args.arch}` on the original test folds ({n_folds} subject-"
             f"independent folds of {args.dataset}; mean +- std over folds, std ddof=1)", "",
             "| | " + " | ".join(CONDITIONS) + " |", "|---|" + "---|" * len(CONDITIONS),
             "| accuracy | " + " | ".join(f"{table[c]['mean']:.4f} +- {table[c]['std']:.4f}"
                                         for c in CONDITIONS) + " |"]
    lines.append("| training images x epochs (fold 0) | " + " | ".join(
        f"{table[c]['train_images'][0]} x {table[c]['epochs'][0]}" for c in CONDITIONS) + " |")
    for i in range(n_folds):
        lines.append(f"| fold {i} | " + " | ".join(f"{table[c]['per_fold'][i]:.4f}"
                                                   for c in CONDITIONS) + " |")
    lines += ["", "One-sided Wilcoxon signed-rank tests (scipy.stats.wilcoxon, "
              "alternative='greater'):", ""]
    for name, t in tests.items():
        if t.get("p_value") is None:
            lines.append(f"- {name}: not testable ({t['note']})")
        else:
            lines.append(f"- {name}: p = {t['p_value']:.4f} (W = {t['statistic']:g}; "
                         f"{t['folds_better']} folds better, {t['folds_worse']} worse)")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    from keras_fer import generators

    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.TemporaryDirectory() if args.smoke else None
    ds = generator_faces.load_faces(args.dataset,
                                    generator_faces.dataset_root(args, tmp.name if tmp else None))
    folds, protocol = generator_faces.folds_of(ds, args.folds, args.seed)
    x, y = generators.dataset_arrays(ds, (args.image_size, args.image_size),
                                     channels=args.channels)
    names = list(ds.classes)
    print(f"{ds.name}: {len(ds)} faces, classes {names}, {args.folds} folds ({protocol})")
    _common.write_json(os.path.join(args.out, "args.json"), vars(args))
    wanted = range(args.folds) if args.only_folds is None else args.only_folds
    per_fold = {}
    for fold in wanted:
        train_idx, test_idx = folds[fold]
        per_fold[fold] = run_fold(args, ds, x, y, names, fold, train_idx, test_idx)
    # The table covers every fold finished so far (also those of earlier --only-folds runs).
    finished = []
    for fold in range(args.folds):
        paths = [os.path.join(args.out, f"fold{fold}", c, "result.json") for c in CONDITIONS]
        if all(os.path.exists(p) for p in paths):
            finished.append({c: _common.read_json(p) for c, p in zip(CONDITIONS, paths)})
    table, tests = summarize(finished)
    text = markdown(table, tests, args, len(finished))
    print(text)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    _common.write_json(os.path.join(args.out, "results.json"),
                       {"table": table, "wilcoxon": tests, "folds_finished": len(finished),
                        "protocol": protocol, "args": vars(args),
                        "seconds_this_run": time.time() - t0})
    if tmp is not None:
        tmp.cleanup()
    return table, tests


if __name__ == "__main__":
    main()
