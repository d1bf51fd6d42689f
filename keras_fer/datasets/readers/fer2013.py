"""FER2013: the Kaggle csv (``emotion,pixels,Usage``, plain or gzip) and the jpg-folder copy.

csv: each row is a 48x48 grey face as 2304 space-separated integers, ``emotion`` 0..6 =
angry, disgust, fear, happy, sad, surprise, neutral (already the canonical order), ``Usage``
one of ``Training``, ``PublicTest``, ``PrivateTest``. Rows are numbered from 0 in file order
(the header is not a row), the numbering FERPlus uses for ``ferNNNNNNN.png``; error messages
also give the text line (row + 2).

Parsing is vectorised: all pixel fields go through one ``np.loadtxt`` call (NumPy's C
parser, strict about non-numbers, values above 255 and ragged rows). Only if that fails does
the reader look row by row, to name every bad row (and skip it with ``on_error="skip"``).

jpg folders (the common Kaggle re-upload): ``root/train/<class>/*.jpg`` and
``root/test/<class>/*.jpg`` with folders angry, disgust, fear, happy, neutral, sad, surprise.
Its ``test`` folder is PublicTest + PrivateTest together, so its splits keep their folder
names ``train`` / ``test`` (``Training`` is accepted for ``train``).
"""

import collections
import gzip
import hashlib
import io
import os
import zlib

import numpy as np

from keras_fer.datasets.readers import base
from keras_fer.datasets.readers.image_folder import (LabelResolver, classes_for,
                                                     entries_to_records, scan_class_folders,
                                                     split_folders)
from keras_fer.datasets.records import Record

FER2013_COLUMNS = ("emotion", "pixels", "Usage")
FER2013_USAGES = ("Training", "PublicTest", "PrivateTest")
IMAGE_SIZE = 48
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE

# Accepted spellings of the csv splits (documented in ``read_fer2013``).
CSV_SPLIT_ALIASES = {
    "Training": "Training", "train": "Training", "training": "Training",
    "PublicTest": "PublicTest", "publictest": "PublicTest", "val": "PublicTest",
    "valid": "PublicTest", "validation": "PublicTest",
    "PrivateTest": "PrivateTest", "privatetest": "PrivateTest", "test": "PrivateTest",
}
FOLDER_SPLIT_ALIASES = {"train": "train", "Training": "train", "training": "train",
                        "test": "test"}
CSV_NAMES = ("fer2013.csv", "fer2013.csv.gz")


class Fer2013Table:
    """The parsed csv: ``emotion`` (n,), ``pixels`` (n, 48, 48) uint8, ``usage`` (n,), ``rows``.

    ``rows`` are the csv row numbers kept (all of them unless rows were skipped), so that
    FERPlus can join by row number; ``n_rows`` counts every data row of the file.
    """

    def __init__(self, path, emotion, pixels, usage, rows, n_rows):
        self.path, self.emotion, self.pixels, self.usage, self.rows = (path, emotion, pixels,
                                                                       usage, rows)
        self.n_rows = n_rows
        self.name = os.path.basename(path)

    def __len__(self):
        return len(self.rows)

    def source(self, row):
        return f"{self.name}:row {row}"


def _read_bytes(path):
    with open(path, "rb") as f:
        data = f.read()
    # By content, not by name: a .csv that is really gzip (or the reverse) still reads.
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:  # truncated download, bad CRC
            raise base.DatasetError(f"{path}: corrupt or truncated gzip file "
                                    f"({type(err).__name__}: {err})") from None
    # Excel and some editors start a UTF-8 csv with a byte-order mark.
    return data[3:] if data[:3] == b"\xef\xbb\xbf" else data


def _where(name, row):
    return f"{name}:row {row} (line {row + 2})"


def _parse_row_pixels(text):
    """One pixel field, strictly: returns (array or None, reason)."""
    tokens = text.split()
    if len(tokens) != NUM_PIXELS:
        return None, f"pixels has {len(tokens)} values, expected {NUM_PIXELS} (48x48)"
    if not all(t.isdigit() for t in tokens):
        bad = next(t for t in tokens if not t.isdigit())
        return None, f"pixels has a non-numeric value {bad.decode(errors='replace')!r}"
    values = np.array(tokens, dtype=np.int64)
    if values.max() > 255:
        return None, f"pixel value {values.max()} is out of range 0..255"
    return values.astype(np.uint8), None


def _looks_clean(field):
    """Exactly 2303 separators and nothing but digits and spaces (no parsing needed)."""
    return field.count(b" ") == NUM_PIXELS - 1 and not field.translate(None, b"0123456789 ")


def _parse_block(fields):
    """All ``fields`` at once with NumPy's C text parser, or None if any of them is bad."""
    if not fields:
        return np.zeros((0, NUM_PIXELS), np.uint8)
    try:
        values = np.loadtxt(io.BytesIO(b"\n".join(fields)), dtype=np.uint8, delimiter=" ",
                            ndmin=2)
    except ValueError:
        return None
    # loadtxt skips blank lines, so a row count check also catches empty pixel fields.
    return values if values.shape == (len(fields), NUM_PIXELS) else None


