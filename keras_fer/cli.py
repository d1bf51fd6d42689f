"""The ``keras-fer`` command line."""

import argparse
import json
import os
import sys


def _parse_value(text):
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string such as arch=resnet18


class UsageError(Exception):
    """A mistake in the command's arguments: reported as one line, exit status 2."""


def _set_keys_help():
    """The ``--set`` keys, their types and defaults, from the TrainConfig fields themselves
    (so a new field is listed without anyone updating this help)."""
    import dataclasses

    from keras_fer.training.config import TrainConfig, field_type

    lines = ["--set keys (TrainConfig fields; JSON values, bare words are strings):"]
    for field in dataclasses.fields(TrainConfig):
        tp, optional = field_type(field)
        default = (field.default if field.default is not dataclasses.MISSING
                   else field.default_factory())
        kind = getattr(tp, "__name__", str(tp)) + (" or null" if optional else "")
        lines.append(f"  {field.name:<24} {kind:<16} default {json.dumps(default)}")
    return "\n".join(lines)


# The --set keys are listed only when the help is shown: TrainConfig's package imports
# TensorFlow (seconds), which every other command would otherwise pay for at start-up.
_SET_KEYS_EPILOG = object()


class _TrainHelpFormatter(argparse.RawDescriptionHelpFormatter):
    def add_text(self, text):
        super().add_text(_set_keys_help() if text is _SET_KEYS_EPILOG else text)


def _check_data_args(dataset, root, split=None):
    """The cheap checks that would otherwise fail only after a model was built or data read."""
    from keras_fer.datasets import list_datasets

    if dataset is None:
        raise UsageError("no dataset given (dataset=NAME data_root=PATH); datasets: "
                         f"{', '.join(list_datasets())}")
    if dataset not in list_datasets():
        raise UsageError(f"unknown dataset {dataset!r}; datasets: {', '.join(list_datasets())}")
    if root is None:
        raise UsageError(f"dataset {dataset!r} needs a data root (the file or folder)")
    if not os.path.exists(root):
        raise UsageError(f"data root {root} does not exist")


def _cmd_train(args):
    if args.recipe:
        from keras_fer.recipes import RECIPES, run_recipe

        if args.config or args.set:
            raise SystemExit("keras-fer train: give a recipe name or --config/--set, not both")
        if args.recipe not in RECIPES:
            raise SystemExit(f"keras-fer train: unknown recipe {args.recipe!r}; recipes: "
                             f"{', '.join(RECIPES)}")
        return run_recipe(args.recipe, args.recipe_args)
    if not args.config and not args.set and not args.init:
        args.parser.print_usage(sys.stderr)
        print("keras-fer train: give a RECIPE, --config FILE or --set KEY=VALUE ... "
              "(keras-fer train --help lists the keys)", file=sys.stderr)
        return 2
    from keras_fer.training import TrainConfig, train

    values = {}
    if args.config:
        if not os.path.isfile(args.config):
            raise UsageError(f"--config {args.config} does not exist")
        values = TrainConfig.from_json(args.config).to_dict()
    for item in args.set or []:
        if "=" not in item:
            raise UsageError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        values[key] = _parse_value(value)
    if args.init:
        values["init"] = args.init
    try:
        config = TrainConfig.from_dict(values)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None
    _check_data_args(config.dataset, config.data_root)
    result = train(config)
    if result.report:
        print(f"accuracy {result.report['accuracy']:.4f}; report: "
              f"{result.out_dir}/evaluation/report.md")
    return 0


def _cmd_evaluate(args):
    from keras_fer.evaluation import evaluate_split
    from keras_fer.models import load_model

    _check_data_args(args.dataset, args.root)
    if os.path.isfile(args.model):
        model = load_model(args.model)
    elif args.model.endswith(".keras") or os.sep in args.model:
        raise UsageError(f"model file {args.model} does not exist")
    else:
        from keras_fer import zoo

        model = zoo.load(args.model)  # a zoo name, as keras-fer predict takes
    report = evaluate_split(model, args.dataset, args.root, args.out, split=args.split)
    print(f"accuracy {report['accuracy']:.4f} on {report['num_samples']} images; "
          f"report: {args.out}/report.md")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-fer",
        description="keras-fer: facial expression recognition models for Keras 3.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # The app's commands (predict, video, demo) and the zoo's are defined beside their code.
    from keras_fer.app.cli import add_demo_parser, add_predict_parsers
    from keras_fer.zoo.cli import add_zoo_parser

    add_demo_parser(sub)

    tr = sub.add_parser(
        "train", help="run a recipe, or train from a TrainConfig JSON file / key=value settings",
        description="Either runs a recipe (keras-fer train RECIPE [recipe options]; see "
        "keras-fer train RECIPE --help) or trains one TrainConfig with "
        "keras_fer.training.train. Re-running the same command after an interruption resumes "
        "from the last checkpoint. Examples: keras-fer train hfc_attention --smoke; "
        "keras-fer train --set arch=mini_xception dataset=fer2013 "
        "data_root=/data/fer2013.csv.gz train_split=Training val_split=PublicTest "
        "epochs=30 out_dir=runs/mx",
        epilog=_SET_KEYS_EPILOG, formatter_class=_TrainHelpFormatter)
    tr.add_argument("recipe", nargs="?", metavar="RECIPE",
                    help="vit_vs_cnn, hfc_attention, vit_sam_avfer, neural_resizer, "
                         "generator_mnist, generator_faces, synthetic_augmentation or "
                         "zoo_checkpoints")
    tr.add_argument("recipe_args", nargs=argparse.REMAINDER, metavar="...",
                    help="the recipe's own options")
    tr.add_argument("--config", help="a JSON file of TrainConfig fields")
    tr.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                    help="TrainConfig fields (JSON values; bare words are strings)")
    tr.add_argument("--init", metavar="SOURCE",
                    help="start from trained weights, then train with this config's schedule "
                         "(warm restart): zoo:NAME, a .keras file or an earlier run's out_dir; "
                         "the run's training_history.json continues the source's")
    tr.set_defaults(func=_cmd_train, parser=tr)

    ev = sub.add_parser("evaluate", help="evaluate a saved .keras model on a dataset split",
                        description="Writes report.json/report.md, the confusion matrix, "
                        "t-SNE and Grad-CAM pictures into --out.")
    ev.add_argument("model", help="a .keras file or a model-zoo name (keras-fer zoo list)")
    ev.add_argument("--dataset", required=True, help="reader name, e.g. fer2013, ckplus48")
    ev.add_argument("--root", required=True, help="the dataset's file or folder")
    ev.add_argument("--split", help="split name, e.g. PublicTest")
    ev.add_argument("--out", default="evaluation", help="output folder (default: %(default)s)")
    ev.set_defaults(func=_cmd_evaluate)

    add_predict_parsers(sub)
    add_zoo_parser(sub)
    return parser


def main(argv=None):
    from keras_fer import _quiet_tf

    _quiet_tf.install()  # before anything imports TensorFlow: no start-up noise
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if args.command not in ("train", "evaluate") or getattr(args, "recipe", None):
        return args.func(args)
    try:
        return args.func(args)
    except UsageError as err:
        print(f"keras-fer {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, OSError, LookupError) as err:
        # The readers, TrainConfig and the zoo name the file / field and the problem in
        # their messages: one line is what a person can act on. KERAS_FER_DEBUG=1 shows the
        # traceback of anything unexpected.
        if os.environ.get("KERAS_FER_DEBUG"):
            raise
        print(f"keras-fer {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
