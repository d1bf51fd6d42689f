"""Trains, evaluates and publishes the zoo's checkpoints (``keras_fer.zoo``): the command in
every model card.

    keras-fer train zoo_checkpoints --models mini_xception.ckplus48 [--data-root DIR]
        [--out runs/zoo] [--publish DIR [--overwrite] | --bundle] [--weights-dtype D]
        [--smoke] [--epochs N]

Entries (``ENTRIES``), each a fixed training setting so that its numbers can be reproduced:

* ``mini_xception.fer2013``: FER2013 Training -> PublicTest (PrivateTest is held out of the
  shared copy), mini-Xception at width 2 with a dense head, no L2, dropout 0.3, label
  smoothing 0.1, AdamW-free Adam with a cosine schedule. The number is the LAST epoch's
  PublicTest accuracy: no epoch is chosen on the test rows.
* ``mini_xception.ferplus``: the FER2013 model's backbone (a new 8-class head) fine-tuned on
  FERPlus vote distributions (cross-entropy against the ten annotators' shares, FERPlus's
  "crossentropy" scheme). Reported on PublicTest under both FERPlus test protocols: majority
  (images whose top emotion has more than half of the votes, after outlier removal) and the
  vote distribution (plurality accuracy over every kept image, and the mean KL divergence from
  the votes to the prediction).
* ``mini_xception.ckplus48`` / ``mini_xception.jaffe`` / ``resnet18_hfc.ckplus48``: 5-fold
  subject-independent cross-validation (no person on both sides; last-epoch accuracy, mean
  and std over folds, confusion matrix summed over folds), then one model trained on every
  image with the same settings: that is the published checkpoint.

``--publish DIR`` writes each entry with ``keras_fer.zoo.publish`` (``.keras``, a TF Serving
SavedModel, the model card, the registry entry); ``--bundle`` writes it into the package (the
small models that ship with keras-fer), replacing the packaged entry of that name: that is
what it is for. Every entry's name ships with the package, so ``--publish DIR`` needs
``--overwrite`` to publish a name that already exists (the package's included: a user entry
shadows the packaged one for every ``zoo.load``); without it the recipe stops before training.
``--bundle`` stores the ``.keras`` file's weights as float16 (half the bytes, loaded as
float32, checked against the float32 model: ``keras_fer.zoo.compact``), ``--publish DIR`` as
float32; ``--weights-dtype`` chooses.
Runs resume after a kill, as every recipe does.
``--smoke``: tiny synthetic data in the real formats, 1 epoch: checks the plumbing only.
"""

import copy
import json
import os
import shlex
import sys

import numpy as np

from keras_fer.recipes import _common as C
from keras_fer.training.warm_start import HISTORY_FILE
from keras_fer.zoo.cli import add_weights_dtype_option

RECIPE = "zoo_checkpoints"
LICENCE = {
    "fer2013": "Trained on FER2013 (ICML 2013 challenge; no licence stated by its authors): "
               "research use; check the data's terms before commercial use.",
    "ferplus": "Trained on FER2013 images with FERPlus labels (labels MIT, Microsoft; images "
               "FER2013, no stated licence): research use.",
    "ckplus48": "Trained on CK+ (Lucey et al. 2010), released for non-commercial research "
                "only: the weights inherit that restriction.",
    "jaffe": "Trained on JAFFE (Lyons et al. 1998), released for non-commercial research only: "
             "the weights inherit that restriction.",
}
LIMITS = ("Posed or web-collected faces of a few thousand people; expression labels are "
          "categorical and culture-dependent. Not for decisions about people (hiring, "
          "policing, health): a face's expression is not a person's feeling.")

_SMALL_SET = dict(batch_size=16, schedule="cosine", learning_rate=2e-3, bn_momentum=0.9,
                  label_smoothing=0.1)
