"""``keras-fer zoo ensemble``: trained models (zoo entries or ``.keras`` files) -> one
``EnsembleClassifier`` (``keras_fer.models.ensemble``), evaluated on a dataset split and
published as a zoo entry, so that the published number, the SavedModel, the TFLite copy and
the app are the same computation.

    keras-fer zoo ensemble --members zoo:resnet18.fer2013,runs/b/model.keras --flip \\
        --out ensemble.keras [--dataset fer2013 --root DATA --split PublicTest] \\
        [--name resnet18_ens.fer2013 [--publish-dir DIR] [--overwrite]]
"""

import os
import shlex

ZOO_PREFIX = "zoo:"


def load_member(source):
    """A trained model from ``zoo:NAME``, a zoo name or a ``.keras`` file."""
    from keras_fer.zoo.loading import load_model

    if isinstance(source, str) and source.startswith(ZOO_PREFIX):
        source = source[len(ZOO_PREFIX):]
    return load_model(source)


def build_ensemble(sources, flip=False):
    """``EnsembleClassifier`` of the models named by ``sources`` (see ``load_member``)."""
    from keras_fer.models.ensemble import EnsembleClassifier

    sources = list(sources)
    if not sources:
        raise ValueError("members: name at least one model (zoo:NAME or a .keras file)")
    return EnsembleClassifier([load_member(s) for s in sources], flip=flip)


def command_line(args):
    """The command that rebuilds and re-measures the ensemble (the entry's ``recipe``)."""
    parts = ["keras-fer", "zoo", "ensemble", "--members", ",".join(args.members)]
    parts += ["--flip"] if args.flip else []
    for flag in ("dataset", "root", "split"):
        if getattr(args, flag):
            parts += [f"--{flag}", getattr(args, flag)]
    return " ".join(shlex.quote(p) for p in parts)


def run(args):
    """The ``keras-fer zoo ensemble`` command (``args`` from ``add_ensemble_parser``)."""
    if not (args.out or args.name):
        raise ValueError("give --out FILE.keras, --name ENTRY (publish), or both")
    if bool(args.dataset) != bool(args.root):
        raise ValueError("--dataset and --root go together")
    if args.root and not os.path.exists(args.root):
        raise ValueError(f"--root {args.root} does not exist")
    if args.name and not args.overwrite:  # before any loading or evaluation, not after
        from pathlib import Path

        from keras_fer.zoo import store
        from keras_fer.zoo.entry import check_name
        from keras_fer.zoo.publish import _refuse_existing

        root = Path(args.publish_dir) if args.publish_dir else store.home()
        _refuse_existing(check_name(args.name), root / "entries" / f"{args.name}.json",
                         root / "models" / args.name)
    model = build_ensemble(args.members, flip=args.flip)
    members = ", ".join(f"{m.name} ({m.arch})" for m in model.members)
    print(f"ensemble of {len(model.members)}: {members}; flip {args.flip}")
    if args.out:
        model.save(args.out)
        print(f"saved {args.out}")
    report, evaluation_dir = None, None
    if args.dataset:
        from keras_fer.evaluation import evaluate_split

        stem = os.path.splitext(args.out)[0] if args.out else args.name
        evaluation_dir = args.evaluation_dir or f"{stem}_evaluation"
        report = evaluate_split(model, args.dataset, args.root, evaluation_dir,
                                split=args.split)
        print(f"accuracy {report['accuracy']:.4f} on {report['num_samples']} images "
              f"({' '.join(filter(None, [args.dataset, args.split]))}); report: "
              f"{evaluation_dir}/report.md")
    if args.name:
        from keras_fer.zoo.publish import publish

        tta = " with horizontal-flip test-time augmentation" if args.flip else ""
        entry = publish(
            model, args.name, report, out_dir=args.publish_dir, overwrite=args.overwrite,
            dataset=args.dataset or "", recipe=command_line(args),
            protocol=f"{args.dataset} {args.split or '(every split)'}" if args.dataset else "",
            evaluation_dir=evaluation_dir,
            description=args.description or f"Mean softmax of {', '.join(args.members)}{tta}.")
        print(f"published {entry.name}")
    return 0


def add_ensemble_parser(sub, wrap=lambda command: command):
    """Adds ``ensemble`` to the ``keras-fer zoo`` sub-commands; ``wrap`` decorates the
    command (the zoo CLI's one-line user errors)."""
    en = sub.add_parser(
        "ensemble", help="average trained models (and/or flip TTA) into one model",
        description="Builds keras_fer.models.EnsembleClassifier from trained models: the mean "
        "softmax of every member (on the image and, with --flip, its mirror), as one Keras "
        "model whose .keras file, SavedModel, TFLite copy and app predictions are the same "
        "computation. Optionally evaluates it on a dataset split (as keras-fer evaluate) "
        "and publishes it as a zoo entry with that report.")
    en.add_argument("--members", required=True,
                    type=lambda text: [s for s in text.split(",") if s],
                    help="comma-separated zoo:NAME (or NAME) and .keras files")
    en.add_argument("--flip", action="store_true",
                    help="also run each member on the horizontal mirror (flip TTA)")
    en.add_argument("--out", help="write the ensemble to this .keras file")
    en.add_argument("--dataset", help="evaluate on this dataset (reader name, e.g. fer2013)")
    en.add_argument("--root", help="the dataset's file or folder")
    en.add_argument("--split", help="split name, e.g. PublicTest")
    en.add_argument("--evaluation-dir", help="report folder (default: <out>_evaluation)")
    en.add_argument("--name", help="publish as this zoo entry (arch.tag)")
    en.add_argument("--publish-dir", help="release root (default: $KERAS_FER_HOME)")
    en.add_argument("--overwrite", action="store_true", help="replace an existing entry")
    en.add_argument("--description", help="one-line description for the entry")
    en.set_defaults(func=wrap(run))
    return en
