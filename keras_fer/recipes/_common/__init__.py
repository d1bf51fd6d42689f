"""What the recipes share, one module per job; this package gathers their API under one name
(``from keras_fer.recipes import _common as C``).

A recipe builds a list of ``Run`` objects (one ``TrainConfig`` + its train/validation
``FERDataset`` + the table tags it fills), usually over an ``itertools.product`` grid with keys
from ``run_key``, and hands them to ``run_all``, which trains each through
``keras_fer.training.train`` and returns one summary row per run; ``aggregate`` averages
folds, ``markdown_table`` lays rows out like the paper's table and ``write_results`` prints it
and writes ``results.md`` + ``results.json``.

* ``arguments``: ``make_parser(recipe, description)``, ``prepare(args, recipe, smoke_data)``:
  the common command line (``--data-root``, ``--out``, ``--smoke``, ``--paper``,
  ``--epochs``, ``--batch-size``, ``--models``, ``--datasets``, ``--seed``, ``--force``,
  ``--weights-dir``, ``--verbose``) and its resolution; ``default_data_root()`` and
  ``require_data_root()`` (``--data-root`` or ``$KERAS_FER_DATA``, else a clear error);
  ``mode_of``, ``sizes_note``, ``selected``; ``add_data_args`` for the generator recipes.
* ``data``: ``load_dataset(name, data_root)``, ``protocol_splits(dataset, protocol, ...)``,
  ``splits_under(dataset, protocols, ...)``, ``subsample(dataset, per_class, seed)``: the
  datasets the papers use, split the papers' way (``random``) or subject-independently
  (``subject``), or by the official split; ``weights_for`` / ``arch_weights`` /
  ``with_weights``: local timm checkpoints, named by the model registry's ``timm_name``.
* ``runner``: ``Run``, ``run_key``, ``run_all(runs, out, force)``, ``BestEpochWeights``,
  ``base_config``: training and resuming.
* ``tables``: ``aggregate(rows, keys)``, ``markdown_table(rows, columns)``,
  ``write_results(...)``, ``fmt_pct``, ``fmt_seconds``, ``fmt_millions``, ``exit_code``.
* ``smoke``: the ``--smoke`` data, a recipe's ``SMOKE_DATA`` (``{dataset: synthetic writer
  options}``) written once under its output; ``write_smoke_ckplus48``, ``write_smoke_mnist``.
* ``jsonio``: ``write_json``, ``read_json`` (NumPy values become numbers and lists).
* ``paired``: ``paired_comparison(values, baseline)``: two settings on the same folds, the mean
  difference, paired t-test and Wilcoxon signed-rank p-values.
"""

from keras_fer.recipes._common.arguments import (
    DATA_ENV,
    add_data_args,
    default_data_root,
    make_parser,
    mode_of,
    prepare,
    require_data_root,
    selected,
    sizes_note,
)
from keras_fer.recipes._common.data import (
    CKPLUS_CLASSES,
    DATA_FOLDERS,
    arch_weights,
    load_dataset,
    protocol_splits,
    splits_under,
    subsample,
    weights_for,
    with_weights,
)
from keras_fer.recipes._common.jsonio import json_ready, read_json, write_json
from keras_fer.recipes._common.paired import paired_comparison
from keras_fer.recipes._common.runner import (
    BestEpochWeights,
    Run,
    base_config,
    run_all,
    run_key,
    run_one,
    summarize,
)
from keras_fer.recipes._common.smoke import write_smoke_ckplus48, write_smoke_mnist
from keras_fer.recipes._common.tables import (
    aggregate,
    exit_code,
    fmt_millions,
    fmt_pct,
    fmt_seconds,
    markdown_table,
    write_results,
)

__all__ = [
    "DATA_ENV", "add_data_args", "default_data_root", "make_parser", "mode_of", "prepare",
    "require_data_root", "selected", "sizes_note", "CKPLUS_CLASSES", "DATA_FOLDERS",
    "arch_weights", "load_dataset", "protocol_splits", "splits_under", "subsample",
    "weights_for", "with_weights", "json_ready", "read_json", "write_json", "paired_comparison",
    "BestEpochWeights",
    "Run", "base_config", "run_all", "run_key", "run_one", "summarize", "write_smoke_ckplus48",
    "write_smoke_mnist", "aggregate", "exit_code", "fmt_millions", "fmt_pct", "fmt_seconds",
    "markdown_table", "write_results",
]