ENTRIES = {
    "mini_xception.fer2013": dict(
        dataset="fer2013", protocol="official", arch="mini_xception",
        arch_options={"width": 2, "head": "dense", "l2_regularization": 0, "dropout": 0.3},
        train=dict(epochs=11, batch_size=64, schedule="cosine", learning_rate=2e-3,
                   label_smoothing=0.1),
        description="Compact FER2013 classifier (48x48 grey), a 2x-wide mini-Xception."),
    "mini_xception.ferplus": dict(
        dataset="ferplus", protocol="official", arch="mini_xception", init="mini_xception.fer2013",
        arch_options={"width": 2, "head": "dense", "l2_regularization": 0, "dropout": 0.3},
        train=dict(epochs=2, batch_size=64, schedule="cosine", learning_rate=1e-3,
                   label_mode="distribution"),
        description="FERPlus 8-class classifier (48x48 grey) fine-tuned from "
                    "mini_xception.fer2013 on the annotators' vote distributions of the "
                    "images FERPlus's majority scheme keeps."),
    "mini_xception.ckplus48": dict(
        dataset="ckplus48", protocol="subject", arch="mini_xception",
        arch_options={"width": 1, "head": "dense", "l2_regularization": 0, "dropout": 0.3},
        train=dict(epochs=40, **_SMALL_SET),
        description="CK+48 7-class classifier (contempt, no neutral), 48x48 grey."),
    "mini_xception.jaffe": dict(
        dataset="jaffe", protocol="subject", arch="mini_xception",
        arch_options={"width": 1, "head": "dense", "l2_regularization": 0, "dropout": 0.3},
        train=dict(epochs=80, **dict(_SMALL_SET, batch_size=8)),
        description="JAFFE 7-class classifier (neutral, no contempt), 48x48 grey."),
    "resnet18_hfc.ckplus48": dict(
        dataset="ckplus48", protocol="subject", arch="resnet18",
        # A quarter of ResNet18's width (16-128 channels, 0.7M weights, ~3 MB) so that the
        # model ships inside the package; the full width (11M, 45 MB) would need a release
        # asset, and trains 8x slower on a CPU.
        arch_options={"attention": "hfc", "attention_cutoff": 0.25,
                      "attention_options": {"relative_cutoff": True}, "width_multiplier": 0.25},
        train=dict(epochs=20, **_SMALL_SET),
        description="ResNet18 at a quarter width with high-frequency spatial attention "
                    "between its stages (seed 002), CK+48 at 48x48 grey."),
}
# The FER2013 backbone and its transfers. Half of ResNet18's width (32-256 channels, 2.8M
# weights, 11 MB) trains at ~500 images/s in bfloat16 on this project's 2-core AVX-512 CPU;
# it is trained over several sessions by warm restarts (``--init``), each run recorded in the
# entry's training history. Epochs and settings are chosen on 10 % of Training (holdout);
# PublicTest is measured once, with ``--final-test``, when a model is final.
_BACKBONE = {"width_multiplier": 0.5, "dropout": 0.2}
_TRANSFER = dict(batch_size=32, optimizer="adamw", learning_rate=5e-4, weight_decay=0.05,
                 schedule="cosine", label_smoothing=0.1, bn_momentum=0.9)
