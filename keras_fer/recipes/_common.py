"""What the paper recipes share: arguments, data, running a list of trainings, result tables.

A recipe builds a list of ``Run`` objects (one ``TrainConfig`` + its train/validation
``FERDataset`` + the table tags it fills) and hands them to ``run_all``, which trains each
through ``keras_fer.training.train`` and returns one summary row per run; ``aggregate``
averages folds, ``markdown_table`` lays rows out like the paper's table and
``write_results`` prints it and writes ``results.md`` + ``results.json``.

The API, kept small on purpose (the generator recipes use it too):

* ``default_data_root()``, ``make_parser(recipe, description)``, ``prepare(args, recipe,
  smoke_writer)``: the common command line (``--data-root``, ``--out``, ``--smoke``,
  ``--paper``, ``--epochs``, ``--batch-size``, ``--models``, ``--datasets``, ``--seed``,
  ``--force``, ``--weights-dir``, ``--verbose``) and its resolution.
* ``load_dataset(name, data_root)``, ``protocol_splits(dataset, protocol, ...)``,
  ``subsample(dataset, per_class, seed)``: the datasets the papers use, split the papers' way
  (``random``) or subject-independently (``subject``), or by the official split.
* ``Run``, ``run_all(runs, out, force)``, ``BestEpochWeights``: training and resuming.
* ``aggregate(rows, keys)``, ``markdown_table(rows, columns)``, ``write_results(...)``,
  ``fmt_pct``, ``fmt_seconds``, ``fmt_millions``: the tables.
* For the generator recipes (which import this file as a top-level ``_common``):
  ``add_data_args(parser, default_out)``, ``write_json``, ``read_json``,
  ``write_smoke_ckplus48``, ``write_smoke_mnist``.

Resuming: every run lives in ``<out>/<run key>/``. A finished run leaves ``result.json``
(its summary row and the config it ran with); re-running the recipe reuses it when the config
is unchanged. An unfinished run resumes from its last checkpoint (``train``'s own resume).
``--force`` deletes a run's folder first.
"""

import argparse
import dataclasses
import json
import math
import os
import shutil
import time
import traceback

import numpy as np

#: CK+48's own seven classes (its folders), in canonical order: CK+ has contempt, not neutral.
CKPLUS_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "contempt")
#: Dataset folder names under the data root (the layout of ``../shared/data``).
DATA_FOLDERS = {"ckplus48": "ckplus48", "jaffe": "jaffe", "fer2013": "fer2013",
                "ferplus": "ferplus"}


def default_data_root():
    """``$KERAS_FER_DATA``, else ``../shared/data`` (relative to the working directory)."""
    return os.environ.get("KERAS_FER_DATA") or os.path.join("..", "shared", "data")


def make_parser(recipe, description):
    """The arguments every recipe takes; a recipe adds its own to the returned parser."""
    p = argparse.ArgumentParser(prog=f"keras-fer train {recipe}", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None,
                   help="folder holding the datasets in the layout of ../shared/data "
                        "(default: $KERAS_FER_DATA or ../shared/data)")
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


def prepare(args, recipe, smoke_writer=None):
    """Resolves ``args.out`` and ``args.data_root`` in place and returns ``args``.

    With ``--smoke``, ``smoke_writer(folder)`` writes the recipe's tiny datasets (in the real
    on-disk formats, see ``keras_fer.datasets.synthetic``) into ``<out>/data`` once, and the
    data root points there.
    """
    suffix = {"smoke": "-smoke", "paper": "-paper", "cpu": ""}[mode_of(args)]
    args.out = os.path.abspath(args.out or os.path.join("runs", recipe + suffix))
    os.makedirs(args.out, exist_ok=True)
    if args.smoke:
        folder = os.path.join(args.out, "data")
        marker = os.path.join(folder, ".complete")
        if not os.path.exists(marker):
            shutil.rmtree(folder, ignore_errors=True)
            if smoke_writer is None:
                raise ValueError(f"recipe {recipe!r} has no smoke data writer")
            smoke_writer(folder)
            with open(marker, "w") as f:
                f.write("synthetic smoke data, keras_fer.datasets.synthetic\n")
        args.data_root = folder
    args.data_root = os.path.abspath(args.data_root or default_data_root())
    if not os.path.isdir(args.data_root):
        raise SystemExit(f"--data-root {args.data_root} is not a folder (set KERAS_FER_DATA or "
                         "pass --data-root; --smoke needs no data)")
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


