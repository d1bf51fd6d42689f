"""Merging datasets onto one class list and balancing classes (seed 003's AVFER recipe).

AVFER (seed 003, sections 4-5) is FER2013 + CK+48 + AffectNet on one 8-class list, its
training set brought to the same number of images per class by offline augmentation of the
minority classes and undersampling of the majority ones. ``merge`` does the first step,
``balance`` the second. Both return ordinary ``FERDataset`` objects.
"""

import collections
import dataclasses
from typing import Optional

import numpy as np

from keras_fer import labels as _labels
from keras_fer.datasets.augment import OfflineAugmentation
from keras_fer.datasets.pipeline import load_pixels
from keras_fer.datasets.records import FERDataset, Record
from keras_fer.validation import positive_int


@dataclasses.dataclass(frozen=True)
class MergedRecord(Record):
    """A ``Record`` that also remembers the name of the dataset it came from.

    A subclass rather than a prefix in ``source`` so that ``source`` keeps naming the file or
    row (error messages stay pointable) and the dataset survives ``subset`` and
    ``dataclasses.replace``.
    """

    dataset: Optional[str] = None


def record_dataset(record):
    """The dataset name a merged record came from, or ``None`` for a plain ``Record``."""
    return getattr(record, "dataset", None)


def _merged_classes(datasets):
    """Union of the class names: canonical ones in canonical order, then extras as met."""
    names = {c for d in datasets for c in d.classes}
    ordered = [c for c in _labels.EMOTIONS if c in names]
    for d in datasets:
        for c in d.classes:
            if c not in ordered:
                ordered.append(c)
    return tuple(ordered)


def merge(datasets, classes=None, name=None):
    """Composes several ``FERDataset`` objects into one, re-indexing labels by class name.

    ``classes``: the merged class list; by default the union of the inputs' classes in
    canonical order (``keras_fer.labels.EMOTIONS``) followed by any extra names (e.g.
    ``closed_eyes``) in the order met. Records whose class is not in an explicit ``classes``
    are left out and counted per reason in ``info["excluded"]`` (the readers' convention for
    records left out by rule, shown by ``summary()``); the inputs' ``skipped`` are kept.

    Soft labels (``distribution``) are re-indexed the same way; columns of classes not kept
    are dropped and the rest renormalised to sum to 1 (a record whose whole mass lay on
    dropped classes is excluded). Each record becomes a ``MergedRecord`` whose ``dataset`` is
    the name of its input dataset; ``source``, ``subject`` and ``split`` are kept.
    """
    datasets = list(datasets)
    if not datasets:
        raise ValueError("datasets must hold at least one FERDataset, got an empty list")
    for i, d in enumerate(datasets):
        if not isinstance(d, FERDataset):
            raise ValueError(f"datasets[{i}] must be a FERDataset, got {type(d).__name__}")
    if classes is None:
        classes = _merged_classes(datasets)
    else:
        classes = tuple(classes)
        if not classes:
            raise ValueError("classes must be None or a non-empty list of class names")
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes must not repeat a name, got {classes}")
    position = {c: i for i, c in enumerate(classes)}

    records, skipped, excluded = [], [], collections.Counter()
    for d in datasets:
        for reason, count in d.info.get("excluded", {}).items():
            excluded[f"{d.name}: {reason}"] += count
        skipped.extend(d.skipped)
        # Column j of the input's soft labels goes to column mapping[j] of the merged list.
        mapping = [position.get(c) for c in d.classes]
        for r in d.records:
            if r.label is not None and not 0 <= r.label < len(d.classes):
                raise ValueError(f"{r.source}: label {r.label} out of range for dataset "
                                 f"{d.name!r} with {len(d.classes)} classes")
            label = None if r.label is None else mapping[r.label]
            if r.label is not None and label is None:
                excluded[f"{d.name}: class {d.classes[r.label]!r} is not in the merged "
                         f"classes"] += 1
                continue
            distribution = None
            if r.distribution is not None:
                if np.shape(r.distribution) != (len(d.classes),):
                    raise ValueError(f"{r.source}: distribution has shape "
                                     f"{np.shape(r.distribution)}, expected ({len(d.classes)},) "
                                     f"for the classes of dataset {d.name!r}")
                distribution = np.zeros(len(classes), np.float32)
                for j, target in enumerate(mapping):
                    if target is not None:
                        distribution[target] += r.distribution[j]
                total = distribution.sum()
                if total <= 0:
                    excluded[f"{d.name}: label distribution entirely on classes not in "
                             f"the merged classes"] += 1
                    continue
                distribution /= total
            fields = {f.name: getattr(r, f.name) for f in dataclasses.fields(Record)}
            fields.update(label=label, distribution=distribution,
                          dataset=record_dataset(r) or d.name)
            records.append(MergedRecord(**fields))
    name = name or "+".join(d.name for d in datasets)
    info = {"source": " + ".join(d.name for d in datasets),
            "merged_from": [d.name for d in datasets], "excluded": dict(excluded)}
    return FERDataset(name, records, classes, skipped=skipped, info=info)