def _parse_pixel_fields(fields, wheres, policy):
    """``(kept indices, (n_kept, 48, 48) uint8)``; bad fields go through ``policy``.

    Fast path: every field parsed together by one ``np.loadtxt`` call (strict: it rejects
    non-numbers, values > 255 and ragged rows). If that fails, the fields that do not look
    clean are parsed one by one to name the bad ones, and the rest together again.
    """
    values = _parse_block(fields)
    parsed = {}
    if values is None:
        clean = [i for i, f in enumerate(fields) if _looks_clean(f)]
        values = _parse_block([fields[i] for i in clean])
        if values is None:  # a clean-looking field is bad after all (e.g. a value > 255)
            clean, values = [], np.zeros((0, NUM_PIXELS), np.uint8)
        clean_set = set(clean)
        parsed = {i: _parse_row_pixels(f) for i, f in enumerate(fields) if i not in clean_set}
        order = clean
    else:
        order = range(len(fields))
    position = {i: j for j, i in enumerate(order)}
    kept, take = [], []
    for i in range(len(fields)):
        if i in parsed:
            array, reason = parsed[i]
            if array is None:
                policy.fail(wheres[i], reason)
                continue
            take.append(array)
        else:
            take.append(values[position[i]])
        kept.append(i)
    if len(kept) == len(values) == len(fields):  # the common case: no copy row by row
        return kept, values.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    pixels = np.stack(take) if take else np.zeros((0, NUM_PIXELS), np.uint8)
    return kept, pixels.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


_CACHE_VERSION = b"fer2013-cache-v2"


def _cache_file(path, cache_dir):
    # Keyed on the file's bytes, not its name, size and mtime: an edited csv whose size and
    # mtime were restored (a copy with preserved times, a re-download) must not return the
    # old labels. Hashing streams the file at disk speed, a fraction of the parse time.
    digest = hashlib.sha256(_CACHE_VERSION)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return os.path.join(cache_dir, f"fer2013-{digest.hexdigest()[:32]}.npz")


def _load_cache(cache, path):
    """The cached table, or None (with a warning naming the file) if it cannot be read."""
    try:
        with np.load(cache, allow_pickle=False) as z:
            table = Fer2013Table(path, z["emotion"], z["pixels"], z["usage"].astype(object),
                                 z["rows"], n_rows=int(z["n_rows"]))
        if table.pixels.shape != (len(table.rows), IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"pixels has shape {table.pixels.shape}")
        return table
    except Exception as err:  # BadZipFile, EOFError, KeyError, ValueError...
        base.logger.warning("FER2013 cache %s is unreadable (%s: %s); rebuilding it from %s",
                            cache, type(err).__name__, err, path)
        try:
            os.remove(cache)
        except OSError:
            pass
        return None


def parse_fer2013_csv(path, policy, cache_dir=None):
    """Parses a FER2013 csv (plain or gzip) into a ``Fer2013Table``; see module docstring.

    ``cache_dir``: where to keep the parsed arrays (an uncompressed ``.npz`` keyed by the
    sha256 of the csv's bytes), so that the next read takes a fraction of a second instead
    of seconds. Only clean parses (nothing skipped) are cached; a cache file that cannot be
    read is reported (a warning naming it) and rebuilt.
    """
    path = base.require_path(path, "FER2013 csv")
    if cache_dir is None:
        return _parse(path, policy)
    cache = _cache_file(path, os.fspath(cache_dir))
    if os.path.isfile(cache):
        table = _load_cache(cache, path)
        if table is not None:
            return table
    skipped_before = len(policy.skipped)
    table = _parse(path, policy)
    if len(policy.skipped) == skipped_before:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = cache + f".{os.getpid()}.tmp.npz"
        np.savez(tmp, emotion=table.emotion, pixels=table.pixels,
                 usage=table.usage.astype(str), rows=table.rows, n_rows=table.n_rows)
        os.replace(tmp, cache)  # atomic: a concurrent reader never sees half a file
    return table


def _parse(path, policy):
    name = os.path.basename(path)
    data = _read_bytes(path)
    lines = data.split(b"\n")
    header = [c.strip().decode(errors="replace") for c in lines[0].strip(b"\r").split(b",")]
    if tuple(header) != FER2013_COLUMNS:
        raise base.DatasetError(f"{path}: header has columns {header}, expected "
                                f"{list(FER2013_COLUMNS)}")
    body = lines[1:]
    while body and not body[-1].strip():
        body.pop()

    emotions, usages, pixel_fields, rows = [], [], [], []
    for row, line in enumerate(body):
        line = line.rstrip(b"\r")
        first, last = line.find(b","), line.rfind(b",")
        if first < 0 or first == last or line.count(b",") != 2:
            policy.fail(_where(name, row), f"has {line.count(b',') + 1} fields, expected 3 "
                        f"({','.join(FER2013_COLUMNS)})")
            continue
        code, usage = line[:first].strip(), line[last + 1:].strip().decode(errors="replace")
        if not code.isdigit() or int(code) > 6:
            policy.fail(_where(name, row), f"emotion {code.decode(errors='replace')!r} is not a "
                        "FER2013 code 0..6 (angry, disgust, fear, happy, sad, surprise, neutral)")
            continue
        if usage not in FER2013_USAGES:
            policy.fail(_where(name, row), f"Usage {usage!r} is not one of {FER2013_USAGES}")
            continue
        emotions.append(int(code))
        usages.append(usage)
        pixel_fields.append(line[first + 1:last].strip())
        rows.append(row)

    kept, pixels = _parse_pixel_fields(pixel_fields, [_where(name, r) for r in rows], policy)
    emotions = [emotions[i] for i in kept]
    usages = [usages[i] for i in kept]
    rows = [rows[i] for i in kept]
    return Fer2013Table(path, np.array(emotions, dtype=np.int64), pixels,
                        np.array(usages, dtype=object), np.array(rows, dtype=np.int64),
                        n_rows=len(body))