def weights_for(timm_name, weights_dir):
    """Path of a local timm checkpoint for ``timm_name`` in ``weights_dir``, or None."""
    if not weights_dir or not timm_name:
        return None
    for candidate in (os.path.join(weights_dir, f"{timm_name}.safetensors"),
                      os.path.join(weights_dir, timm_name, "model.safetensors")):
        if os.path.isfile(candidate):
            return candidate
    return None


# ---- data ----------------------------------------------------------------------------------

def load_dataset(name, data_root, **options):
    """A dataset the way the recipes train on it.

    ``ckplus48``: the seven CK+ folders as classes (``CKPLUS_CLASSES``: contempt, no neutral),
    as the papers train it. ``jaffe``: its seven classes. ``fer2013``: 7 classes, Training and
    PublicTest rows (PrivateTest is held out in the shared copy). ``ferplus``: majority labels
    with vote distributions, Training and PublicTest. ``options`` go to the reader.
    """
    from keras_fer import datasets

    if name not in DATA_FOLDERS:
        raise ValueError(f"name must be one of {sorted(DATA_FOLDERS)}, got {name!r}")
    root = os.path.join(data_root, DATA_FOLDERS[name])
    if name == "ckplus48":
        return datasets.load("ckplus48", root, **options).select_classes(CKPLUS_CLASSES)
    if name in ("fer2013", "ferplus"):
        options.setdefault("split", ["Training", "PublicTest"])
    return datasets.load(name, root, **options)


def subsample(dataset, per_class, seed=0, name=None):
    """At most ``per_class`` random records of each class (all of a smaller class), in the
    dataset's order: a CPU-sized, class-stratified share of a large set (FER2013)."""
    if per_class is None:
        return dataset
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) \
            or per_class < 1:
        raise ValueError(f"per_class must be an integer >= 1 or None, got {per_class!r}")
    rng = np.random.default_rng(seed)
    labels = dataset.labels()
    keep = []
    for c in range(len(dataset.classes)):
        members = np.flatnonzero(labels == c)
        if len(members) > per_class:
            members = rng.choice(members, size=per_class, replace=False)
        keep.append(members)
    keep = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    return dataset.subset(keep, name or f"{dataset.name}[<= {per_class}/class]")


def protocol_splits(dataset, protocol, folds=5, test_fraction=0.2, seed=0, max_folds=None):
    """``[(tags, train, test)]`` for one evaluation protocol.

    * ``"random"``: the papers' single random, class-stratified split with ``test_fraction``
      held out. On CK+48 and JAFFE it leaks (three frames of a sequence, several takes of a
      poser, land on both sides; SPEC 001): report it next to ``"subject"``.
    * ``"subject"``: ``folds`` subject-independent folds (``splits.subject_kfold``; CK+48's
      ``S###`` subjects, JAFFE's posers), at most ``max_folds`` of them run.
    * ``"official"``: the dataset's own Training / PublicTest rows (FER2013, FERPlus).
    """
    from keras_fer.datasets import splits

    if protocol == "random":
        train_idx, test_idx = splits.random_split(
            dataset, (1.0 - test_fraction, test_fraction), seed=seed)
        return [({"protocol": "random", "fold": 0},
                 dataset.subset(train_idx, f"{dataset.name}/random/train"),
                 dataset.subset(test_idx, f"{dataset.name}/random/test"))]
    if protocol == "subject":
        all_folds = splits.subject_kfold(dataset, folds, seed=seed)
        out = []
        for i, (train_idx, test_idx) in enumerate(all_folds[:max_folds or folds]):
            splits.check_subject_independent(dataset, train_idx, test_idx)
            out.append(({"protocol": "subject", "fold": i},
                        dataset.subset(train_idx, f"{dataset.name}/subject{i}/train"),
                        dataset.subset(test_idx, f"{dataset.name}/subject{i}/test")))
        return out
    if protocol == "official":
        parts = dataset.split_indices()
        if "Training" not in parts or "PublicTest" not in parts:
            raise ValueError(f"dataset {dataset.name!r} has splits {list(parts)}; the official "
                             "protocol needs Training and PublicTest")
        return [({"protocol": "official", "fold": 0},
                 dataset.subset(parts["Training"], f"{dataset.name}/Training"),
                 dataset.subset(parts["PublicTest"], f"{dataset.name}/PublicTest"))]
    raise ValueError(f"protocol must be 'random', 'subject' or 'official', got {protocol!r}")


