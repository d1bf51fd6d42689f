"""``publish``: a trained model -> a zoo release (weights, SavedModel, model card, entry).

Layout (``root`` is ``out_dir``, by default ``$KERAS_FER_HOME``, so a published model is at
once in the local cache and the registry; any ``out_dir`` has the same layout, so it can be
used as a ``KERAS_FER_HOME`` or uploaded as a whole and named by an entry's ``url``)::

    root/entries/<name>.json                          the registry entry (with sha256s)
    root/models/<name>/<name>.keras                   weights + config, no optimizer state
    root/models/<name>/serving/<name>/<version>/      SavedModel (TF Serving's layout)
    root/models/<name>/model_card.md, model_card.json
    root/models/<name>/confusion_matrix.png/.csv      copied from ``evaluation_dir``

``bundle=True`` writes the entry into ``keras_fer/zoo/entries/`` and the files into
``keras_fer/zoo/files/<name>/`` instead (shipped inside the wheel), without the SavedModel:
it is several times the size of the ``.keras`` file and ``load_serving`` rebuilds it from the
``.keras`` file on first use. A bundled ``.keras`` file stores its weights as float16 by
default (``weights_dtype``; half the bytes, loaded as float32, verified against the float32
model by ``keras_fer.zoo.compact.store_float16``): the package has a size budget.

Atomicity: the model folder is written under a hidden temporary name next to its target,
and the entry (the only thing the registry reads) into a hidden temporary file next to its
own. Only then are they swapped in: the old folder is moved aside, the new one renamed into
place, the entry renamed over the old one, and the old folder deleted. A failure at any step
(full disk, permissions, an exception) undoes the steps before it, so ``publish`` ends in the
previous state or the new one; ``tests/test_zoo_faults.py`` injects a failure at every write.
A process killed between the two renames leaves the new files under the old entry: loading
then fails on the sha256 check (never a silently wrong model) and publishing again with
``overwrite=True`` repairs it. Other kills leave at worst a hidden ``.<name>.*`` folder or
file that nothing reads.

An existing name is never replaced without ``overwrite=True``, wherever its entry is (the
package's own entries included): the new entry would silently shadow it.
"""

import datetime
import json
import shutil
from pathlib import Path

from keras_fer.zoo import store
from keras_fer.zoo.entry import (
    DEFAULT_INTENDED_USE,
    DEFAULT_LICENCE,
    DEFAULT_LIMITATIONS,
    STORAGE_DTYPES,
    ZooEntry,
    check_name,
    storage_note,
)

EVALUATION_FILES = ("confusion_matrix.png", "confusion_matrix.csv")


def summarize_metrics(report):
    """The entry's ``metrics``: the numbers of an evaluation report (``report.json``) or any
    dict, flat. Top-level numbers are kept; nested dicts are flattened with their keys as
    prefix (``weighted`` -> ``weighted_f1``, ``public_test`` -> ``public_test_accuracy``,
    ``public_test_per_class_recall_angry``); an evaluation report's ``per_class`` table
    (precision, recall, F1 and support of every class), lists (confusion matrices, fold
    accuracies) and text go to the model card only."""
    out = {}
    for key, value in (report or {}).items():
        if _is_number(value):
            out[key] = value
        elif isinstance(value, dict) and key != "per_class":
            out.update({f"{key}_{k}": v for k, v in summarize_metrics(value).items()})
    return out


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def inference_copy(model):
    """``model`` rebuilt from its config with the same weights and no optimizer or compile
    state, so the saved file is small and loads without the training setup, and computing in
    float32: a ``mixed_bfloat16`` training policy is a training speed-up, and kept in a
    published model it makes every user's inference round activations to bfloat16 (less
    accurate, and slow on CPUs without bfloat16 units)."""
    clone = model.__class__.from_config(float32_config(model.get_config()))
    clone.set_weights(model.get_weights())
    return clone