ENTRIES.update({
    "resnet18.fer2013": dict(
        dataset="fer2013", protocol="holdout", arch="resnet18", arch_options=_BACKBONE,
        train=dict(epochs=40, batch_size=128, optimizer="adamw", learning_rate=2e-3,
                   weight_decay=0.05, schedule="cosine", label_smoothing=0.1,
                   mixed_precision="mixed_bfloat16"),
        description="FER2013 backbone (48x48 grey): ResNet18 at half width, trained over "
                    "several warm-restarted runs."),
    "resnet18.ferplus": dict(
        dataset="ferplus", protocol="holdout", arch="resnet18", arch_options=_BACKBONE,
        init="zoo:resnet18.fer2013",
        train=dict(epochs=12, batch_size=128, optimizer="adamw", learning_rate=1e-3,
                   weight_decay=0.05, schedule="cosine", label_mode="distribution",
                   mixed_precision="mixed_bfloat16"),
        description="FERPlus 8-class classifier (48x48 grey) fine-tuned from resnet18.fer2013 "
                    "on the annotators' vote distributions."),
    "resnet18.ckplus48": dict(
        dataset="ckplus48", protocol="subject", folds=10, arch="resnet18",
        arch_options=_BACKBONE, init="zoo:resnet18.fer2013", train=dict(epochs=15, **_TRANSFER),
        description="CK+48 7-class classifier fine-tuned from resnet18.fer2013."),
    "resnet18.jaffe": dict(
        dataset="jaffe", protocol="subject", folds="leave_one_subject_out", arch="resnet18",
        # JAFFE's 256x256 portraits show hair and shoulders; the backbone and the app see
        # tight face crops: the faces are cropped as the app crops them.
        face_crop=True, arch_options=_BACKBONE, init="zoo:resnet18.ferplus",
        train=dict(epochs=30, **dict(_TRANSFER, batch_size=16)),
        description="JAFFE 7-class classifier fine-tuned from a FERPlus fine-tune of the "
                    "FER2013 backbone (its runs are in the history) on face crops (the app's "
                    "Haar detector and square box): feed it crops made the same way."),
})
INPUT_SHAPE = (48, 48, 1)
SMOKE_DATA = {"ckplus48": dict(subjects=4, frames=2),
              "jaffe": dict(posers=("KA", "KL", "KM", "KR"), takes=1, size=48),
              "fer2013": dict(per_class_train=10, per_class_test=2),
              "ferplus": dict(per_class_train=10, per_class_test=2)}
FOLDS = 5


def parse_args(argv=None):
    p = C.make_parser(RECIPE, __doc__)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--publish", default=None, metavar="DIR",
                       help="publish each trained entry into DIR (keras_fer.zoo.publish)")
    where.add_argument("--bundle", action="store_true",
                       help="publish into the package itself (the models keras-fer ships), "
                            "replacing the packaged entry of the same name")
    p.add_argument("--overwrite", action="store_true",
                   help="with --publish: replace an entry of the same name (the packaged "
                        "ones included, which the new entry then shadows)")
    add_weights_dtype_option(p)
    p.add_argument("--folds", type=int, default=None,
                   help=f"subject folds (default {FOLDS}; 2 with --smoke)")
    p.add_argument("--max-folds", type=int, default=None, help="folds run (default: all)")
    p.add_argument("--init", default=None, metavar="SOURCE",
                   help="start every selected entry from these weights (zoo:NAME, a .keras "
                        "file or a run folder) instead of its own init: a warm restart that "
                        "continues a training history")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="override the entry's peak learning rate (a warm restart usually "
                        "starts lower than the first run)")
    p.add_argument("--ema-momentum", type=float, default=None,
                   help="keep an exponential moving average of the weights (e.g. 0.999)")
    p.add_argument("--init-mode", choices=("model", "layers"), default=None,
                   help="with --init: 'layers' builds the entry's architecture (with any "
                        "--arch-option) and copies the source's weights by layer name "
                        "(TrainConfig.init_mode)")
    p.add_argument("--arch-option", action="append", default=[], metavar="KEY=VALUE",
                   help="override one of the entry's architecture options (VALUE is JSON: "
                        "stem_pool=false, dropout=0.3); repeatable")
    p.add_argument("--augment", default=None,
                   help="override the entry's augmentation preset (e.g. basic_erasing)")
    p.add_argument("--mixup", type=float, default=None,
                   help="mixup alpha (Beta(alpha, alpha) mixing of image pairs)")
    p.add_argument("--final-test", action="store_true",
                   help="holdout entries: also measure the selected model on PublicTest (once "
                        "per final model) and publish that number")
    args = p.parse_args(argv)
    if args.weights_dtype and not (args.publish or args.bundle):
        p.error("--weights-dtype goes with --publish DIR or --bundle")
    if args.overwrite and not args.publish:
        p.error("--overwrite goes with --publish DIR (--bundle always replaces the packaged "
                "entry)")
    args.models = ",".join(C.selected(tuple(ENTRIES), args.models, "models"))
    args.arch_options = {}
    for item in args.arch_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--arch-option takes KEY=VALUE, got {item!r}")
        try:
            args.arch_options[key] = json.loads(value)
        except json.JSONDecodeError:
            p.error(f"--arch-option {key}: {value!r} is not JSON (true, 0.3, \"hfc\", ...)")
    if args.init_mode and not args.init:
        p.error("--init-mode goes with --init")
    return args