def find_fer2013_csv(root):
    """``root`` if it is a file, else ``root/fer2013.csv[.gz]``, else None."""
    root = os.fspath(root)
    if os.path.isfile(root):
        return root
    return base.find_first(os.path.join(root, n) for n in CSV_NAMES)


def _read_csv(path, split, num_classes, policy, cache_dir):
    splits = base.resolve_splits(split, CSV_SPLIT_ALIASES, "the FER2013 csv")
    table = parse_fer2013_csv(path, policy, cache_dir)
    keep = np.ones(len(table), bool) if splits is None else np.isin(table.usage, splits)
    records = [Record(source=table.source(table.rows[i]), label=int(table.emotion[i]),
                      image=table.pixels[i], split=table.usage[i],
                      meta={"row": int(table.rows[i])})
               for i in np.flatnonzero(keep)]
    if splits is not None:
        present = sorted(set(table.usage))
        missing = [s for s in splits if s not in present]
        if missing:
            raise base.DatasetError(f"{path}: no rows with Usage {missing} (this file has "
                                    f"{present})")
    base.check_nonempty(records, path, split)
    info = {"source": path, "excluded": {}, "layout": "csv"}
    return base.make_dataset("fer2013", records, base.canonical_classes(num_classes), policy,
                             info)


def _read_folders(root, split, num_classes, policy, validate):
    resolve = LabelResolver()
    entries, excluded, ignored = [], collections.Counter(), []
    for split_name, folder in split_folders(root, split, FOLDER_SPLIT_ALIASES):
        e, x, i = scan_class_folders(folder, resolve, policy, validate, split_name)
        entries += e
        excluded.update(x)
        ignored += i
    classes = classes_for(set(), num_classes, (), "fer2013")
    records = entries_to_records(entries, classes, excluded)
    base.check_nonempty(records, os.fspath(root), split)
    info = {"source": os.fspath(root), "excluded": dict(excluded), "ignored": ignored,
            "layout": "folders"}
    return base.make_dataset("fer2013", records, classes, policy, info, validate)


def read_fer2013(root, split=None, *, num_classes=7, layout="auto", validate="quick",
                 on_error="raise", cache_dir=None):
    """Reads FER2013 from its csv (``root`` = the file, or a folder holding
    ``fer2013.csv[.gz]``) or from jpg folders (``root/train``, ``root/test``).

    Args:
        split: csv: ``"Training"``, ``"PublicTest"``, ``"PrivateTest"`` (aliases ``"train"``,
            ``"val"``/``"valid"``/``"validation"``, ``"test"`` respectively), a list of them,
            or None for all rows. A requested split with no rows is an error. Folders:
            ``"train"`` (alias ``"Training"``) or ``"test"``.
        num_classes: 7 (FER2013's own classes) or 8 (the canonical view with an empty
            contempt class, to train alongside 8-class data).
        layout: ``"auto"``, ``"csv"`` or ``"folders"``.
        validate: image checks for the folder layout (see ``readers.base``).
        on_error: ``"raise"`` or ``"skip"`` (bad rows / files are logged and counted).
        cache_dir: optional folder for the parsed csv (see ``parse_fer2013_csv``).

    Records: csv rows carry the image inline (48, 48) uint8 and ``meta["row"]``; folder
    records carry the file path.
    """
    base.check_num_classes(num_classes)
    base.check_validate(validate)
    policy = base.ErrorPolicy(on_error)
    root = base.require_path(root, "FER2013 root")
    if layout not in ("auto", "csv", "folders"):
        raise ValueError(f"layout must be 'auto', 'csv' or 'folders', got {layout!r}")
    csv_path = find_fer2013_csv(root) if layout in ("auto", "csv") else None
    if csv_path is not None:
        return _read_csv(csv_path, split, num_classes, policy, cache_dir)
    if layout == "csv":
        raise FileNotFoundError(f"no FER2013 csv at {root!r} (looked for {', '.join(CSV_NAMES)})")
    if not any(os.path.isdir(os.path.join(root, s)) for s in ("train", "test")):
        raise FileNotFoundError(f"{root!r} holds neither fer2013.csv[.gz] nor train/ and test/ "
                                "folders")
    return _read_folders(root, split, num_classes, policy, validate)
