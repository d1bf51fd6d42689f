"""``load`` (a Keras model, to predict or fine-tune) and ``load_serving`` (the SavedModel).

Loading never unpickles: weights come from ``.keras`` files read with
``keras.saving.load_model(..., safe_mode=True)``, which refuses Lambda layers and other
arbitrary code, and every file is verified against the entry's sha256 first.
"""

import os
import warnings

from keras_fer.validation import check_int, is_path
from keras_fer.zoo import store
from keras_fer.zoo.registry import describe


def _load_keras_file(path):
    from keras_fer.models import load_model

    return load_model(path)


def _build(entry, num_classes):
    from keras_fer.models import create_model
    from keras_fer.models.ensemble import ARCH

    if entry.arch == ARCH:
        raise ValueError(f"zoo model {entry.name!r} is an ensemble of trained models: it has "
                         f"no untrained form; load it with weights=True")
    model = create_model(entry.arch, num_classes=num_classes, input_shape=entry.input_shape,
                         **entry.arch_options)
    if tuple(getattr(model, "mean", entry.mean)) != entry.mean or \
            tuple(getattr(model, "std", entry.std)) != entry.std:
        raise ValueError(
            f"zoo model {entry.name!r}: create_model({entry.arch!r}, ...) normalises with mean "
            f"{list(model.mean)} / std {list(model.std)} but the entry says {list(entry.mean)}"
            f" / {list(entry.std)}; a fresh model would not match the published one. Load the "
            f"published weights (weights=True) instead.")
    return model


def _check_matches(model, entry, source):
    arch = getattr(model, "arch", None)
    shape = tuple(int(v) for v in model.input_shape[1:])
    if arch != entry.arch or shape != entry.input_shape:
        raise ValueError(
            f"{source}: holds architecture {arch!r} with input {shape}, but zoo model "
            f"{entry.name!r} is {entry.arch!r} with input {entry.input_shape}; pass a file of "
            f"the same architecture, or load it directly with keras.saving.load_model")


def transfer_weights(source, target, skip_layers=("predictions",)):
    """Copies into every layer of ``target`` the weights of the ``source`` layer at the same
    path (``keras_fer.layers.walk.weighted_leaves``: layer names from the top, nested models
    and modules included) when all their shapes match, except the layers named in
    ``skip_layers``. The two models may differ: a new head, attention modules inserted, a stem
    without its pool. Returns the paths of the layers left as initialised (no namesake in
    ``source``, other shapes, or skipped). Raises ``ValueError`` when nothing matches: two
    models with nothing in common are never what a transfer meant."""
    from keras_fer.layers.walk import weighted_leaves

    sources = weighted_leaves(source)
    copied, fresh = 0, []
    for path, layer in weighted_leaves(target).items():
        twin = sources.get(path)
        if (twin is None or path.split("/")[-1] in skip_layers
                or [tuple(w.shape) for w in twin.weights]
                != [tuple(w.shape) for w in layer.weights]):
            fresh.append(path)
            continue
        layer.set_weights(twin.get_weights())
        copied += 1
    if not copied:
        raise ValueError(f"no layer of {target.name!r} has a namesake with the same weight "
                         f"shapes in {source.name!r}")
    return sorted(fresh)


def with_new_head(model, num_classes, class_names=None):
    """``model`` (a ``FERClassifier`` from the registry) rebuilt for ``num_classes``
    classes: every weight is kept except the final Dense ``predictions`` (freshly
    initialised) and any other weight whose shape depends on the class count. Class names
    are ``class_names`` or generic (``"0"``, ``"1"``, ...)."""
    from keras_fer.models import create_model
    from keras_fer.models.ensemble import refuse_ensemble

    refuse_ensemble(model, "with_new_head")
    arch = getattr(model, "arch", None)
    if not arch:
        raise ValueError("with_new_head needs a model built by keras_fer.models.create_model "
                         "(it has no 'arch' attribute)")
    new = create_model(arch, num_classes=num_classes, input_shape=model.image_shape,
                       **model.arch_options)
    transfer_weights(model, new)
    new.class_names = _class_names(class_names, num_classes)
    return new


def _class_names(class_names, num_classes):
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
    return class_names