def publish_overwrite(name, args):
    """The ``overwrite`` passed to ``zoo.publish``: ``--overwrite``, or ``--bundle`` for a name
    the package already ships (replacing it is the point of ``--bundle``)."""
    from keras_fer.zoo import store

    if args.bundle:
        return (store.BUNDLED_DIR / "entries" / f"{name}.json").is_file()
    return bool(args.overwrite)


def check_publishable(names, args):
    """Stops before any training if publishing would be refused at the end (a name that
    exists, without ``--overwrite``), rather than after hours of it."""
    if not (args.publish or args.bundle):
        return
    from pathlib import Path

    from keras_fer.zoo import store
    from keras_fer.zoo.publish import _refuse_existing

    root = store.BUNDLED_DIR if args.bundle else Path(args.publish)
    for name in names:
        if publish_overwrite(name, args):
            continue
        model_dir = root / ("files" if args.bundle else "models") / name
        try:
            _refuse_existing(name, root / "entries" / f"{name}.json", model_dir)
        except FileExistsError as err:
            raise SystemExit(f"{RECIPE}: cannot publish {name}: {err}") from None


def entry_settings(name, args):
    spec = copy.deepcopy(ENTRIES[name])
    if args.smoke:
        spec["train"].update(epochs=1, batch_size=8)
        if spec["arch"] == "mini_xception":
            spec["arch_options"]["width"] = 0.5
    if args.epochs:
        spec["train"]["epochs"] = args.epochs
    if args.batch_size:
        spec["train"]["batch_size"] = args.batch_size
    if getattr(args, "learning_rate", None):
        spec["train"]["learning_rate"] = args.learning_rate
    if getattr(args, "ema_momentum", None):
        spec["train"]["ema_momentum"] = args.ema_momentum
    spec["arch_options"].update(getattr(args, "arch_options", None) or {})
    for flag in ("init_mode", "augment", "mixup"):
        if getattr(args, flag, None):
            spec["train"][flag] = getattr(args, flag)
    return spec


def _data(spec, args):
    options = {"distribution": "votes"} if spec["dataset"] == "ferplus" else {}
    dataset = C.load_dataset(spec["dataset"], args.data_root, **options)
    # The smoke data's synthetic pictures hold no face a detector would find.
    if spec.get("face_crop") and not args.smoke:
        from keras_fer.datasets.face_crops import crop_to_faces

        dataset = crop_to_faces(dataset)
    return dataset


def build_runs(name, spec, dataset, args):
    """Cross-validation folds (subject protocol) plus the final all-data run, or the single
    official run."""
    config = C.base_config(arch=spec["arch"], arch_options=spec["arch_options"],
                           input_shape=INPUT_SHAPE, seed=args.seed, verbose=args.verbose,
                           init=initial_source(spec, args), **spec["train"])
    if spec["protocol"] in ("official", "holdout"):
        (tags, train, test), = C.protocol_splits(dataset, spec["protocol"], test_fraction=0.1,
                                                 seed=0)
        return [C.Run(f"{name}/{spec['protocol']}", config, train, test, dict(tags, entry=name))]
    folds = args.folds or (2 if args.smoke else spec.get("folds", FOLDS))
    if folds == "leave_one_subject_out":
        folds = len(set(dataset.subjects()))
    # Per-epoch TensorBoard pictures cost more than a small set's epoch: folds go without.
    runs = [C.Run(f"{name}/fold{tags['fold']}", config.replace(tensorboard=False), train, test,
                  dict(tags, entry=name))
            for tags, train, test in C.protocol_splits(dataset, "subject", folds=folds,
                                                       seed=args.seed,
                                                       max_folds=args.max_folds)]
    runs.append(C.Run(f"{name}/all", config.replace(tensorboard=False), dataset, None,
                      {"entry": name, "protocol": "all"}))
    return runs


