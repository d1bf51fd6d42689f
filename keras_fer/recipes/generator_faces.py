"""Paper 000's emotion generator on face data (CK+48, JAFFE or any image folder), Figure 5.

    keras-fer train generator_faces --dataset ckplus48 --out runs/generator_ckplus48
    keras-fer train generator_faces --dataset jaffe --image-size 64 --out runs/generator_jaffe
    keras-fer train generator_faces --dataset image_folder --dataset-root DIR ...
    keras-fer train generator_faces --smoke

Holds out the subjects of one subject-independent fold (``--folds``/``--fold``; random folds
for datasets without subject ids), trains the patchy generator (Figure 2) on the remaining
faces to reconstruct each face under its own emotion one-hot, and writes the emotion mutation
table of held-out test faces, which the generator never saw: ``mutation_table.png`` (top row
the inputs, then one row per emotion), ``summary.json``, ``generator/`` (resumable checkpoints,
``generator.keras``) and ``tensorboard/``.

``label_following`` in the summary: a pixel logistic regression fitted on the training faces
classifies every rendition; the fraction classified as the emotion asked for (chance
1/classes). Read it next to ``judge_accuracy_on_real_test``, the same judge on the real
held-out faces: the judge is weak, so the two are only comparable with each other.
"""

import argparse
import os
import tempfile
import time

import numpy as np

from keras_fer.recipes import _common

DATASET_FOLDERS = {"ckplus48": "ckplus48", "jaffe": "jaffe"}


def add_generator_args(parser, epochs=60):
    """Generator options shared with ``synthetic_augmentation.py``."""
    parser.add_argument("--dataset", default="ckplus48",
                        help="ckplus48, jaffe, image_folder (or any registered reader)")
    parser.add_argument("--dataset-root", default=None,
                        help="the dataset's folder (default: <data-root>/<dataset>)")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    parser.add_argument("--kind", default="patchy", choices=("simple", "patchy"))
    parser.add_argument("--axis", default="batch", choices=("batch", "tokens"))
    parser.add_argument("--patch-size", type=int, default=None)
    parser.add_argument("--levels", type=int, default=2)
    parser.add_argument("--no-cpe", action="store_true", help="patchy: leave out the CPE layer")
    parser.add_argument("--bottleneck", type=int, default=None)
    parser.add_argument("--generator-epochs", type=int, default=epochs)
    parser.add_argument("--generator-batch-size", type=int, default=64)
    parser.add_argument("--generator-lr", type=float, default=1e-3)
    parser.add_argument("--folds", type=int, default=5)
    return parser


def check_data_root(args):
    """Resolves ``args.data_root`` (``--data-root`` or ``$KERAS_FER_DATA``) when the data is
    read from it, failing before TensorFlow loads when neither is given; returns ``args``."""
    if not args.smoke and not args.dataset_root:
        args.data_root = _common.require_data_root(args.data_root)
    return args


def dataset_root(args, smoke_dir=None):
    if smoke_dir is not None:
        return _common.write_smoke_ckplus48(smoke_dir, seed=args.seed, subjects=6)
    if args.dataset_root:
        return args.dataset_root
    return os.path.join(args.data_root, DATASET_FOLDERS.get(args.dataset, args.dataset))


def load_faces(name, root):
    """The dataset restricted to the classes it has images of (CK+48 has no neutral, JAFFE
    no contempt): those are the emotions the generator can be conditioned on."""
    from keras_fer import datasets

    ds = datasets.load(name, root)
    present = [c for c, n in ds.class_counts().items() if n > 0]
    return ds.select_classes(present) if len(present) < len(ds.classes) else ds


def folds_of(ds, k, seed):
    from keras_fer.datasets import splits

    if all(r.subject is not None for r in ds.records):
        return splits.subject_kfold(ds, k, seed=seed), "subject_kfold"
    print("WARNING: no subject ids: random folds, so test faces may share people with training")
    return splits.random_kfold(ds, k, seed=seed), "random_kfold"


def build_face_generator(args, num_conditions):
    from keras_fer import generators

    size = (args.image_size, args.image_size, args.channels)
    options = dict(bottleneck=args.bottleneck, axis=args.axis)
    if args.kind == "patchy":
        options.update(patch_size=args.patch_size, levels=args.levels, use_cpe=not args.no_cpe)
    return generators.create_generator(args.kind, input_shape=size,
                                       num_conditions=num_conditions, **options)


