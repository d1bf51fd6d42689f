"""The ``keras-fer`` command line."""

import argparse
import sys


def _cmd_demo(args):
    from keras_fer.demo import run_demo

    acc = run_demo(out_dir=args.out, epochs=args.epochs)
    return 0 if acc > 0 else 1


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