def initial_source(spec, args):
    """The ``TrainConfig.init`` of an entry's runs: ``--init``, else the entry's ``init``: this
    recipe's own run of that entry when it is in ``--out``, else the published entry. Every
    fold starts from the same weights (the engine loads them per run)."""
    if getattr(args, "init", None):
        return args.init
    init = spec.get("init")
    if not init:
        return None
    name = init[len("zoo:"):] if init.startswith("zoo:") else init
    for protocol in ("official", "holdout"):
        run_dir = os.path.join(args.out, name, protocol)
        if os.path.isfile(os.path.join(run_dir, "model.keras")):
            return run_dir
    return f"zoo:{name}"


def vote_metrics(model, dataset):
    """FERPlus's two test protocols on ``dataset`` (records carry vote ``distribution``; load
    it with ``label_mode="crossentropy"`` to keep the images without a majority): majority
    accuracy (images whose top emotion has more than half of the votes after outlier removal)
    and, over every image, plurality accuracy (the most-voted emotion) and mean
    KL(votes || prediction)."""
    import keras

    from keras_fer.datasets.pipeline import make_dataset
    from keras_fer.datasets.readers.ferplus import FERPLUS_TO_CANONICAL, ferplus_label

    ds = make_dataset(dataset, image_size=INPUT_SHAPE[:2], channels=INPUT_SHAPE[2],
                      batch_size=256, shuffle=False, label_mode="int",
                      normalization={"scale": 1.0})
    logits = np.concatenate([keras.ops.convert_to_numpy(model(x, training=False))
                             for x, _ in ds])
    probs = np.asarray(keras.ops.softmax(logits, axis=-1))
    pred = probs.argmax(-1)
    votes = np.stack([r.distribution for r in dataset])
    kl = np.sum(np.where(votes > 0, votes * (np.log(np.maximum(votes, 1e-12))
                                             - np.log(np.maximum(probs, 1e-12))), 0), -1)
    majority = []
    for i, record in enumerate(dataset):
        index, _ = ferplus_label(record.meta["votes"], "majority")
        if index is not None:
            majority.append((i, FERPLUS_TO_CANONICAL[index]))
    idx = np.array([i for i, _ in majority], np.int64)
    truth = np.array([t for _, t in majority], np.int64)
    return {
        "majority_accuracy": float(np.mean(pred[idx] == truth)) if len(idx) else None,
        "majority_images": int(len(idx)),
        "plurality_accuracy": float(np.mean(pred == votes.argmax(-1))),
        "mean_kl_votes_to_prediction": float(np.mean(kl)),
        "images": int(len(dataset)),
    }