def _copy_counts(n_originals, n_copies, rng):
    """How many copies each original gets: as even as possible, the remainder at random.

    Equivalent to seed 003's "generate N / n copies of every image, then undersample the
    augmented excess", without generating images only to throw them away.
    """
    base, extra = divmod(n_copies, n_originals)
    counts = np.full(n_originals, base, dtype=np.int64)
    counts[rng.choice(n_originals, size=extra, replace=False)] += 1
    return counts


def balance(dataset, per_class, seed=0, augment=None, skip_empty=False, name=None):
    """Brings every class of ``dataset`` to exactly ``per_class`` records (seed 003, 5.2).

    Classes with more than ``per_class`` records are undersampled (a random subset of the
    originals, chosen with ``seed``). Classes with fewer keep *all* their originals (originals
    are always preferred over augmented copies) and are topped up with augmented copies,
    spread as evenly as possible over the originals. Copies are new inline-image records
    (``image`` set, ``path`` None) with ``source="augmented from <original source>"`` and the
    original's label, soft label, subject, split and dataset.

    ``augment``: ``None`` for seed 003's recipe (``OfflineAugmentation()``: zoom 0.6, rotation
    10 degrees, shifts 0.2, brightness 0.2-0.6), an ``OfflineAugmentation``, any callable
    ``f(uint8 image, numpy Generator) -> uint8 image``, or ``False`` for plain copies (random
    oversampling; ``source="copy of ..."``).

    The result is a deterministic function of ``(dataset, per_class, seed, augment)``:
    classes in class order, each class's kept originals (in dataset order) then its copies.
    An empty class cannot be oversampled: ``ValueError`` naming it, unless ``skip_empty``
    (then it stays empty). Unlabelled records are left out, counted in
    ``info["excluded"]``; ``info["balanced"]`` records what was done per class.
    """
    if not isinstance(dataset, FERDataset):
        raise ValueError(f"dataset must be a FERDataset, got {type(dataset).__name__}")
    per_class = positive_int(per_class, "per_class")
    if augment is None:
        augment = OfflineAugmentation()
    elif augment is not False and not callable(augment):
        raise ValueError(f"augment must be None, False or a callable (image, rng) -> image, "
                         f"got {type(augment).__name__}")
    rng = np.random.default_rng(seed)
    by_class = [[] for _ in dataset.classes]
    info = dict(dataset.info)
    excluded = dict(info.get("excluded", {}))
    unlabelled = sum(r.label is None for r in dataset.records)
    if unlabelled:
        excluded["unlabelled, left out of the balanced dataset"] = unlabelled
    info["excluded"] = excluded
    for r in dataset.records:
        if r.label is not None:
            by_class[r.label].append(r)
    report = info["balanced"] = {"per_class": int(per_class), "seed": seed, "classes": {}}

    out = []
    for class_name, members in zip(dataset.classes, by_class):
        n = len(members)
        if n == 0:
            if skip_empty:
                report["classes"][class_name] = {"originals": 0, "copies": 0}
                continue
            raise ValueError(f"class {class_name!r} has no records in dataset {dataset.name!r}: "
                             f"cannot oversample it to per_class={per_class} "
                             f"(pass skip_empty=True to leave it empty)")
        if n >= per_class:
            keep = np.sort(rng.choice(n, size=per_class, replace=False))
            out.extend(members[i] for i in keep)
            report["classes"][class_name] = {"originals": per_class, "copies": 0,
                                             "dropped": n - per_class}
            continue
        out.extend(members)
        counts = _copy_counts(n, per_class - n, rng)
        report["classes"][class_name] = {"originals": n, "copies": per_class - n}
        for original, k in zip(members, counts):
            if k == 0:
                continue
            pixels = load_pixels(original)
            for _ in range(k):
                if augment is False:
                    image, source = pixels.copy(), f"copy of {original.source}"
                else:
                    image = np.asarray(augment(pixels, rng))
                    source = f"augmented from {original.source}"
                out.append(dataclasses.replace(original, source=source, image=image, path=None))
    return FERDataset(name or f"{dataset.name}-balanced{per_class}", out, dataset.classes,
                      skipped=dataset.skipped, info=info)
