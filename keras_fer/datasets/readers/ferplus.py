"""FERPlus: ten crowd votes per FER2013 image (Barsoum et al., ICMI 2016, arXiv:1608.01041).

Two layouts:

* ``fer2013new.csv`` (``Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,
  fear,contempt,unknown,NF``), whose row *i* labels row *i* of ``fer2013.csv``: the reader
  joins the two row by row (pixels from fer2013.csv), refuses files whose row counts differ,
  and checks that both rows name the same ``Usage``. Rows with an empty ``Image name`` are
  the images FERPlus dropped (``generate_training_data.py`` writes no PNG for them); they
  are excluded and counted.
* FERPlus's own folders ``FER2013{Train,Valid,Test}/label.csv`` (no header:
  ``image name,"(x, y, w, h)",<10 votes>``) next to the PNGs that FERPlus's
  ``generate_training_data.py`` writes. The PNGs are required: contrary to FERPlus's README,
  the ``ferNNNNNNN`` names (checked on our copy) are not fer2013.csv row numbers (rows 17
  and 23 are dropped without a shift, row 59 with one; three names occur twice), so they
  cannot be mapped back to csv pixels.

Which images are kept and what their label is follows FERPlus's published reader
(``src/ferplus.py`` in github.com/microsoft/FERPlus, ``FERPlusReader._process_data`` and
``load_folders``), reproduced by ``process_votes``:

1. outlier removal: an emotion with a single vote (votes <= 1) gets 0;
2. ``majority``: keep the top emotion if it has more than half of the remaining votes,
   else the image is "unknown"; ``probability`` / ``crossentropy``: take the top-voted
   emotions (ties together) until they hold >= 75% of the votes or three were taken, stop
   at unknown/NF (dropping it if emotions came first), and call the image unknown if the
   taken emotions hold <= 50% of the votes or more than three were taken;
   ``multi_target``: every emotion with >= 30% of the votes, unknown if they hold <= 50%;
3. the result is normalised; images whose arg-max is unknown or NF are left out, and the
   target of the rest is renormalised over the eight emotions.

``probability`` and ``crossentropy`` keep the same images with the same targets: in FERPlus
they differ only in training (sampling a one-hot target from the distribution each step vs
cross-entropy against it), which belongs to the pipeline / loss, not to the reader.

Each record's ``label`` is the arg-max of that target (first in FERPlus column order on ties,
as ``np.argmax`` in FERPlus), mapped to the canonical order. ``distribution`` is, by default
(``distribution="votes"``), the raw vote shares of the eight emotions (no outlier removal:
the annotators' distribution ``d`` that PDLS / F-PDLS mix with the one-hot majority ``t``);
``distribution="target"`` gives the processed FERPlus target of the chosen mode instead. The
ten raw votes are in ``meta["votes"]`` (FERPlus column order).
"""

import collections
import csv
import os

import numpy as np

from keras_fer.datasets.readers import base
from keras_fer.datasets.readers.fer2013 import (CSV_NAMES, CSV_SPLIT_ALIASES,
                                                parse_fer2013_csv)
from keras_fer.datasets.records import Record

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF")
CSV_COLUMNS = ("Usage", "Image name") + VOTE_COLUMNS
# Canonical index of each of FERPlus's eight emotion columns.
FERPLUS_TO_CANONICAL = (6, 3, 5, 4, 0, 1, 2, 7)
LABEL_MODES = ("majority", "probability", "crossentropy", "multi_target")
DISTRIBUTIONS = ("votes", "target")
SPLIT_FOLDERS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid",
                 "PrivateTest": "FER2013Test"}


