"""What every reader shares: error policy, label names, split names, folder scans, validation.

Every reader takes ``on_error="raise"`` (default: the first bad record stops the read with an
error naming the file / row and the problem) or ``on_error="skip"`` (the record is logged on
the ``keras_fer.datasets`` logger at WARNING level and appended to ``dataset.skipped`` as
``(source, reason)``). Structural problems that make a whole file unreadable (wrong csv
columns, a missing root, a FERPlus file whose row count does not match fer2013.csv) always
raise: there is nothing sensible to skip.

Image validation (``validate=``) for readers that keep file paths, decided as follows.
Decoding every file up front and again in the input pipeline doubles the I/O of large
folders (AffectNet has ~300k files), while finding a corrupt file only mid-epoch wastes a
training run. So the default ``"quick"`` parses each file's header with Pillow (catches
0-byte files, non-images, unknown formats) and checks that the file ends the way its format
must (PNG's IEND chunk, JPEG's EOI marker, TIFF strips inside the file), which catches
truncated downloads without decoding pixels; only a file that fails the tail check is fully
decoded to decide, so a valid file with trailing bytes is never rejected. ``"full"`` decodes
every file with ``read_image`` (the pipeline's own reader); ``False``/``"none"`` defers all
checks to the pipeline. With ``on_error="skip"``, ``"quick"`` decodes every file too: a
corrupt byte inside the pixel data passes the quick checks, and a file the reader was told
to skip must not stop an epoch later.
"""

import logging
import os
import warnings

from keras_fer.datasets.image_io import ImageReadError, open_image, read_image
from keras_fer.datasets.records import FERDataset
from keras_fer.labels import EMOTIONS

logger = logging.getLogger("keras_fer.datasets")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                    ".ppm")

# Spellings used by the published datasets for the canonical names.
LABEL_ALIASES = {
    "anger": "angry", "angry": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral",
    "contempt": "contempt",
}


class DatasetError(ValueError):
    """A dataset file that cannot be read as its format says; the message names where and why."""


class ErrorPolicy:
    """Raise on the first bad record, or log, count and remember it (``on_error="skip"``)."""

    def __init__(self, on_error):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.skipped = []

    def fail(self, source, reason, error_type=DatasetError):
        if self.on_error == "raise":
            raise error_type(f"{source}: {reason}")
        logger.warning("skipping %s: %s", source, reason)
        self.skipped.append((str(source), str(reason)))


def canonical_name(name):
    """The canonical emotion for a dataset's spelling (case-insensitive), or ``None``."""
    return LABEL_ALIASES.get(str(name).strip().lower())


def check_num_classes(num_classes, allowed=(7, 8)):
    """``num_classes`` if allowed, else a ``ValueError`` naming the choices."""
    if num_classes not in allowed:
        raise ValueError(f"num_classes must be one of {allowed}, got {num_classes!r}")
    return num_classes


def resolve_splits(split, aliases, reader):
    """``split`` (None, a name, or a list of names) as a list of official names, or None.

    ``aliases`` maps every accepted spelling (official names included) to the official name.
    """
    if split is None:
        return None
    names = [split] if isinstance(split, str) else list(split)
    resolved = []
    for name in names:
        key = aliases.get(name, aliases.get(str(name).lower()))
        if key is None:
            raise ValueError(f"split must be one of {sorted(set(aliases))} for {reader}, "
                             f"got {name!r}")
        resolved.append(key)
    return list(dict.fromkeys(resolved))


def require_path(path, what):
    """``path`` as a string, or a ``FileNotFoundError`` that says which input is missing."""
    if path is None:
        raise ValueError(f"{what}: a path is required, got None")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist")
    return path


def find_first(candidates):
    """The first existing path among ``candidates``, or None."""
    for path in candidates:
        if path and os.path.exists(path):
            return path
    return None


