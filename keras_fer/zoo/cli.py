"""``keras-fer zoo list|describe|publish`` (wired into ``keras_fer.cli`` by
``add_zoo_parser``)."""

import functools
import json
import os
import shlex
import sys
import warnings


def _user_errors(command):
    """Bad names, missing or tampered files: one line on stderr and exit status 1, not a
    traceback (the messages already say what to do)."""

    @functools.wraps(command)
    def run(args):
        from keras_fer.zoo.store import ZooFileError

        try:
            return command(args)
        except (ValueError, ZooFileError, FileExistsError) as err:
            raise SystemExit(f"keras-fer zoo {args.zoo_command}: {err}") from None

    return run


@_user_errors
def _cmd_list(args):
    from keras_fer.zoo.registry import ZooEntryWarning, describe, list_models

    pretrained = True if args.pretrained else (False if args.untrained else None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ZooEntryWarning)
        names = list_models(args.pattern, pretrained=pretrained)
    for warning in caught:  # one plain line each, not Python's warning format
        print(f"keras-fer zoo list: warning: {warning.message}", file=sys.stderr)
    if args.json:
        print(json.dumps(names))
        return 0
    if not names:
        print("no zoo models" + (f" match {args.pattern!r}" if args.pattern else ""))
        return 0
    rows = []
    for name in names:
        entry = describe(name)
        acc = entry.metrics.get("accuracy")
        rows.append((name, entry.arch, "x".join(map(str, entry.input_shape)),
                     entry.dataset or "-", f"{acc:.4f}" if isinstance(acc, float) else "-",
                     "yes" if entry.pretrained else "no"))
    header = ("name", "arch", "input", "dataset", "accuracy", "weights")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return 0


@_user_errors
def _cmd_describe(args):
    from keras_fer.zoo.registry import describe

    entry = describe(args.name)
    print(entry.to_json() if args.json else entry.summary(), end="" if args.json else "\n")
    return 0


def _read_metrics(text):
    if text is None:
        return None
    if os.path.isfile(text):
        with open(text) as f:
            return json.load(f)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise SystemExit(f"--metrics must be a JSON file or a JSON object, got {text!r}") from None


def recipe_from_run(model_path):
    """``keras-fer train --config <run>/config.json``, when the model file sits in a
    ``keras-fer train`` output folder (which saves its TrainConfig as ``config.json``)."""
    config = os.path.join(os.path.dirname(os.path.abspath(model_path)), "config.json")
    return f"keras-fer train --config {shlex.quote(config)}" if os.path.isfile(config) else ""


@_user_errors
def _cmd_publish(args):
    from keras_fer.zoo.publish import publish

    evaluation_dir = args.evaluation_dir
    if evaluation_dir is None:
        # keras-fer train writes <out_dir>/model.keras and <out_dir>/evaluation/.
        guess = os.path.join(os.path.dirname(os.path.abspath(args.model)), "evaluation")
        evaluation_dir = guess if os.path.isfile(os.path.join(guess, "report.json")) else None
    entry = publish(
        args.model, args.name, _read_metrics(args.metrics), out_dir=args.out,
        version=args.version, dataset=args.dataset or "", protocol=args.protocol or "",
        recipe=args.recipe if args.recipe is not None else recipe_from_run(args.model),
        evaluation_dir=evaluation_dir, bundle=args.bundle, url=args.url,
        description=args.description or "", overwrite=args.overwrite,
        weights_dtype=args.weights_dtype,
        **({"licence": args.licence} if args.licence else {}))
    from keras_fer.zoo import store

    root = store.BUNDLED_DIR if args.bundle else (args.out or str(store.home()))
    print(f"published {entry.name}: {len(entry.files)} files under {root}")
    for path, info in entry.files.items():
        print(f"  {info['sha256'][:16]}  {info['bytes']:>10,}  {path}")
    return 0


def add_weights_dtype_option(parser):
    """``--weights-dtype``, passed to ``zoo.publish(weights_dtype=...)``."""
    parser.add_argument(
        "--weights-dtype", choices=("float16", "float32"), default=None,
        help="how the .keras file stores the weights (they load as float32 either way): "
             "float16 halves the file, verified against the float32 model's outputs "
             "(keras_fer.zoo.compact); default: float16 with --bundle, else float32")


def add_zoo_parser(subparsers):
    """Adds ``zoo`` with its ``list``, ``describe`` and ``publish`` sub-commands."""
    zoo = subparsers.add_parser(
        "zoo", help="list, describe and publish the named models of the zoo",
        description="The model zoo: named models (arch.tag) with their config, metrics and "
        "sha256-checked files. Entries come from the package and from $KERAS_FER_HOME "
        "(default ~/.keras_fer).")
    sub = zoo.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    zoo.set_defaults(func=lambda args: (zoo.print_help(), 2)[1])

    ls = sub.add_parser("list", help="list the zoo's models")
    ls.add_argument("pattern", nargs="?", help="shell pattern on the name, e.g. 'vit*'")
    group = ls.add_mutually_exclusive_group()
    group.add_argument("--pretrained", action="store_true", help="only models with weights")
    group.add_argument("--untrained", action="store_true",
                       help="only architecture entries without weights")
    ls.add_argument("--json", action="store_true", help="print the names as a JSON list")
    ls.set_defaults(func=_cmd_list)

    de = sub.add_parser("describe", help="show one model's entry")
    de.add_argument("name", help="entry name, e.g. mini_xception.fer2013")
    de.add_argument("--json", action="store_true", help="print the entry as JSON")
    de.set_defaults(func=_cmd_describe)

    pu = sub.add_parser(
        "publish", help="publish a trained .keras model as a zoo entry",
        description="Writes <out>/models/<name>/ (the .keras file without optimizer state, a "
        "SavedModel in TF Serving's layout serving/<name>/<version>/, the model card) and "
        "<out>/entries/<name>.json with sha256 digests. Example: keras-fer zoo publish "
        "runs/mx/model.keras --name mini_xception.fer2013 --dataset fer2013 --protocol "
        "'Training -> PublicTest'. Next to a keras-fer train run, --recipe and "
        "--evaluation-dir default to the run's config.json and evaluation/ folder.")
    pu.add_argument("model", help="the trained .keras file")
    pu.add_argument("--name", required=True, help="entry name, arch.tag")
    pu.add_argument("--metrics", help="a JSON file (e.g. evaluation/report.json) or a JSON "
                    "object; default: <evaluation-dir>/report.json")
    pu.add_argument("--evaluation-dir", help="an evaluate_model output folder")
    pu.add_argument("--dataset", help="training data set, e.g. fer2013")
    pu.add_argument("--protocol", help="splits / folds the metrics were measured on")
    pu.add_argument("--recipe", help="the exact command that trained the model")
    pu.add_argument("--out", help="release root (default: $KERAS_FER_HOME)")
    pu.add_argument("--version", type=int, default=1,
                    help="SavedModel version (default: %(default)s)")
    pu.add_argument("--url", help="base URL the files will be downloadable from")
    pu.add_argument("--licence", help="licence note (default: code Apache-2.0, weights follow "
                    "the data set's terms)")
    pu.add_argument("--description", help="one-line description")
    pu.add_argument("--bundle", action="store_true",
                    help="write into the package (keras_fer/zoo/) to ship with the wheel")
    pu.add_argument("--overwrite", action="store_true", help="replace an existing release")
    add_weights_dtype_option(pu)
    pu.set_defaults(func=_cmd_publish)

    from keras_fer.zoo.ensemble import add_ensemble_parser

    add_ensemble_parser(sub, _user_errors)
    return zoo