def process_votes(votes, mode="majority"):
    """FERPlus's ``_process_data``: ten votes -> a normalised 10-vector (see module doc).

    The returned vector is one-hot on ``unknown`` when the votes do not give an emotion.
    """
    if mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {mode!r}")
    raw = [0.0 if float(v) <= 1.0 else float(v) for v in votes]  # single votes are outliers
    size = len(raw)
    if size != len(VOTE_COLUMNS):
        raise ValueError(f"votes must have {len(VOTE_COLUMNS)} entries, got {size}")
    unknown = [0.0] * size
    unknown[8] = 1.0
    total = sum(raw)
    emotion = [0.0] * size
    if mode == "majority":
        peak = max(raw)
        if peak > 0.5 * total:
            emotion[int(np.argmax(raw))] = peak
        else:
            emotion = unknown
    elif mode in ("probability", "crossentropy"):
        taken, count, valid = 0.0, 0, True
        while taken < 0.75 * total and count < 3 and valid:
            peak = max(raw)
            for i in range(size):
                if raw[i] == peak:
                    emotion[i] = peak
                    raw[i] = 0.0
                    taken += peak
                    count += 1
                    if i >= 8:  # unknown / NF reached: stop taking
                        valid = False
                        if sum(emotion) > peak:  # emotions came first: drop unknown / NF
                            emotion[i] = 0.0
                            count -= 1
                        break
        if sum(emotion) <= 0.5 * total or count > 3:
            emotion = unknown
    else:  # multi_target
        for i in range(size):
            if raw[i] >= 0.3 * total:
                emotion[i] = raw[i]
        if sum(emotion) <= 0.5 * total:
            emotion = unknown
    s = sum(emotion)
    return np.array([e / s for e in emotion], dtype=np.float64)


def ferplus_label(votes, mode="majority"):
    """``(label in FERPlus column order, 8-emotion target)`` or ``(None, None)`` if dropped."""
    processed = process_votes(votes, mode)
    index = int(np.argmax(processed))
    if index >= 8:  # unknown or not a face
        return None, None
    target = processed[:8]
    return index, target / target.sum()


def to_canonical(vector8):
    """FERPlus column order -> canonical order (both length 8)."""
    out = np.zeros(8, dtype=np.float32)
    out[list(FERPLUS_TO_CANONICAL)] = vector8
    return out


class _RecordMaker:
    """Turns one row's votes into a Record (or an exclusion) under the reader's options."""

    def __init__(self, label_mode, distribution, num_classes):
        if label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got "
                             f"{distribution!r}")
        self.mode, self.distribution = label_mode, distribution
        self.num_classes = base.check_num_classes(num_classes)
        self.excluded = collections.Counter()

    def __call__(self, votes, source, split, image=None, path=None, meta=None):
        index, target = ferplus_label(votes, self.mode)
        if index is None:
            self.excluded[f"no emotion under FERPlus {self.mode!r} rules "
                          "(unknown / not a face / no majority)"] += 1
            return None
        label = FERPLUS_TO_CANONICAL[index]
        if label >= self.num_classes:
            self.excluded[f"contempt (not in the {self.num_classes}-class view)"] += 1
            return None
        if self.distribution == "votes":
            vector = np.asarray(votes[:8], dtype=np.float64)
            vector = vector / vector.sum()
        else:
            vector = target
        dist = to_canonical(vector)[:self.num_classes]
        total = dist.sum()
        dist = dist / total if total > 0 else np.eye(self.num_classes, dtype=np.float32)[label]
        meta = dict(meta or {}, votes=tuple(int(v) for v in votes))
        return Record(source=source, label=label, image=image, path=path,
                      distribution=dist.astype(np.float32), split=split, meta=meta)


def _parse_votes(fields, where, policy):
    try:
        votes = [int(v) for v in fields]
    except ValueError:
        policy.fail(where, f"vote counts must be integers, got {fields}")
        return None
    if len(votes) != len(VOTE_COLUMNS) or min(votes) < 0:
        policy.fail(where, f"expected {len(VOTE_COLUMNS)} non-negative vote counts "
                    f"({', '.join(VOTE_COLUMNS)}), got {fields}")
        return None
    if sum(votes) == 0:
        policy.fail(where, "all vote counts are 0")
        return None
    return votes