def is_image_file(name):
    """Whether ``name`` has an image extension (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_dir(folder):
    """Visible entries of ``folder``, sorted so that every read is in the same order."""
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


def _tail_is_complete(path, fmt, img):
    """Whether the file ends as its format requires (cheap truncation check, no decoding)."""
    size = os.path.getsize(path)
    if fmt == "PNG":
        with open(path, "rb") as f:
            f.seek(max(0, size - 12))
            return b"IEND" in f.read()
    if fmt == "JPEG":
        with open(path, "rb") as f:
            f.seek(max(0, size - 64))
            return b"\xff\xd9" in f.read()
    if fmt == "TIFF":
        tags = getattr(img, "tag_v2", {})
        offsets, counts = tags.get(273), tags.get(279)  # StripOffsets, StripByteCounts
        if offsets is None or counts is None:
            return True
        offsets = offsets if isinstance(offsets, tuple) else (offsets,)
        counts = counts if isinstance(counts, tuple) else (counts,)
        return max(o + c for o, c in zip(offsets, counts)) <= size
    return True


def validate_image_file(path, level="quick"):
    """Raises ``ImageReadError`` (naming ``path``) if the file cannot be used; see module doc."""
    if level in (False, None, "none"):
        return
    if level in (True, "full"):
        _decode(path)
        return
    if level != "quick":
        raise ValueError(f"validate must be 'quick', 'full' or False, got {level!r}")
    try:
        # Pillow warns about corrupt metadata before failing; the error below says it all.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_image(path) as img:
                complete = _tail_is_complete(path, img.format, img)
    except ImageReadError:
        raise
    except Exception as err:  # Pillow raises many types for a mangled header
        raise ImageReadError(f"{path}: corrupt image header ({err})") from None
    if not complete:
        # The tail check can be fooled by valid files with trailing bytes: decoding decides.
        _decode(path)


def _decode(path):
    try:
        read_image(path)
    except ImageReadError:
        raise
    except Exception as err:  # e.g. EOFError / struct.error from a decoder plugin
        raise ImageReadError(f"{path}: corrupt image ({type(err).__name__}: {err})") from None


def check_validate(validate):
    """``validate`` if it is a known level (see the module docstring)."""
    if validate not in (True, False, None, "quick", "full", "none"):
        raise ValueError(f"validate must be 'quick', 'full' or False, got {validate!r}")
    return validate


def checked_image_path(path, validate, policy):
    """``path`` if it passes validation; otherwise the policy raises or records a skip.

    With ``on_error="skip"`` the quick check becomes a full decode: a file with one corrupt
    byte inside its pixel data passes the header and tail checks, and skipping is a promise
    that the training pipeline will not meet a bad file later, mid-epoch.
    """
    if validate == "quick" and policy.on_error == "skip":
        validate = "full"
    try:
        validate_image_file(path, validate)
    except ImageReadError as err:
        reason = str(err)
        prefix = f"{path}: "
        policy.fail(path, reason[len(prefix):] if reason.startswith(prefix) else reason,
                    error_type=ImageReadError)
        return None
    return path


def make_dataset(name, records, classes, policy, info, validate=None):
    """The ``FERDataset`` plus a log line that says how much was read and left out.

    For file-based datasets ``info["validated"]`` records how far the files were checked
    (``"quick"``, ``"full"`` or ``"none"``), so that the input pipeline need not repeat it.
    """
    if validate == "quick" and policy.on_error == "skip":
        validate = "full"  # see checked_image_path
    if any(r.path is not None for r in records):
        info = dict(info, validated={True: "full", False: "none", None: "none"}.get(
            validate, validate))
    dataset = FERDataset(name, records, classes, skipped=policy.skipped, info=info)
    excluded = sum(info.get("excluded", {}).values())
    logger.info("%s: read %d records, skipped %d, excluded by rule %d", name, len(dataset),
                len(dataset.skipped), excluded)
    return dataset


def check_nonempty(records, what, split):
    """An empty result is always a mistake (wrong root, wrong split): say so."""
    if not records:
        raise DatasetError(f"{what}: no records" + (f" for split {split}" if split else ""))


def canonical_classes(num_classes):
    """The first ``num_classes`` canonical emotion names."""
    return EMOTIONS[:num_classes]