def float32_config(config):
    """A copy of a Keras config in which every mixed-precision dtype policy (the
    ``{"class_name": "DTypePolicy", "config": {"name": "mixed_..."}}`` a layer built under
    ``keras.mixed_precision`` records) is "float32"; variables are float32 under either."""
    if isinstance(config, list):
        return [float32_config(item) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy" and \
            str(config.get("config", {}).get("name", "")).startswith("mixed_"):
        return dict(config, config=dict(config["config"], name="float32"))
    return {key: float32_config(value) for key, value in config.items()}


def _software():
    import keras
    import tensorflow as tf

    import keras_fer

    return {"keras_fer": keras_fer.__version__, "keras": keras.__version__,
            "tensorflow": tf.__version__}


def publish(model, name, metrics=None, *, out_dir=None, version=1, dataset="", protocol="",
            recipe="", evaluation_dir=None, bundle=False, url=None, licence=DEFAULT_LICENCE,
            description="", intended_use=DEFAULT_INTENDED_USE, limitations=DEFAULT_LIMITATIONS,
            overwrite=False, training_history=None, weights_dtype=None):
    """Publishes ``model`` (a ``FERClassifier`` or a path to its ``.keras`` file) as zoo
    entry ``name`` (``arch.tag``) and returns the ``ZooEntry``.

    Args:
        metrics: a dict of measured numbers or a full evaluation report (see
            ``summarize_metrics``); default: ``evaluation_dir/report.json`` when present.
        out_dir: the release root (default ``$KERAS_FER_HOME``); see the module docstring.
        version: the SavedModel version folder (TF Serving serves the highest).
        dataset, protocol, recipe: what the model was trained and measured on, and the exact
            command that trained it.
        evaluation_dir: an ``evaluate_model`` output folder; its confusion matrix (PNG, CSV)
            and report go into the model card.
        bundle: write into the package (``keras_fer/zoo/``) instead of ``out_dir``.
        url: base URL the files will be downloadable from (``<url>/<file>``).
        overwrite: replace an existing release of the same name.
        training_history: the runs that made the weights (a list, or a run's
            ``training_history.json``); default: that file in ``evaluation_dir``'s parent
            (the run folder) when present.
        weights_dtype: how the ``.keras`` file stores the float32 weights: ``"float16"``
            (half the bytes; the default with ``bundle``; refused with a ``ValueError`` if a
            weight does not fit float16 or the outputs move beyond the tolerance of
            ``keras_fer.zoo.compact``) or ``"float32"`` (the default otherwise). The entry's
            sha256 and size are those of the stored file, its ``weights_storage`` says how
            it is stored; the SavedModel is exported from the stored weights.
    """
    check_name(name)
    if weights_dtype is None:
        weights_dtype = "float16" if bundle else "float32"
    if weights_dtype not in STORAGE_DTYPES:
        raise ValueError(f"weights_dtype must be one of {', '.join(STORAGE_DTYPES)} (or None: "
                         f"float16 with bundle, else float32), got {weights_dtype!r}")
    if isinstance(model, (str, Path)):
        from keras_fer.zoo.loading import _load_keras_file

        model = _load_keras_file(str(model))
    arch = getattr(model, "arch", None)
    if not arch or not hasattr(model, "class_names"):
        raise ValueError("model must be a keras_fer FERClassifier (built by create_model): it "
                         "needs 'arch', 'arch_options' and 'class_names' to be published")
    evaluation_dir = Path(evaluation_dir) if evaluation_dir else None
    report = metrics
    if report is None and evaluation_dir and (evaluation_dir / "report.json").is_file():
        report = json.loads((evaluation_dir / "report.json").read_text())
    if report is not None and not isinstance(report, dict):
        raise ValueError(f"metrics must be a dict, got {type(report).__name__}")
    training_history = _training_history(training_history, evaluation_dir)
    entry_path, model_dir = release_paths(name, bundle, out_dir)
    if not overwrite:
        _refuse_existing(name, entry_path, model_dir)

    entry = ZooEntry(
        name=name, arch=arch, arch_options=dict(model.arch_options),
        input_shape=tuple(model.image_shape), mean=model.mean, std=model.std,
        class_names=list(model.class_names), dataset=dataset, protocol=protocol,
        recipe=recipe, metrics=summarize_metrics(report), url=url, licence=licence,
        description=description, intended_use=intended_use, limitations=limitations,
        serving_version=version,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        software=_software(), training_history=training_history)
    inference_model = inference_copy(model)
    # Everything is written into a hidden folder next to model_dir, then swapped in together
    # with the entry by store.commit_release, which undoes the swap if any step fails.
    with store.staging_dir(model_dir) as tmp:
        inference_model.save(str(tmp / entry.keras_file))
        if weights_dtype == "float16":
            from keras_fer.zoo.compact import store_float16
            from keras_fer.zoo.loading import _load_keras_file

            keras_file = tmp / entry.keras_file
            entry.weights_storage = store_float16(keras_file, keras_file,
                                                  reference=inference_model)
            inference_model = _load_keras_file(str(keras_file))  # what users will load
        if not bundle:
            from keras_fer.zoo.serving import export_serving

            export_serving(inference_model, tmp / "serving" / name, version=version,
                           class_names=entry.class_names)
        for filename in EVALUATION_FILES:
            if evaluation_dir and (evaluation_dir / filename).is_file():
                shutil.copyfile(evaluation_dir / filename, tmp / filename)
        write_model_card(tmp, entry, report, inference_model)
        entry.files = store.hash_tree(tmp)
        store.commit_release(tmp, model_dir, entry_path, entry.to_json(), overwrite=overwrite)
    return entry


def release_paths(name, bundle=False, out_dir=None):
    """``(entry file, model folder)`` of release ``name``: in the package (``bundle``), else
    under the release root ``out_dir`` (default ``$KERAS_FER_HOME``)."""
    if bundle:
        return (store.BUNDLED_DIR / "entries" / f"{name}.json",
                store.BUNDLED_DIR / "files" / name)
    root = Path(out_dir) if out_dir else store.home()
    return root / "entries" / f"{name}.json", root / "models" / name


def _training_history(history, evaluation_dir):
    from keras_fer.training.warm_start import HISTORY_FILE, read_history

    if history is None:
        if evaluation_dir is None:
            return []
        history = evaluation_dir.parent / HISTORY_FILE
    if isinstance(history, (str, Path)):
        return read_history(str(history))
    if not isinstance(history, list):
        raise ValueError(f"training_history must be a list or a path, got "
                         f"{type(history).__name__}")
    return history


def _refuse_existing(name, entry_path, model_dir):
    """``FileExistsError`` if ``name`` is already an entry anywhere the registry reads (the
    package's entries included) or at the target: a new entry of the same name would
    silently shadow it, or be shadowed by it."""
    from keras_fer.zoo import registry

    places = [p for p in [entry_path] + [d / f"{name}.json" for d in registry.entry_dirs()]
              if p.is_file()]
    places = list(dict.fromkeys(p.resolve() for p in places))
    if places:
        packaged = (store.BUNDLED_DIR / "entries").resolve()
        where = "; ".join(f"{p}" + (" (shipped with keras-fer)" if p.parent == packaged else "")
                          for p in places)
        raise FileExistsError(
            f"zoo model {name!r} already exists: {where}. Publishing it again would replace "
            f"or shadow that model for every zoo.load / keras-fer predict of this name. Choose "
            f"another name (e.g. {name.split('.')[0]}.mydata), or pass overwrite=True "
            f"(--overwrite) to replace it on purpose.")
    if model_dir.exists():
        raise FileExistsError(f"{model_dir} already exists (files of a model named {name!r} "
                              f"without an entry there); pass overwrite=True (--overwrite) to "
                              f"replace it, or choose another name")


# -- the model card ---------------------------------------------------------------------

def write_model_card(folder, entry, report, model):
    """``model_card.json`` and ``model_card.md`` in ``folder`` (Mitchell et al.'s "Model
    Cards for Model Reporting" sections: model, data, protocol, metrics, intended use,
    limitations). The card names the files but carries no hashes: they are in the entry,
    which is written after the card, so the card can itself be hashed."""
    from keras_fer.evaluation.complexity import count_params

    folder = Path(folder)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    files += ["model_card.json", "model_card.md"]
    card = {
        "name": entry.name, "description": entry.description,
        "model": {"arch": entry.arch, "arch_options": entry.arch_options,
                  "input_shape": list(entry.input_shape), "pixel_range": [0, 255],
                  "mean": list(entry.mean), "std": list(entry.std),
                  "class_names": entry.class_names, "params": count_params(model),
                  "weights_storage": entry.weights_storage or None,
                  "outputs": "logits (the SavedModel returns softmax probabilities)"},
        "data": {"dataset": entry.dataset, "protocol": entry.protocol},
        "training": {"recipe": entry.recipe, "history": entry.training_history},
        "metrics": entry.metrics,
        # The whole report (per-class table, confusion matrix, extra protocols), less the
        # training config, which the recipe already names.
        "evaluation": {k: v for k, v in (report or {}).items() if k != "config"},
        "intended_use": entry.intended_use, "limitations": entry.limitations,
        "licence": entry.licence, "files": sorted(set(files)), "url": entry.url,
        "serving": {"version": entry.serving_version, "signatures": {
            "serving_default": "images: string [N] (encoded JPEG/PNG/GIF/BMP/WebP) -> "
                               "probabilities [N, C], label [N], class_id [N]",
            "serve_preprocessed": f"pixels: float32 [N, {', '.join(map(str, entry.input_shape))}]"
                                  " in [0, 255] -> the same outputs",
            "class_names": "() -> class_names [C]"}} if "serving/" in " ".join(files) else None,
        "created": entry.created, "software": entry.software,
    }
    (folder / "model_card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    (folder / "model_card.md").write_text(model_card_markdown(card))


def _fmt(value):
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def model_card_markdown(card):
    m = card["model"]
    lines = [f"# Model card: `{card['name']}`", ""]
    if card["description"]:
        lines += [card["description"], ""]
    lines += ["## Model", "",
              f"- architecture: `{m['arch']}` with options `{json.dumps(m['arch_options'])}`",
              f"- input: {' x '.join(map(str, m['input_shape']))} pixels in [0, 255]; "
              f"normalised inside the model with mean {m['mean']} and std {m['std']} "
              f"(on the [0, 1] scale)",
              f"- output: {len(m['class_names'])} classes, in order: "
              f"{', '.join(m['class_names'])}",
              f"- parameters: {m['params']['total']:,} ({m['params']['trainable']:,} trainable)"]
    if (m.get("weights_storage") or {}).get("dtype") == "float16":
        lines.append(f"- weights: {storage_note(m['weights_storage'])}")
    lines += ["", "## Data and protocol", "",
              f"- data set: {card['data']['dataset'] or 'not stated'}",
              f"- protocol: {card['data']['protocol'] or 'not stated'}", "",
              "## Training recipe", ""]
    lines += (["```sh", card["training"]["recipe"], "```"] if card["training"]["recipe"]
              else ["not stated"])
    history = card["training"].get("history") or []
    if history:
        lines += ["", "Training history (every run that produced these weights, oldest first):",
                  "", "| run | command | starts from | epochs | images seen | "
                  "validation / test metrics | finished |", "|---|---|---|---|---|---|---|"]
        for i, run in enumerate(history, 1):
            shown = ", ".join(f"{k} {_fmt(v)}" for k, v in (run.get("metrics") or {}).items())
            start = (run.get("config") or {}).get("init") or "random initialisation"
            lines.append(f"| {i} | `{run.get('command') or 'not stated'}` | {start} | "
                         f"{run.get('epochs', '')} | {run.get('images_seen') or ''} | "
                         f"{shown} | {run.get('finished', '')} |")
    lines += ["", "## Metrics", ""]
    if card["metrics"]:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in card["metrics"].items()]
    else:
        lines.append("none recorded")
    per_class = card["evaluation"].get("per_class")
    if per_class:
        lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | "
                  f"{v['support']} |" for c, v in per_class.items()]
    if "confusion_matrix.png" in card["files"]:
        lines += ["", "![confusion matrix](confusion_matrix.png)"]
    lines += ["", "## Intended use", "", card["intended_use"], "",
              "## Limitations", "", card["limitations"], "",
              "## Licence", "", card["licence"], "",
              "## Use", "", "```python", "from keras_fer import zoo", "",
              f"model = zoo.load({card['name']!r})  # Keras model: [0, 255] pixels -> logits",
              f"served = zoo.load_serving({card['name']!r})  # SavedModel: encoded images -> "
              "probabilities", "```", "",
              "## Files", ""]
    lines += [f"- `{f}`" for f in card["files"]]
    lines += ["", "sha256 digests: in the registry entry "
              f"(`keras-fer zoo describe {card['name']} --json`).", "",
              f"Created {card['created']} with "
              + ", ".join(f"{k} {v}" for k, v in card["software"].items()) + "."]
    return "\n".join(lines) + "\n"