def train_face_generator(args, x, y, names, out_dir, shown=None, verbose=2):
    """Trains (or resumes, or loads when finished) a face generator under ``out_dir``."""
    import keras

    from keras_fer import generators

    final = os.path.join(out_dir, "generator.keras")
    if os.path.exists(final):
        return keras.saving.load_model(final), None
    model = build_face_generator(args, len(names))
    callbacks = []
    if shown is not None:
        callbacks.append(generators.MutationTableCallback(
            os.path.join(out_dir, "tensorboard"), shown, names=names,
            every=max(1, args.generator_epochs // 10)))
    history = generators.train_generator(
        model, x, y, epochs=args.generator_epochs, batch_size=args.generator_batch_size,
        learning_rate=args.generator_lr, out_dir=out_dir, callbacks=callbacks, seed=args.seed,
        verbose=verbose)
    return model, history


def pixel_judge(x, y, seed=0):
    from sklearn.linear_model import LogisticRegression

    judge = LogisticRegression(max_iter=500, C=0.1)
    judge.fit(x.reshape(len(x), -1) / 255.0, y)
    return judge


def render_all(model, x, k, group_size=8):
    """(k, n, ...) renditions of every image under every condition, generated in groups of
    ``group_size`` images with all their conditions in one batch (the author's layout)."""
    from keras_fer import generators

    out = []
    for start in range(0, len(x), group_size):
        part = x[start:start + group_size]
        batch = np.tile(part, (k,) + (1,) * (part.ndim - 1))
        out.append(generators.generate(model, batch, np.repeat(np.arange(k), len(part)))
                   .reshape((k, len(part)) + part.shape[1:]))
    return np.concatenate(out, axis=1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_data_args(parser, "runs/generator_faces")
    add_generator_args(parser)
    parser.add_argument("--fold", type=int, default=0, help="the held-out fold")
    parser.add_argument("--num-images", type=int, default=8, help="table columns")
    args = parser.parse_args(argv)
    if args.smoke:
        args.generator_epochs, args.generator_batch_size, args.dataset = 1, 16, "ckplus48"
        args.image_size, args.num_images = 24, 4
    return check_data_root(args)


def main(argv=None):
    args = parse_args(argv)
    from keras_fer import generators

    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.TemporaryDirectory() if args.smoke else None
    ds = load_faces(args.dataset, dataset_root(args, tmp.name if tmp else None))
    folds, protocol = folds_of(ds, args.folds, args.seed)
    train_idx, test_idx = folds[args.fold]
    size = (args.image_size, args.image_size)
    x, y = generators.dataset_arrays(ds, size, channels=args.channels)
    names = list(ds.classes)
    test_subjects = sorted({ds.records[i].subject for i in test_idx} - {None})
    print(f"{ds.name}: train {len(train_idx)}, test {len(test_idx)} faces ({protocol}, "
          f"fold {args.fold} of {args.folds}; {len(test_subjects)} held-out subjects), "
          f"classes {names}")
    rng = np.random.default_rng(args.seed)
    shown = x[test_idx][rng.permutation(len(test_idx))[:args.num_images]]
    model, history = train_face_generator(args, x[train_idx], y[train_idx], names,
                                          os.path.join(args.out, "generator"), shown)
    table = os.path.join(args.out, "mutation_table.png")
    generators.mutation_table(model, shown, names=names, path=table)

    judge = pixel_judge(x[train_idx], y[train_idx], seed=args.seed)
    k = len(names)
    renders = render_all(model, x[test_idx], k)
    pred = judge.predict(renders.reshape(k * len(test_idx), -1) / 255.0).reshape(k, -1)
    asked = np.arange(k)[:, None]
    own = y[test_idx][None]
    summary = {
        "dataset": ds.name, "protocol": protocol, "fold": args.fold, "folds": args.folds,
        "train_faces": int(len(train_idx)), "test_faces": int(len(test_idx)),
        "test_subjects": test_subjects, "classes": names, "kind": args.kind,
        "axis": args.axis, "params": model.count_params(),
        "generator_epochs": args.generator_epochs,
        "final_loss": history[-1].get("loss") if history else None,
        "label_following": float(np.mean(pred == asked)),
        "label_following_other_labels": float(np.mean((pred == asked)[asked != own])),
        "judge_accuracy_on_real_test": float(np.mean(
            judge.predict(x[test_idx].reshape(len(test_idx), -1) / 255.0) == y[test_idx])),
        "reconstruction_mse_own_label": float(np.mean(
            (renders[y[test_idx], np.arange(len(test_idx))].astype(np.float64)
             - x[test_idx]) ** 2) / 255.0**2),
        "mutation_table": table, "seconds": time.time() - t0,
    }
    _common.write_json(os.path.join(args.out, "summary.json"), summary)
    print(summary)
    if tmp is not None:
        tmp.cleanup()
    return summary


if __name__ == "__main__":
    main()
