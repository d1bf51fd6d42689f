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
    messages: a file path, or ``"fer2013.csv:row 17"``.
    """

    source: str
    label: Optional[int]
    image: Optional[np.ndarray] = None
    path: Optional[str] = None
    distribution: Optional[np.ndarray] = None
    subject: Optional[str] = None
    split: Optional[str] = None


class FERDataset:
    """A list of records with its class list and an account of what the reader skipped."""

    def __init__(self, name, records, classes, skipped=()):
        self.name = name
        self.records = list(records)
        self.classes = tuple(classes)
        # (source, reason) for every record the reader was asked to skip: never silent.
        self.skipped = list(skipped)

    def __len__(self):
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, index):
        return self.records[index]

    def class_counts(self):
        """``{class_name: count}`` in class order, zeros included."""
        counts = collections.Counter(r.label for r in self.records)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def subset(self, indices, name=None):
        return FERDataset(name or self.name, [self.records[i] for i in indices], self.classes)

    def __repr__(self):
        return (f"FERDataset({self.name!r}, {len(self)} records, {len(self.classes)} classes, "
                f"{len(self.skipped)} skipped)")