# -- a published release, in place ------------------------------------------------------

def compact_release(name, out_dir=None, check=None):
    """Stores the weights of the release ``name`` in float16, in place: the package's own
    bundled release (``out_dir`` None) or the one under the release root ``out_dir``. The
    ``.keras`` file, the model card (``model.weights_storage``) and the entry (sha256, size,
    ``weights_storage``) are replaced together; the returned ``ZooEntry`` is the new one.
    An entry already stored in float16 is returned unchanged. ``check``: see
    ``store_float16``. A release with a SavedModel is refused (it would keep float32
    weights): publish it again with ``weights_dtype="float16"``."""
    from keras_fer.zoo.compact import store_float16

    entry_path, model_dir = release_paths(name, bundle=out_dir is None, out_dir=out_dir)
    entry = ZooEntry.from_json(entry_path)
    if entry.weights_storage.get("dtype") == "float16":
        return entry
    if entry.serving_files:
        raise ValueError(f"{name}: the release has a SavedModel, which would keep float32 "
                         f"weights; publish it again with weights_dtype='float16'")
    for filename, expected in entry.files.items():
        store.verify(model_dir / filename, expected, name, filename)
    with store.staging_dir(model_dir) as tmp:
        shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        keras_file = tmp / entry.keras_file
        entry.weights_storage = store_float16(keras_file, keras_file, check=check)
        card_path = tmp / "model_card.json"
        if card_path.is_file():
            card = json.loads(card_path.read_text())
            card["model"]["weights_storage"] = entry.weights_storage
            card_path.write_text(json.dumps(card, indent=2, default=str) + "\n")
            (tmp / "model_card.md").write_text(model_card_markdown(card))
        entry.files = store.hash_tree(tmp)
        store.commit_release(tmp, model_dir, entry_path, entry.to_json(), overwrite=True)
    return entry

