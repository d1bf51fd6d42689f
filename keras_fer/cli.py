"""The ``keras-fer`` command line."""

import argparse
import sys


def _cmd_demo(args):
    from keras_fer.demo import run_demo

    acc = run_demo(out_dir=args.out, epochs=args.epochs)
    return 0 if acc > 0 else 1


def _parse_value(text):
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string such as arch=resnet18


def _cmd_train(args):
    if args.recipe:
        from keras_fer.recipes import RECIPES, run_recipe

        if args.config or args.set:
            raise SystemExit("keras-fer train: give a recipe name or --config/--set, not both")
        if args.recipe not in RECIPES:
            raise SystemExit(f"keras-fer train: unknown recipe {args.recipe!r}; recipes: "
                             f"{', '.join(RECIPES)}")
        return run_recipe(args.recipe, args.recipe_args)
    from keras_fer.training import TrainConfig, train

    values = {}
    if args.config:
        values = TrainConfig.from_json(args.config).to_dict()
    for item in args.set or []:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        values[key] = _parse_value(value)
    config = TrainConfig.from_dict(values)
    result = train(config)
    if result.report:
        print(f"accuracy {result.report['accuracy']:.4f}; report: "
              f"{result.out_dir}/evaluation/report.md")
    return 0


def _cmd_evaluate(args):
    from keras_fer import datasets
    from keras_fer.datasets.pipeline import make_dataset
    from keras_fer.evaluation import evaluate_model
    from keras_fer.models import load_model

    model = load_model(args.model)
    data = datasets.load(args.dataset, args.root, split=args.split)
    image_size, channels = tuple(model.input_shape[1:3]), int(model.input_shape[3])
    ds = make_dataset(data, image_size=image_size, channels=channels, batch_size=64,
                      shuffle=False, label_mode="int", normalization={"scale": 1.0})
    names = getattr(model, "class_names", None) or list(data.classes)
    report = evaluate_model(model, ds, names, args.out)
    print(f"accuracy {report['accuracy']:.4f} on {report['num_samples']} images; "
          f"report: {args.out}/report.md")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-fer",
        description="keras-fer: facial expression recognition models for Keras 3.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="train a small attention CNN on embedded synthetic faces (no download, CPU only)",
        description="Draws synthetic cartoon faces, trains a compact CNN with high-frequency "
        "attention using SAM and the F-PDLS loss, prints held-out accuracy and exports the "
        "model (.keras + SavedModel).",
    )
    demo.add_argument("--out", default="keras-fer-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=4, help="training epochs (default: %(default)s)")
    demo.set_defaults(func=_cmd_demo)

    tr = sub.add_parser(
        "train", help="run a recipe, or train from a TrainConfig JSON file / key=value settings",
        description="Either runs a recipe (keras-fer train RECIPE [recipe options]; see "
        "keras-fer train RECIPE --help) or trains one TrainConfig with "
        "keras_fer.training.train. Re-running the same command after an interruption resumes "
        "from the last checkpoint. Examples: keras-fer train hfc_attention --smoke; "
        "keras-fer train --set arch=mini_xception dataset=fer2013 "
        "data_root=/data/fer2013.csv.gz train_split=Training val_split=PublicTest "
        "epochs=30 out_dir=runs/mx")
    tr.add_argument("recipe", nargs="?", metavar="RECIPE",
                    help="vit_vs_cnn, hfc_attention, vit_sam_avfer, neural_resizer, "
                         "generator_mnist, generator_faces, synthetic_augmentation or "
                         "zoo_checkpoints")
    tr.add_argument("recipe_args", nargs=argparse.REMAINDER, metavar="...",
                    help="the recipe's own options")
    tr.add_argument("--config", help="a JSON file of TrainConfig fields")
    tr.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                    help="TrainConfig fields (JSON values; bare words are strings)")
    tr.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="evaluate a saved .keras model on a dataset split",
                        description="Writes report.json/report.md, the confusion matrix, "
                        "t-SNE and Grad-CAM pictures into --out.")
    ev.add_argument("model", help="a .keras file")
    ev.add_argument("--dataset", required=True, help="reader name, e.g. fer2013, ckplus48")
    ev.add_argument("--root", required=True, help="the dataset's file or folder")
    ev.add_argument("--split", help="split name, e.g. PublicTest")
    ev.add_argument("--out", default="evaluation", help="output folder (default: %(default)s)")
    ev.set_defaults(func=_cmd_evaluate)

    from keras_fer.predict_cli import add_predict_parsers

    add_predict_parsers(sub)

    from keras_fer.zoo.cli import add_zoo_parser

    add_zoo_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