def entry_metrics(name, spec, rows, runs, args):
    """The model card's numbers: the official run's report, or the mean/std over folds."""
    done = [r for r in rows if "error" not in r and r.get("protocol") != "all"]
    if not done:
        raise SystemExit(f"{name}: no run finished; see the log above")
    if spec["protocol"] in ("official", "holdout"):
        row = done[0]
        protocol = (f"{spec['dataset']} Training -> PublicTest, last epoch"
                    if spec["protocol"] == "official" else
                    f"{spec['dataset']} 90 % of Training -> the other 10 % (stratified, seed "
                    f"0), last epoch; " + ("PublicTest in public_test" if args.final_test else
                                           "PublicTest not measured yet (not final)"))
        metrics = {"protocol": protocol,
                   "accuracy": row["accuracy"], "mean_class_accuracy":
                   row["mean_class_accuracy"], "weighted": row["weighted"],
                   "per_class_recall": row["per_class"], "test_images": row["n_test"],
                   "train_images": row["n_train"], "epochs": row["epochs"],
                   "train_seconds": row["train_seconds"], "params": row["params"],
                   "flops": row["flops"]}
        return metrics, os.path.dirname(row["report"])
    (agg,) = C.aggregate(done, ["entry"])
    cm = np.sum([np.asarray(r["confusion_matrix"]) for r in done], axis=0)
    metrics = {"protocol": f"{len(done)}-fold subject-independent cross-validation on "
                           f"{spec['dataset']}, last epoch of each fold",
               "accuracy": agg["accuracy"], "accuracy_std": agg["accuracy_std"],
               "fold_accuracies": [r["accuracy"] for r in done],
               "mean_class_accuracy": agg["mean_class_accuracy"],
               "weighted": agg.get("weighted"), "per_class_recall": agg.get("per_class"),
               "confusion_matrix_summed_over_folds": cm.tolist(), "epochs": agg["epochs"],
               "params": agg["params"], "flops": agg["flops"],
               "train_seconds_per_fold": agg["train_seconds"]}
    from keras_fer.evaluation.plots import write_confusion_matrix

    eval_dir = os.path.join(args.out, name, "cv_evaluation")
    os.makedirs(eval_dir, exist_ok=True)
    classes = list(runs[0].train_data.classes)
    write_confusion_matrix(cm, classes, os.path.join(eval_dir, "confusion_matrix.png"),
                           os.path.join(eval_dir, "confusion_matrix.csv"),
                           title=f"{name}: {len(done)} subject folds")
    return metrics, eval_dir


def final_test(model_path, spec, args):
    """The selected model on PublicTest, measured once: accuracy, mean class recall and
    per-class recall, plain and with horizontal-flip test-time augmentation. The flip numbers
    are those of the model ``flip_tta(model)`` (``keras_fer.models.EnsembleClassifier``: the
    mean softmax of the image and its mirror) evaluated as it is, and that model is saved
    beside the run (``model_flip_tta.keras``): the number belongs to a file that publishes,
    serves and converts to TFLite as it was measured. The evaluation folders go beside the
    run (``public_test``, ``public_test_flip_tta``)."""
    from keras_fer.datasets.pipeline import make_dataset
    from keras_fer.evaluation import evaluate_model
    from keras_fer.models import flip_tta, load_model
    from keras_fer.zoo.publish import inference_copy

    # The model as it publishes: float32 compute, whatever the training's precision policy.
    model = inference_copy(load_model(model_path))
    test = C.load_dataset(spec["dataset"], args.data_root, split=["PublicTest"])
    ds = make_dataset(test, image_size=INPUT_SHAPE[:2], channels=INPUT_SHAPE[2], batch_size=256,
                      shuffle=False, label_mode="int", normalization={"scale": 1.0})
    run_dir = os.path.dirname(model_path)
    # No t-SNE of the test faces: the validation report has it, and it costs minutes on a CPU.
    report = evaluate_model(model, ds, test.classes, os.path.join(run_dir, "public_test"),
                            tsne_samples=0)
    tta = flip_tta(model)
    tta_path = os.path.join(run_dir, "model_flip_tta.keras")
    tta.save(tta_path)
    flip = evaluate_model(tta, ds, test.classes, os.path.join(run_dir, "public_test_flip_tta"),
                          tsne_samples=0)
    return {"images": report["num_samples"], **_recalls(report), **_recalls(flip, "flip_tta_"),
            "flip_tta_model": tta_path,
            "report": os.path.join(run_dir, "public_test", "report.md")}


