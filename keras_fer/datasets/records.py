"""What every dataset reader yields, and the object ``keras_fer.datasets.load`` returns."""

import collections
import dataclasses
from typing import Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class Record:
    """One labelled face image.

    Exactly one of ``image`` (pixels stored inline, e.g. a FER2013 csv row) and ``path`` (an
    image file on disk) is set. ``label`` is an index into the dataset's ``classes`` (which is
    a prefix of, or an extension of, the canonical vocabulary in ``keras_fer.labels``);
    ``distribution`` is a per-class probability vector in the same order when the dataset has
    soft labels (FERPlus votes). ``source`` names where the record came from, for error
    messages: a file path, or ``"fer2013.csv:row 17"``. ``meta`` holds what a reader knows
    beyond that (CK+ sequence and frame, raw FERPlus votes, JAFFE ratings, face boxes); it is
    informational and never needed to train.
    """

    source: str
    label: Optional[int]
    image: Optional[np.ndarray] = None
    path: Optional[str] = None
    distribution: Optional[np.ndarray] = None
    subject: Optional[str] = None
    split: Optional[str] = None
    meta: Optional[dict] = None


class FERDataset:
    """A list of records with its class list and an account of what the reader left out.

    ``skipped`` lists ``(source, reason)`` for every record the reader could not use and was
    told to skip (``on_error="skip"``); ``info`` holds the reader's own account: the file(s)
    read, ``excluded`` (records left out *by the dataset's rules*, e.g. FERPlus images whose
    votes name no emotion, with counts per reason) and ``ignored`` (non-image files met while
    scanning folders). Nothing a reader sees disappears without a trace in one of these.
    """

    def __init__(self, name, records, classes, skipped=(), info=None):
        self.name = name
        self.records = list(records)
        self.classes = tuple(classes)
        # (source, reason) for every record the reader was asked to skip: never silent.
        self.skipped = list(skipped)
        self.info = dict(info or {})

    def __len__(self):
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, index):
        return self.records[index]

    @property
    def num_classes(self):
        return len(self.classes)

    def class_counts(self):
        """``{class_name: count}`` in class order, zeros included."""
        counts = collections.Counter(r.label for r in self.records)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def labels(self):
        """Integer labels as a NumPy array (``-1`` where a record has none)."""
        return np.array([-1 if r.label is None else r.label for r in self.records], dtype=np.int64)

    def subjects(self):
        """Subject ids as an object array (``None`` where the dataset has none)."""
        return np.array([r.subject for r in self.records], dtype=object)

    def split_names(self):
        """The distinct ``split`` values in first-seen order."""
        return list(dict.fromkeys(r.split for r in self.records))

    def split_indices(self):
        """``{split: index array}`` for the splits the records carry (official splits)."""
        names = np.array([r.split for r in self.records], dtype=object)
        return {s: np.flatnonzero(names == s) for s in self.split_names()}

    def subset(self, indices, name=None):
        """A dataset of ``records[i] for i in indices`` with the same classes and info.

        ``skipped`` stays with the dataset that was read: a subset skipped nothing itself.
        """
        return FERDataset(name or self.name, [self.records[int(i)] for i in indices],
                          self.classes, info=self.info)

    def select_classes(self, names, name=None):
        """Keeps only records of ``names`` and relabels them ``0..len(names)-1`` in that order.

        An explicit way out of the canonical vocabulary, for protocols that train on exactly
        a dataset's own classes (e.g. CK+48's seven folders, which include contempt but not
        neutral). The result's ``classes`` are ``names``, so it no longer follows the
        canonical order: use it only where the model is trained and read with this list.
        """
        names = tuple(names)
        unknown = [n for n in names if n not in self.classes]
        if unknown:
            raise ValueError(f"names must be classes of this dataset {self.classes}, "
                             f"got unknown {unknown}")
        if len(set(names)) != len(names):
            raise ValueError(f"names must not repeat a class, got {names}")
        old = [self.classes.index(n) for n in names]
        records = []
        for r in self.records:
            if r.label in old:
                dist = r.distribution
                if dist is not None:
                    dist = np.asarray(dist)[old]
                    total = dist.sum()
                    dist = dist / total if total > 0 else np.eye(len(names))[old.index(r.label)]
                records.append(dataclasses.replace(r, label=old.index(r.label), distribution=dist))
        return FERDataset(name or self.name, records, names, info=self.info)

    def summary(self):
        """One paragraph: what was read, how many records per class, what was left out."""
        lines = [f"{self.name}: {len(self)} records, {len(self.classes)} classes"
                 + (f" from {self.info['source']}" if self.info.get("source") else "")]
        splits = [s for s in self.split_names() if s is not None]
        if splits:
            per_split = collections.Counter(r.split for r in self.records)
            lines.append("  splits: " + ", ".join(f"{s} {per_split[s]}" for s in splits))
        lines.append("  classes: " + ", ".join(f"{k} {v}" for k, v in self.class_counts().items()))
        subjects = {r.subject for r in self.records if r.subject is not None}
        if subjects:
            lines.append(f"  subjects: {len(subjects)}")
        for reason, count in self.info.get("excluded", {}).items():
            lines.append(f"  excluded by rule: {count} ({reason})")
        if self.info.get("ignored"):
            lines.append(f"  ignored non-image files: {len(self.info['ignored'])}")
        lines.append(f"  skipped: {len(self.skipped)}"
                     + (f" (first: {self.skipped[0][0]}: {self.skipped[0][1]})"
                        if self.skipped else ""))
        return "\n".join(lines)

    def to_tf_dataset(self, **kwargs):
        """A ``tf.data.Dataset`` of this dataset (``keras_fer.datasets.pipeline.make_dataset``)."""
        # Imported here so that reading and splitting data never needs TensorFlow.
        from keras_fer.datasets.pipeline import make_dataset

        return make_dataset(self, **kwargs)

    def __repr__(self):
        return (f"FERDataset({self.name!r}, {len(self)} records, {len(self.classes)} classes, "
                f"{len(self.skipped)} skipped)")