def load(name, weights=True, num_classes=None, class_names=None):
    """A Keras model of zoo entry ``name``, ready to predict (on [0, 255] pixels of the
    entry's input size; it outputs logits) or to fine-tune (it is not compiled).

    Args:
        name: an entry name (``list_models()``) or a ``ZooEntry``.
        weights: True: the published weights (cache, then bundled files, then the entry's url;
            sha256-checked); False: a freshly initialised model of the same architecture; a
            path: that ``.keras`` file (it must hold the entry's architecture and input size).
        num_classes: a class count different from the entry's gives a new, freshly
            initialised head on the loaded backbone (transfer learning).
        class_names: names for the classes; default: the entry's, or ``"0"``, ``"1"``, ...
            with a new head.
    """
    entry = describe(name)
    num_classes = check_int(num_classes, "num_classes", 2, allow_none=True)
    new_head = num_classes is not None and num_classes != entry.num_classes
    if weights is True:
        root = store.locate(entry, entry.keras_file)
        model = _load_keras_file(str(root / entry.keras_file))
    elif weights is False or weights is None:
        model = _build(entry, num_classes if new_head else entry.num_classes)
        model.class_names = (_class_names(class_names, num_classes) if new_head
                             else list(entry.class_names))
        new_head = False
    elif isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights: {path} does not exist")
        if not path.endswith(".keras"):
            raise ValueError(f"weights must be a .keras file (no pickles, no HDF5), got {path}")
        model = _load_keras_file(path)
        _check_matches(model, entry, path)
        new_head = num_classes is not None and num_classes != int(model.output_shape[-1])
    else:
        raise ValueError(f"weights must be True, False or a path to a .keras file, got "
                         f"{weights!r}")
    if new_head:
        return with_new_head(model, num_classes, class_names)
    if class_names is not None:
        model.class_names = _class_names(class_names, int(model.output_shape[-1]))
    return model



def _names_a_file(name):
    """Whether a model argument is meant as a file (ends in .keras or has a path separator)."""
    return name.endswith(".keras") or os.sep in name or bool(os.altsep and os.altsep in name)


def model_problem(model):
    """What is wrong with ``model`` (a path or zoo name, as ``load_model`` takes it), found
    without loading anything: a missing file or an unknown zoo name; ``None`` if nothing. The
    command line calls it before paying for TensorFlow's start-up."""
    name = os.fsdecode(model)
    if os.path.isfile(name):
        return None
    if _names_a_file(name):
        return f"model: file not found: {name}"
    try:
        describe(name)
    except ValueError as err:
        return f"model: {err}"
    return None


def load_model(model):
    """A Keras model from ``model``: a ``keras.Model`` (returned as is), the path of an existing
    ``.keras`` file (``keras_fer.models.load_model``: Keras' ``safe_mode``), or a zoo name
    (``load``). What the app (``keras-fer predict``, ``Predictor``) accepts as a model.

    A string that names a file path (ends in ``.keras`` or contains a path separator) but does
    not exist is an error here rather than a confusing zoo look-up.
    """
    import keras

    if isinstance(model, keras.Model):
        return model
    if not is_path(model):
        raise ValueError(f"model must be a keras.Model, a .keras file or a zoo name, "
                         f"got {type(model).__name__}")
    name = os.fsdecode(model)
    if os.path.isfile(name):
        if not name.endswith(".keras"):
            raise ValueError(f"model: {name} is not a .keras file (save models with "
                             f"model.save('name.keras'))")
        return _load_keras_file(name)
    if _names_a_file(name):
        raise ValueError(f"model: file not found: {name}")
    return load(name)


