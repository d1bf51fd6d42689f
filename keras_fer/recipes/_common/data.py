"""The datasets the papers use, split their way, and the checkpoints runs start from."""

import os

import numpy as np

#: CK+48's own seven classes (its folders), in canonical order: CK+ has contempt, not neutral.
CKPLUS_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "contempt")
#: Dataset folder names under the data root (``--data-root`` / ``$KERAS_FER_DATA``).
DATA_FOLDERS = {"ckplus48": "ckplus48", "jaffe": "jaffe", "fer2013": "fer2013",
                "ferplus": "ferplus"}


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


def _random_split(dataset, folds, test_fraction, seed, max_folds):
    from keras_fer.datasets import splits

    train_idx, test_idx = splits.random_split(
        dataset, (1.0 - test_fraction, test_fraction), seed=seed)
    return [({"protocol": "random", "fold": 0},
             dataset.subset(train_idx, f"{dataset.name}/random/train"),
             dataset.subset(test_idx, f"{dataset.name}/random/test"))]


def _subject_folds(dataset, folds, test_fraction, seed, max_folds):
    from keras_fer.datasets import splits

    out = []
    for i, (train_idx, test_idx) in enumerate(
            splits.subject_kfold(dataset, folds, seed=seed)[:max_folds or folds]):
        splits.check_subject_independent(dataset, train_idx, test_idx)
        out.append(({"protocol": "subject", "fold": i},
                    dataset.subset(train_idx, f"{dataset.name}/subject{i}/train"),
                    dataset.subset(test_idx, f"{dataset.name}/subject{i}/test")))
    return out


def _official_split(dataset, folds, test_fraction, seed, max_folds):
    parts = dataset.split_indices()
    if "Training" not in parts or "PublicTest" not in parts:
        raise ValueError(f"dataset {dataset.name!r} has splits {list(parts)}; the official "
                         "protocol needs Training and PublicTest")
    return [({"protocol": "official", "fold": 0},
             dataset.subset(parts["Training"], f"{dataset.name}/Training"),
             dataset.subset(parts["PublicTest"], f"{dataset.name}/PublicTest"))]


def _holdout_split(dataset, folds, test_fraction, seed, max_folds):
    """Training rows only: a class-stratified ``test_fraction`` of them validates (selects
    epochs and settings); PublicTest stays untouched until a model is final."""
    from keras_fer.datasets import splits

    parts = dataset.split_indices()
    if "Training" not in parts:
        raise ValueError(f"dataset {dataset.name!r} has splits {list(parts)}; the holdout "
                         "protocol needs Training")
    training = dataset.subset(parts["Training"], f"{dataset.name}/Training")
    train_idx, val_idx = splits.random_split(training, (1.0 - test_fraction, test_fraction),
                                             seed=seed)
    return [({"protocol": "holdout", "fold": 0},
             training.subset(train_idx, f"{training.name}/train{1 - test_fraction:.0%}"),
             training.subset(val_idx, f"{training.name}/val{test_fraction:.0%}"))]


PROTOCOLS = {"random": _random_split, "subject": _subject_folds, "official": _official_split,
             "holdout": _holdout_split}


def protocol_splits(dataset, protocol, folds=5, test_fraction=0.2, seed=0, max_folds=None):
    """``[(tags, train, test)]`` for one evaluation protocol.

    * ``"random"``: the papers' single random, class-stratified split with ``test_fraction``
      held out. On CK+48 and JAFFE it leaks (three frames of a sequence, several takes of a
      poser, land on both sides; SPEC 001): report it next to ``"subject"``.
    * ``"subject"``: ``folds`` subject-independent folds (``splits.subject_kfold``; CK+48's
      ``S###`` subjects, JAFFE's posers), at most ``max_folds`` of them run.
    * ``"official"``: the dataset's own Training / PublicTest rows (FER2013, FERPlus).
    * ``"holdout"``: Training rows only, ``test_fraction`` of them (stratified) validating.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    return PROTOCOLS[protocol](dataset, folds, test_fraction, seed, max_folds)


def splits_under(dataset, protocols, **options):
    """``protocol_splits`` of ``dataset`` under each of ``protocols`` in turn, one list."""
    return [split for protocol in protocols
            for split in protocol_splits(dataset, protocol, **options)]


def weights_for(timm_name, weights_dir):
    """Path of a local timm checkpoint for ``timm_name`` in ``weights_dir``, or None."""
    if not weights_dir or not timm_name:
        return None
    for candidate in (os.path.join(weights_dir, f"{timm_name}.safetensors"),
                      os.path.join(weights_dir, timm_name, "model.safetensors")):
        if os.path.isfile(candidate):
            return candidate
    return None


def arch_weights(arch, weights_dir):
    """The local timm checkpoint (``weights_for``) of the timm model that registered
    architecture ``arch`` mirrors (the registry's ``timm_name``), or None."""
    if not weights_dir:
        return None
    from keras_fer.models import get_architecture

    return weights_for(get_architecture(arch).timm_name, weights_dir)


def with_weights(options, arch, weights_dir):
    """A copy of the architecture ``options`` with ``weights`` set to ``arch``'s local timm
    checkpoint when ``weights_dir`` has one (``arch_weights``)."""
    options = dict(options)
    weights = arch_weights(arch, weights_dir)
    if weights:
        options["weights"] = weights
    return options
