"""The recipes' common command line and its resolution: where the data is, where the output
goes, which mode (``--smoke``, CPU defaults, ``--paper``) and which subset of the grid runs."""

import argparse
import os

from keras_fer.recipes._common.smoke import smoke_data_root
from keras_fer.recipes._common.data import DATA_FOLDERS

#: The environment variable naming the data folder when ``--data-root`` is not given.
DATA_ENV = "KERAS_FER_DATA"
DATA_ROOT_HELP = (f"folder holding the datasets, one sub-folder each ({', '.join(DATA_FOLDERS)}, "
                  f"mnist; see docs/recipes.md) (default: ${DATA_ENV})")
MODE_NOTES = {
    "smoke": "mode: --smoke (synthetic data in the real formats, tiny models, 1 epoch): "
             "checks the plumbing; the numbers mean nothing",
    "cpu": "mode: CPU defaults (small inputs, tiny/small model variants, few epochs): "
           "the papers' comparisons in kind, not their numbers",
    "paper": "mode: --paper (the paper's input size, optimiser and epochs; random "
             "initialisation unless --weights-dir gives timm checkpoints): a GPU job",
}


def default_data_root():
    """``$KERAS_FER_DATA``, or None when it is not set."""
    return os.environ.get(DATA_ENV) or None


def require_data_root(data_root):
    """``data_root`` (or ``$KERAS_FER_DATA`` when it is None) as an absolute path; exits with
    a message saying how to give one when neither is set or the folder does not exist."""
    data_root = data_root or default_data_root()
    if not data_root:
        raise SystemExit(f"no data folder: pass --data-root DIR or set {DATA_ENV}=DIR (a "
                         f"folder holding {', '.join(DATA_FOLDERS)}, ... in the layout of "
                         "docs/recipes.md); --smoke needs no data")
    data_root = os.path.abspath(data_root)
    if not os.path.isdir(data_root):
        raise SystemExit(f"--data-root {data_root} is not a folder (pass --data-root DIR or "
                         f"set {DATA_ENV}; --smoke needs no data)")
    return data_root


def make_parser(recipe, description):
    """The arguments every recipe takes; a recipe adds its own to the returned parser."""
    p = argparse.ArgumentParser(prog=f"keras-fer train {recipe}", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    p.add_argument("--out", default=None,
                   help=f"output folder (default runs/{recipe}, runs/{recipe}-smoke with "
                        "--smoke, runs/{recipe}-paper with --paper)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true",
                      help="tiny synthetic data written in the real formats, tiny models, "
                           "1 epoch (what CI runs)")
    mode.add_argument("--paper", action="store_true",
                      help="the paper's settings (224x224 inputs, its optimiser and epochs): "
                           "needs a GPU")
    p.add_argument("--epochs", type=int, default=None, help="override the mode's epochs")
    p.add_argument("--batch-size", type=int, default=None, help="override the batch size")
    p.add_argument("--models", default=None,
                   help="comma-separated subset of the recipe's model names")
    p.add_argument("--datasets", default=None,
                   help="comma-separated subset of the recipe's datasets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights-dir", default=None,
                   help="folder of timm checkpoints (<timm name>.safetensors or "
                        "<timm name>/model.safetensors) to start from, as the papers did "
                        "(ImageNet pre-training); default: random initialisation")
    p.add_argument("--force", action="store_true",
                   help="delete and retrain runs that have results already")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2),
                   help="training output: 0 none, 1 progress bar, 2 one line per epoch")
    return p


def mode_of(args):
    """``"smoke"``, ``"paper"`` or ``"cpu"`` (the default, sized for a small CPU)."""
    return "smoke" if args.smoke else "paper" if args.paper else "cpu"


def sizes_note(mode):
    """The line every recipe prints about what its mode is."""
    return MODE_NOTES[mode]


def prepare(args, recipe, smoke_data=None):
    """Resolves ``args.out`` and ``args.data_root`` in place and returns ``args``.

    With ``--smoke``, the recipe's tiny datasets (``smoke_data``: a ``{dataset: writer
    options}`` dict or a function of the folder, see ``smoke.writer``) are written into
    ``<out>/data`` once, and the data root points there. Otherwise the data root is
    ``--data-root`` or ``$KERAS_FER_DATA``, and neither being set is an error.
    """
    suffix = {"smoke": "-smoke", "paper": "-paper", "cpu": ""}[mode_of(args)]
    args.out = os.path.abspath(args.out or os.path.join("runs", recipe + suffix))
    os.makedirs(args.out, exist_ok=True)
    if args.smoke:
        args.data_root = smoke_data_root(args.out, recipe, smoke_data)
    args.data_root = require_data_root(args.data_root)
    for name in ("epochs", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    return args


def selected(names, option, what):
    """``names`` filtered by a comma-separated ``--models``/``--datasets`` value (in the
    recipe's order); unknown names are an error naming the accepted ones."""
    if not option:
        return list(names)
    wanted = [w.strip() for w in option.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise SystemExit(f"--{what} must be among {list(names)}, got unknown {unknown}")
    return [n for n in names if n in wanted]


def add_data_args(parser, default_out):
    """The generator recipes' arguments: ``--data-root`` (default ``$KERAS_FER_DATA``; read
    it through ``require_data_root``), ``--out`` (default ``default_out``), ``--smoke`` and
    ``--seed``. Returns ``parser``."""
    parser.add_argument("--data-root", default=default_data_root(), help=DATA_ROOT_HELP)
    parser.add_argument("--out", default=default_out, help=f"output folder ({default_out})")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny synthetic data written in the real formats, 1 epoch")
    parser.add_argument("--seed", type=int, default=0)
    return parser