def load_serving(name):
    """The SavedModel of ``name`` (``tf.saved_model.load``; call
    ``.signatures["serving_default"](images=...)``).

    Uses the published SavedModel files when a lookup place has them; otherwise exports the
    (verified) ``.keras`` file once into
    ``$KERAS_FER_HOME/models/<name>/exported/<sha256 prefix>/<name>/<version>/``: a folder
    keyed by the weights' hash, so it is rebuilt exactly when the weights change. The export
    is recorded in ``exported/<sha256 prefix>/manifest.json`` (the entry's name, the weights'
    sha256, the sha256 of every file of the SavedModel); a cached export that does not match
    its manifest (a missing ``variables/`` folder, a changed or extra file, another model's
    export, no manifest) is exported again, with a warning.
    """
    import tensorflow as tf

    entry = describe(name)
    if entry.serving_files:
        try:
            root = store.locate(entry, entry.serving_files)
            return tf.saved_model.load(str(root / entry.serving_dir))
        except store.MissingFileError:
            pass  # build it from the .keras file below
    keras_root = store.locate(entry, entry.keras_file)
    keras_sha = entry.files[entry.keras_file]["sha256"]
    folder = store.cache_dir(entry.name) / "exported" / keras_sha[:16]
    base, manifest = folder / entry.name, folder / "manifest.json"
    path = base / str(entry.serving_version)
    source = keras_root / entry.keras_file
    warned = False
    for _ in range(2):
        problem = _export_problem(entry, path, manifest, keras_sha)
        if problem is not None:
            if (path.exists() or manifest.exists()) and not warned:
                warnings.warn(f"{path}: {problem}; exporting {source} again", RuntimeWarning,
                              stacklevel=2)
            _export(entry, base, path, manifest, keras_sha)
        served = tf.saved_model.load(str(path))
        problem = _signature_problem(entry, served)
        if problem is None:
            return served
        # Matches its manifest, yet is not this entry's model: the manifest was copied too.
        warnings.warn(f"{path}: {problem}; exporting {source} again", RuntimeWarning,
                      stacklevel=2)
        warned = True
        manifest.unlink(missing_ok=True)
    raise store.ZooFileError(f"{path}: {problem} even after exporting {source} again; "
                             f"delete {folder} and retry")


def _export_manifest(entry, path, keras_sha):
    from keras_fer.zoo.serving import EXPORT_FORMAT

    return {"name": entry.name, "keras_sha256": keras_sha,
            "serving_version": entry.serving_version, "export_format": EXPORT_FORMAT,
            "files": store.hash_tree(path)}


def _export_problem(entry, path, manifest, keras_sha):
    """Why the cached export at ``path`` cannot be served for ``entry`` (None if it can)."""
    import json

    if not path.is_dir():
        return "no export yet"
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no manifest {manifest} (an export from an older keras-fer, or interrupted)"
    except (OSError, ValueError) as err:
        return f"unreadable manifest {manifest} ({err})"
    from keras_fer.zoo.serving import EXPORT_FORMAT

    # export_format: an export written by an older export_serving lacks its later checks.
    expected = {"name": entry.name, "keras_sha256": keras_sha,
                "serving_version": entry.serving_version, "export_format": EXPORT_FORMAT}
    if not isinstance(recorded, dict) or \
            {k: recorded.get(k) for k in expected} != expected:
        return f"the manifest {manifest} is for another model or version"
    files = recorded.get("files")
    actual = store.hash_tree(path)
    if files != actual:
        missing = sorted(set(files or {}) - set(actual))
        changed = sorted(f for f in actual if f not in (files or {}) or files[f] != actual[f])
        return (f"does not match its manifest (missing: {', '.join(missing) or 'none'}; "
                f"changed or extra: {', '.join(changed) or 'none'})")
    return None


def _export(entry, base, path, manifest, keras_sha):
    import json

    from keras_fer.zoo.serving import export_serving

    manifest.unlink(missing_ok=True)  # no manifest: the export is not trusted until it is done
    try:
        export_serving(load(entry), base, version=entry.serving_version,
                       class_names=entry.class_names, overwrite=path.exists())
    except FileExistsError:
        pass  # another process exported the same weights meanwhile; checked below
    store.write_text_atomic(manifest, json.dumps(_export_manifest(entry, path, keras_sha),
                                                 indent=1) + "\n")


def _signature_problem(entry, served):
    """A second line of defence behind the hashes: the SavedModel's own class list and input
    size must be the entry's."""
    try:
        names = [n.decode() for n in served.signatures["class_names"]()["class_names"].numpy()]
        spec = served.signatures["serve_preprocessed"].structured_input_signature[1]["pixels"]
    except (KeyError, AttributeError, TypeError) as err:
        return f"lacks the keras-fer signatures ({err})"
    if names != list(entry.class_names):
        return (f"holds a model of {len(names)} classes {names}, not the entry's "
                f"{entry.num_classes} {list(entry.class_names)}")
    if tuple(spec.shape.as_list()[1:]) != tuple(entry.input_shape):
        return (f"takes input {tuple(spec.shape.as_list()[1:])}, not the entry's "
                f"{tuple(entry.input_shape)}")
    return None