def _locate_fer2013(fer2013_csv, root):
    if fer2013_csv is not None:
        return base.require_path(fer2013_csv, "fer2013_csv")
    folder = root if os.path.isdir(root) else os.path.dirname(root)
    candidates = [os.path.join(d, n) for d in (folder, os.path.join(folder, "..", "fer2013"))
                  for n in CSV_NAMES]
    found = base.find_first(candidates)
    return os.path.normpath(found) if found else None


def _read_ferplus_csv(path, fer_path, splits, maker, policy, cache_dir):
    name = os.path.basename(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(c.strip() for c in rows[0]) != CSV_COLUMNS:
        raise base.DatasetError(f"{path}: header has columns {rows[0] if rows else []}, "
                                f"expected {list(CSV_COLUMNS)}")
    rows = rows[1:]
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()
    table = parse_fer2013_csv(fer_path, policy, cache_dir)
    if len(rows) != table.n_rows:
        raise base.DatasetError(f"{path} has {len(rows)} rows but {fer_path} has "
                                f"{table.n_rows}: FERPlus labels row i of fer2013.csv, so the "
                                "row counts must match")
    position = {int(r): i for i, r in enumerate(table.rows)}
    records = []
    for row, fields in enumerate(rows):
        where = f"{name}:row {row} (line {row + 2})"
        if len(fields) != len(CSV_COLUMNS):
            policy.fail(where, f"has {len(fields)} fields, expected {len(CSV_COLUMNS)}")
            continue
        usage, image_name = fields[0].strip(), fields[1].strip()
        if splits is not None and usage not in splits:
            continue
        if not image_name:
            maker.excluded["empty Image name (image dropped by FERPlus)"] += 1
            continue
        votes = _parse_votes(fields[2:], where, policy)
        if votes is None:
            continue
        if row not in position:  # the fer2013 row itself was skipped (already reported)
            policy.fail(where, f"{table.source(row)} was skipped, so its votes cannot be used")
            continue
        i = position[row]
        if table.usage[i] != usage:
            policy.fail(where, f"Usage {usage!r} differs from {table.source(row)} "
                        f"Usage {table.usage[i]!r}")
            continue
        record = maker(votes, f"{name}:row {row}", usage, image=table.pixels[i],
                       meta={"row": row, "image name": image_name})
        if record is not None:
            records.append(record)
    return records


def _label_folders(root):
    """The folder holding ``FER2013Train`` etc. (``root`` or ``root/data``), or None."""
    for folder in (root, os.path.join(root, "data")):
        if any(os.path.isfile(os.path.join(folder, d, "label.csv"))
               for d in SPLIT_FOLDERS.values()):
            return folder
    return None


def _read_label_folder(folder, split, maker, policy, validate):
    label_path = os.path.join(folder, "label.csv")
    with open(label_path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not any(n.lower().endswith(".png") for n in os.listdir(folder)):
        raise FileNotFoundError(
            f"{folder} has label.csv but no PNG images: generate them with FERPlus's "
            "generate_training_data.py, or read the csv layout (fer2013new.csv + fer2013.csv). "
            "The folder's ferNNNNNNN names cannot be mapped back to fer2013.csv rows: despite "
            "FERPlus's README they are not row numbers in the published files")
    records = []
    for row, fields in enumerate(rows):
        where = f"{label_path}:row {row}"
        if not any(c.strip() for c in fields):
            continue
        if len(fields) != 2 + len(VOTE_COLUMNS):
            policy.fail(where, f"has {len(fields)} fields, expected {2 + len(VOTE_COLUMNS)} "
                        "(image name, face box, 10 vote counts)")
            continue
        image_name, box = fields[0].strip(), fields[1].strip()
        votes = _parse_votes(fields[2:], where, policy)
        if votes is None:
            continue
        path = base.checked_image_path(os.path.join(folder, image_name), validate, policy)
        if path is None:
            continue
        record = maker(votes, where, split, path=path,
                       meta={"image name": image_name, "box": box})
        if record is not None:
            records.append(record)
    return records


def read_ferplus(root, split=None, *, label_mode="majority", distribution="votes",
                 num_classes=8, fer2013_csv=None, layout="auto", validate="quick",
                 on_error="raise", cache_dir=None):
    """Reads FERPlus labels with FER2013 pixels (see module docstring for the rules).

    Args:
        root: ``fer2013new.csv``, a folder holding it, or a folder holding FERPlus's
            ``FER2013Train``/``FER2013Valid``/``FER2013Test`` folders (directly or under
            ``data/``).
        split: ``"Training"``, ``"PublicTest"``, ``"PrivateTest"`` (same aliases as FER2013:
            ``train``, ``val``, ``test``), a list, or None for all.
        label_mode: ``"majority"`` (default), ``"probability"``, ``"crossentropy"``,
            ``"multi_target"``: FERPlus's rules for which images to keep.
        distribution: ``"votes"`` (raw vote shares) or ``"target"`` (FERPlus's target).
        num_classes: 8 (default) or 7 (contempt images excluded, distributions renormalised).
        fer2013_csv: path to ``fer2013.csv[.gz]`` (csv layout); by default looked for next
            to the FERPlus file and in ``../fer2013/``.
        layout: ``"auto"`` (the csv if present, else the folders), ``"csv"``, ``"folders"``.
        validate: checks of PNG files in the folder layout (see ``readers.base``).
        on_error: ``"raise"`` or ``"skip"``.
        cache_dir: optional folder for the parsed fer2013.csv (see ``parse_fer2013_csv``).
    """
    policy = base.ErrorPolicy(on_error)
    base.check_validate(validate)
    maker = _RecordMaker(label_mode, distribution, num_classes)
    root = base.require_path(root, "FERPlus root")
    if layout not in ("auto", "csv", "folders"):
        raise ValueError(f"layout must be 'auto', 'csv' or 'folders', got {layout!r}")
    splits = base.resolve_splits(split, CSV_SPLIT_ALIASES, "FERPlus")
    csv_path = None
    if layout in ("auto", "csv"):
        csv_path = root if os.path.isfile(root) else base.find_first(
            [os.path.join(root, "fer2013new.csv")])
        if csv_path is None and layout == "csv":
            raise FileNotFoundError(f"no fer2013new.csv at {root!r}")
    if csv_path is not None:
        fer_path = _locate_fer2013(fer2013_csv, root)
        if fer_path is None:
            raise FileNotFoundError(f"FERPlus needs fer2013.csv for its pixels: none found next "
                                    f"to {csv_path} or in ../fer2013/; pass fer2013_csv=")
        records = _read_ferplus_csv(csv_path, fer_path, splits, maker, policy, cache_dir)
        info = {"source": csv_path, "pixels": fer_path, "layout": "csv"}
    else:
        folder = _label_folders(root)
        if folder is None:
            raise FileNotFoundError(f"{root!r} holds neither fer2013new.csv nor FERPlus's "
                                    f"{'/'.join(SPLIT_FOLDERS.values())}/label.csv")
        wanted = splits or [s for s, d in SPLIT_FOLDERS.items()
                            if os.path.isdir(os.path.join(folder, d))]
        records = []
        for s in wanted:
            sub = os.path.join(folder, SPLIT_FOLDERS[s])
            if not os.path.isfile(os.path.join(sub, "label.csv")):
                raise FileNotFoundError(f"split {s!r}: {sub}/label.csv does not exist")
            records += _read_label_folder(sub, s, maker, policy, validate)
        info = {"source": folder, "pixels": "png", "layout": "folders"}
    if splits is not None:
        missing = [s for s in splits if not any(r.split == s for r in records)]
        if missing:
            raise base.DatasetError(f"{info['source']}: no usable rows for split(s) {missing}")
    base.check_nonempty(records, info["source"], split)
    info.update(excluded=dict(maker.excluded), label_mode=label_mode, distribution=distribution)
    return base.make_dataset("ferplus", records, base.canonical_classes(num_classes), policy,
                             info, validate)