# ---- running -------------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    """One training of a recipe: ``key`` names it (and its folder under the output), ``tags``
    are the table columns it fills (model, dataset, protocol, fold, variant, ...)."""

    key: str
    config: object  # keras_fer.training.TrainConfig
    train_data: object = None
    val_data: object = None
    tags: dict = dataclasses.field(default_factory=dict)


def _best_epoch_callback():
    import keras

    class BestEpochWeights(keras.callbacks.Callback):
        """Keeps the weights of the epoch with the highest ``monitor`` (validation accuracy)
        on disk and loads them back when training ends, so the evaluation report describes
        the best epoch: the papers' "accuracy @ best epoch" (seeds 002, 003).

        Selecting the epoch on the test split is the papers' protocol and is optimistic; the
        summary row also keeps the last epoch's accuracy. ``best``/``best_epoch`` are plain
        numbers so the training loop's checkpoint carries them across a restart.
        """

        def __init__(self, path, monitor="val_accuracy"):
            super().__init__()
            self.path, self.monitor = path, monitor
            self.best, self.best_epoch = -math.inf, -1

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(self.monitor)
            if value is not None and value > self.best:
                self.best, self.best_epoch = float(value), int(epoch)
                self.model.save_weights(self.path)

        def on_train_end(self, logs=None):
            if os.path.exists(self.path):
                self.model.load_weights(self.path)

    return BestEpochWeights


def BestEpochWeights(path, monitor="val_accuracy"):  # noqa: N802 - a class, built lazily
    """A callback restoring the best epoch's weights at the end (see its docstring); built on
    first use so that importing the recipes does not import TensorFlow."""
    return _best_epoch_callback()(path, monitor)


def _comparable(config_dict):
    return {k: v for k, v in config_dict.items() if k not in ("verbose", "out_dir")}


def _json_ready(value):
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist")
                                 else str(o)))


def summarize(run, result):
    """The summary row of a finished run: its tags plus accuracy at the best epoch (the
    evaluation report, written after the best weights are restored), the last epoch's
    accuracy, mean per-class accuracy (the papers' "Average"), per-class accuracy, weighted
    P/R/F1, parameters, FLOPs and training time."""
    report, history = result.report, result.history
    val_acc = [h.get("val_accuracy", float("nan")) for h in history]
    best = int(np.nanargmax(val_acc)) if history and not np.all(np.isnan(val_acc)) else -1
    row = dict(run.tags)
    row.update(
        key=run.key,
        accuracy=report.get("accuracy"),
        mean_class_accuracy=report.get("macro", {}).get("recall"),
        best_epoch=best + 1 if best >= 0 else None,
        last_accuracy=val_acc[-1] if val_acc else None,
        epochs=len(history),
        train_seconds=report.get("train_seconds"),
        params=report.get("params", {}).get("total"),
        flops=report.get("flops"),
        weighted=report.get("weighted"),
        per_class={k: v["recall"] for k, v in report.get("per_class", {}).items()},
        per_class_prf={k: {m: v[m] for m in ("precision", "recall", "f1", "support")}
                       for k, v in report.get("per_class", {}).items()},
        confusion_matrix=report.get("confusion_matrix"),
        accuracy_7class=report.get("accuracy_7class"),
        n_train=len(run.train_data) if run.train_data is not None else None,
        n_test=report.get("num_samples"),
        report=os.path.join(result.out_dir, "evaluation", "report.md"),
    )
    return _json_ready(row)


def run_all(runs, out, force=False, log=print, select_best=True):
    """Trains every run (resuming unfinished ones, reusing finished ones) and returns their
    summary rows in order. A run that fails is reported (row with ``error``) and the others
    go on: one model that does not fit must not cost the rest of a long sweep.

    ``select_best``: evaluate the weights of the epoch with the best validation accuracy (the
    papers' protocol, optimistic); False evaluates the last epoch (what the zoo publishes)."""
    import keras

    from keras_fer.training import train

    rows = []
    keys = [r.key for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"run keys must be unique, got duplicates in {keys}")
    for i, run in enumerate(runs, 1):
        out_dir = os.path.join(out, *run.key.split("/"))
        config = run.config.replace(out_dir=out_dir)
        result_path = os.path.join(out_dir, "result.json")
        if force and os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        if os.path.exists(result_path):
            with open(result_path) as f:
                saved = json.load(f)
            if _comparable(saved.get("config", {})) == _comparable(
                    _json_ready(config.to_dict())):
                log(f"[{i}/{len(runs)}] {run.key}: done before, reusing {result_path}")
                rows.append(saved["row"])
                continue
            log(f"[{i}/{len(runs)}] {run.key}: settings changed since the saved result; "
                "training (resuming any checkpoint; --force starts over)")
        log(f"[{i}/{len(runs)}] {run.key}: {config.arch} {config.arch_options or ''} "
            f"input {config.input_shape}, {config.epochs} epochs, "
            f"{len(run.train_data) if run.train_data is not None else '?'} train / "
            f"{len(run.val_data) if run.val_data is not None else '?'} test images")
        t0 = time.time()
        try:
            os.makedirs(out_dir, exist_ok=True)
            extra = ([BestEpochWeights(os.path.join(out_dir, "best.weights.h5"))]
                     if select_best and run.val_data is not None else [])
            result = train(config, run.train_data, run.val_data, extra_callbacks=extra)
            row = summarize(run, result)
        except Exception as err:  # noqa: BLE001 - reported in the row and the log
            log(f"[{i}/{len(runs)}] {run.key}: FAILED: {type(err).__name__}: {err}")
            traceback.print_exc()
            row = _json_ready(dict(run.tags, key=run.key,
                                   error=f"{type(err).__name__}: {err}"))
            rows.append(row)
            keras.backend.clear_session()
            continue
        row["wall_seconds"] = time.time() - t0
        with open(result_path, "w") as f:
            json.dump({"config": _json_ready(config.to_dict()), "row": row}, f, indent=1)
        log(f"[{i}/{len(runs)}] {run.key}: accuracy {fmt_pct(row['accuracy'])} "
            f"(best epoch {row['best_epoch']}, last {fmt_pct(row['last_accuracy'])}), "
            f"{fmt_seconds(row['train_seconds'])} training")
        rows.append(row)
        keras.backend.clear_session()  # a sweep builds many models: free the last one's graph
    return rows


# ---- tables --------------------------------------------------------------------------------

def aggregate(rows, keys, metrics=("accuracy", "mean_class_accuracy", "last_accuracy",
                                   "train_seconds", "best_epoch")):
    """Rows grouped by the values of ``keys`` (first-seen order): every metric becomes its
    mean over the group, ``<metric>_std`` its standard deviation (population, 0 for one
    row), ``n`` the group size; per-class accuracies and weighted P/R/F1 are averaged too.
    Failed rows are left out of the means and counted in ``failed``."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    out = []
    for values, members in groups.items():
        ok = [r for r in members if "error" not in r]
        agg = dict(zip(keys, values), n=len(ok), failed=len(members) - len(ok))
        agg.update({k: ok[0][k] for k in ("params", "flops", "epochs") if ok and k in ok[0]})
        for metric in metrics:
            vals = [r[metric] for r in ok if r.get(metric) is not None]
            agg[metric] = float(np.mean(vals)) if vals else None
            agg[f"{metric}_std"] = float(np.std(vals)) if vals else None
        for nested in ("per_class", "weighted"):
            dicts = [r[nested] for r in ok if r.get(nested)]
            if dicts:
                agg[nested] = {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]}
        if not ok:
            agg["error"] = members[0].get("error")
        out.append(agg)
    return out


def fmt_pct(value, std=None):
    """``0.9231`` -> ``"92.31"`` (with ``" ± s"`` when a std over folds is given)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{100 * value:.2f}"
    return text + (f" ± {100 * std:.2f}" if std else "")


def fmt_seconds(seconds):
    """``373.2`` -> ``"6m13s"``, the papers' training-time format."""
    if seconds is None:
        return "n/a"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def fmt_millions(count):
    return "n/a" if count is None else f"{count / 1e6:.2f}"


def markdown_table(rows, columns):
    """A Markdown table: ``columns`` is ``[(header, key or function(row) -> text)]``; a row
    with ``error`` shows it in place of the missing values."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for _, how in columns:
            try:
                value = how(row) if callable(how) else row.get(how)
            except (KeyError, TypeError):
                value = None
            cells.append("n/a" if value is None else str(value))
        if row.get("error") and row.get("n", 0) == 0:
            cells[-1] = f"FAILED: {row['error'][:80]}"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(out, title, sections, rows, notes=(), settings=None):
    """Prints the tables and writes ``<out>/results.md`` and ``<out>/results.json``.

    ``sections``: ``[(heading, markdown table)]``; ``rows``: every summary row (JSON);
    ``notes``: lines printed under the title (mode, data, caveats); ``settings``: a dict
    recorded in the JSON (the command's arguments)."""
    parts = [f"# {title}", ""]
    parts += [f"- {n}" for n in notes]
    for heading, table in sections:
        parts += ["", f"## {heading}", "", table]
    text = "\n".join(parts) + "\n"
    print(text)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(_json_ready({"title": title, "settings": settings or {}, "rows": rows}),
                  f, indent=1)
    return text


def exit_code(rows):
    """0 when every run finished, 1 when any failed (for CI)."""
    return 1 if any("error" in r for r in rows) else 0


def base_config(**values):
    """A ``TrainConfig`` with the recipes' common choices (one line per epoch, TensorBoard on)
    overridden by ``values``."""
    from keras_fer.training import TrainConfig

    values.setdefault("verbose", 2)
    return TrainConfig(**values)


def sizes_note(mode):
    """The line every recipe prints about what its mode is."""
    return {
        "smoke": "mode: --smoke (synthetic data in the real formats, tiny models, 1 epoch): "
                 "checks the plumbing; the numbers mean nothing",
        "cpu": "mode: CPU defaults (small inputs, tiny/small model variants, few epochs): "
               "the papers' comparisons in kind, not their numbers",
        "paper": "mode: --paper (the paper's input size, optimiser and epochs; random "
                 "initialisation unless --weights-dir gives timm checkpoints): a GPU job",
    }[mode]


# ---- helpers of the generator recipes (generator_mnist, generator_faces, ---------------------
# ---- synthetic_augmentation), which import this module as a top-level ``_common``) ---------

def add_data_args(parser, default_out):
    """Adds ``--data-root`` (default ``$KERAS_FER_DATA`` or ``../shared/data``), ``--out``
    (default ``default_out``), ``--smoke`` and ``--seed`` to ``parser``; returns it."""
    parser.add_argument("--data-root", default=default_data_root(),
                        help="folder holding the datasets in the layout of ../shared/data "
                             "(default: $KERAS_FER_DATA or ../shared/data)")
    parser.add_argument("--out", default=default_out, help=f"output folder ({default_out})")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny synthetic data written in the real formats, 1 epoch")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def write_json(path, value):
    """``value`` as indented JSON (NumPy scalars and arrays become numbers and lists),
    written atomically (a killed run never leaves half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_json_ready(value), f, indent=1)
    os.replace(tmp, path)
    return path


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_smoke_ckplus48(folder, seed=0, subjects=6):
    """A tiny CK+48 tree in the real layout under ``folder`` (``keras_fer.datasets.
    synthetic.write_ckplus48``: seven classes, ``subjects`` subjects, 3 frames each; enough
    subjects for 5 subject folds). Returns the root to pass to the ckplus48 reader."""
    from keras_fer.datasets import synthetic

    return synthetic.write_ckplus48(folder, subjects=subjects, seed=seed)


def write_smoke_mnist(path, seed=0, n_train=600, n_test=100):
    """A small Keras-layout ``mnist.npz`` of drawn digits at ``path`` (see
    ``keras_fer.datasets.synthetic.write_mnist``). Returns ``path``."""
    from keras_fer.datasets import synthetic

    return synthetic.write_mnist(path, n_train=n_train, n_test=n_test, seed=seed)