def _recalls(report, prefix=""):
    return {f"{prefix}accuracy": report["accuracy"],
            f"{prefix}mean_class_recall": report["macro"]["recall"],
            f"{prefix}per_class_recall": {k: v["recall"] for k, v in report["per_class"].items()}}


def command_line(name, args):
    """The command the model card records; the data folder is the user's own, named by
    ``$KERAS_FER_DATA`` for the shell to expand."""
    parts = [shlex.quote(p) for p in ("keras-fer", "train", RECIPE, "--models", name)]
    parts += ["--data-root", f'"${C.DATA_ENV}"']
    if args.epochs:
        parts += ["--epochs", str(args.epochs)]
    if getattr(args, "init", None):
        parts += ["--init", shlex.quote(args.init)]
    for key, value in (getattr(args, "arch_options", None) or {}).items():
        parts += ["--arch-option", shlex.quote(f"{key}={json.dumps(value)}")]
    for flag in ("init_mode", "augment", "mixup", "learning_rate", "ema_momentum", "seed"):
        if getattr(args, flag, None):
            parts += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if getattr(args, "final_test", False):
        parts += ["--final-test"]
    return " ".join(parts)


def run_entry(name, args):
    import keras

    spec = entry_settings(name, args)
    dataset = _data(spec, args)
    print(dataset.summary())
    runs = build_runs(name, spec, dataset, args)
    rows = C.run_all(runs, args.out, force=args.force, select_best=False)
    # FERPlus's protocols are measured on PublicTest: a holdout entry only once it is final.
    on_public_test = spec["protocol"] == "official" or args.final_test
    if spec["dataset"] == "ferplus" and on_public_test and rows and "error" not in rows[0]:
        from keras_fer.models import load_model

        # The test images every FERPlus scheme keeps, not only the majority ones.
        every = C.load_dataset("ferplus", args.data_root, split=["PublicTest"],
                               label_mode="crossentropy")
        from keras_fer.zoo.publish import inference_copy

        trained = inference_copy(load_model(os.path.join(args.out, *runs[0].key.split("/"),
                                                         "model.keras")))
        rows[0]["vote_metrics"] = vote_metrics(trained, every)
    metrics, eval_dir = entry_metrics(name, spec, rows, runs, args)
    for row in rows:
        if row.get("vote_metrics"):
            metrics["ferplus_protocols"] = row["vote_metrics"]
    final_dir = os.path.join(args.out, *runs[-1].key.split("/"))
    model_path = os.path.join(final_dir, "model.keras")
    if spec["protocol"] == "holdout" and args.final_test:
        metrics["public_test"] = final_test(model_path, spec, args)
    C.write_json(os.path.join(args.out, name, "metrics.json"), metrics)
    print(f"{name}: accuracy {C.fmt_pct(metrics['accuracy'], metrics.get('accuracy_std'))} "
          f"({metrics['protocol']}); model {model_path}")
    if args.publish or args.bundle:
        from keras_fer import zoo
        from keras_fer.models import load_model

        trained = load_model(model_path)
        zoo.publish(trained, name, metrics, out_dir=args.publish, bundle=args.bundle,
                    overwrite=publish_overwrite(name, args),
                    weights_dtype=getattr(args, "weights_dtype", None),
                    dataset=spec["dataset"], protocol=metrics["protocol"],
                    recipe=command_line(name, args), evaluation_dir=eval_dir,
                    description=spec["description"], licence=LICENCE[spec["dataset"]],
                    limitations=LIMITS,
                    training_history=os.path.join(final_dir, HISTORY_FILE))
        print(f"{name}: published")
    keras.backend.clear_session()
    return metrics


def main(argv=None):
    args = C.prepare(parse_args(argv), RECIPE, SMOKE_DATA)
    print(C.sizes_note(C.mode_of(args)))
    check_publishable(args.models.split(","), args)
    results = {name: run_entry(name, args) for name in args.models.split(",")}
    C.write_json(os.path.join(args.out, "results.json"), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
