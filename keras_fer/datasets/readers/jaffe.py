"""JAFFE: 256x256 grey TIFFs named ``<poser>.<code><take>.<number>.tiff``.

``KM.AN1.17.tiff`` is poser KM, expression AN (angry), first take, picture 17. Codes: AN
angry, DI disgust, FE fear, HA happy, NE neutral, SA sad, SU surprise. ``subject`` is the
poser's initials; ``meta`` holds ``take`` and ``number``. Some files are palette TIFFs:
``read_image`` converts them to grey.

Semantic ratings (``ratings=``): ``JAFFE_labels.txt`` has one row per picture,
``<number> HAP SAD SUR ANG DIS FEA <poser>-<code><take>``, the mean of 60 raters' scores on a
1 (not at all) .. 5 (very) scale for six emotions. Rows are joined to files by ``number`` and
the name is checked against the file name (a mismatch is an error). The ratings become
``distribution`` as each emotion's excess over "not at all", ``(score - 1)``, normalised to
sum 1. Neutral was not rated, so its entry is 0 even for neutral pictures: the ratings
describe how much of each emotion raters saw, not a neutral probability, and inventing one
would put numbers in the data that nobody measured. (A picture rated 1 everywhere falls back
to a one-hot of its label.) The raw scores are kept in ``meta["ratings"]``.
"""

import os
import re

import numpy as np

from keras_fer.datasets.readers import base
from keras_fer.datasets.records import Record
from keras_fer.labels import EMOTIONS

JAFFE_CODES = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral",
               "SA": "sad", "SU": "surprise"}
RATING_COLUMNS = ("HAP", "SAD", "SUR", "ANG", "DIS", "FEA")
RATING_EMOTIONS = ("happy", "sad", "surprise", "angry", "disgust", "fear")
RATINGS_FILE = "JAFFE_labels.txt"
_FILE_NAME = re.compile(r"^([A-Za-z]{2})\.([A-Za-z]{2})(\d+)\.(\d+)\.tiff?$")


def _image_folder(root):
    images = os.path.join(root, "images")
    return images if os.path.isdir(images) else root


def read_ratings(path, policy):
    """``{number: (name "KM-NE1", ratings array of 6)}`` from ``JAFFE_labels.txt``."""
    path = base.require_path(path, "JAFFE ratings file")
    table = {}
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            where = f"{os.path.basename(path)}:line {line_no}"
            if len(fields) != 8:
                policy.fail(where, f"has {len(fields)} fields, expected 8 (number, "
                            f"{' '.join(RATING_COLUMNS)}, name)")
                continue
            try:
                number = int(fields[0])
                scores = np.array([float(v) for v in fields[1:7]])
            except ValueError:
                policy.fail(where, f"number and ratings must be numeric, got {fields[:7]}")
                continue
            if scores.min() < 1 or scores.max() > 5:
                policy.fail(where, f"ratings must lie in 1..5, got {fields[1:7]}")
                continue
            table[number] = (fields[7], scores)
    return table


def ratings_distribution(scores, label, num_classes):
    """Canonical-order distribution from six 1..5 scores (see module docstring)."""
    excess = np.asarray(scores, dtype=np.float64) - 1.0
    dist = np.zeros(num_classes, dtype=np.float64)
    for emotion, value in zip(RATING_EMOTIONS, excess):
        dist[EMOTIONS.index(emotion)] = value
    total = dist.sum()
    if total <= 0:
        return np.eye(num_classes, dtype=np.float32)[label]
    return (dist / total).astype(np.float32)


def read_jaffe(root, split=None, *, num_classes=7, ratings=None, validate="quick",
               on_error="raise"):
    """Reads JAFFE (see module docstring).

    Args:
        root: the JAFFE folder (holding ``images/``) or the image folder itself.
        split: must be None (no official split; use subject folds over posers).
        num_classes: 7 (default; JAFFE has no contempt) or 8 (contempt empty).
        ratings: None (no distributions), True (``JAFFE_labels.txt`` next to ``images/``) or
            a path.
        validate: ``"quick"`` (default), ``"full"`` or False (see ``readers.base``).
        on_error: ``"raise"`` or ``"skip"``.
    """
    if split is not None:
        raise ValueError(f"split must be None for JAFFE, which has no official split, got "
                         f"{split!r}; use keras_fer.datasets.splits.subject_kfold")
    base.check_num_classes(num_classes)
    base.check_validate(validate)
    policy = base.ErrorPolicy(on_error)
    root = base.require_path(root, "JAFFE root")
    folder = _image_folder(root)
    ratings_path = None
    if ratings is True:
        candidates = [os.path.join(d, RATINGS_FILE) for d in (root, os.path.dirname(folder))]
        ratings_path = base.find_first(candidates) or candidates[0]
    elif ratings not in (None, False):
        ratings_path = os.fspath(ratings)
    table = read_ratings(ratings_path, policy) if ratings_path else None

    names = base.list_dir(folder)
    files = [n for n in names if base.is_image_file(n)]
    ignored = [os.path.join(folder, n) for n in names if n not in files]
    if not files:
        raise base.DatasetError(f"{folder}: no JAFFE images (<poser>.<code><take>.<n>.tiff)")
    records = []
    for name in files:
        path = os.path.join(folder, name)
        match = _FILE_NAME.match(name)
        if match is None:
            policy.fail(path, "file name does not follow <poser>.<code><take>.<number>.tiff")
            continue
        poser, code, take, number = match.groups()
        poser, code = poser.upper(), code.upper()
        if code not in JAFFE_CODES:
            policy.fail(path, f"unknown expression code {code!r}; known: "
                        f"{', '.join(JAFFE_CODES)}")
            continue
        label = EMOTIONS.index(JAFFE_CODES[code])
        meta = {"take": int(take), "number": int(number)}
        distribution = None
        if table is not None:
            expected = f"{poser}-{code}{take}"
            entry = table.get(int(number))
            if entry is None:
                policy.fail(path, f"no row {number} in {ratings_path}")
                continue
            if entry[0].upper() != expected:
                policy.fail(path, f"{ratings_path} row {number} is {entry[0]!r}, expected "
                            f"{expected!r}")
                continue
            meta["ratings"] = dict(zip(RATING_COLUMNS, entry[1].tolist()))
            distribution = ratings_distribution(entry[1], label, num_classes)
        path = base.checked_image_path(path, validate, policy)
        if path is None:
            continue
        records.append(Record(source=path, label=label, path=path, subject=poser,
                              distribution=distribution, meta=meta))
    base.check_nonempty(records, folder, None)
    info = {"source": folder, "ratings": ratings_path, "excluded": {}, "ignored": ignored}
    return base.make_dataset("jaffe", records, base.canonical_classes(num_classes), policy,
                             info, validate)
