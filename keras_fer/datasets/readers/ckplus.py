"""CK+48: the last three frames of each CK+ sequence, 48x48 grey PNGs in class folders.

Layout ``CK+48/<class>/S<subject>_<sequence>_<frame>.png`` with folders anger, contempt,
disgust, fear, happy, sadness, surprise (no neutral). ``subject`` is ``"S010"``;
``meta`` holds ``sequence`` (``"S010_004"``) and ``frame`` (17). Because three consecutive
frames of one sequence are near-duplicates, CK+48 has no official split and random splits
leak (see ``keras_fer.datasets.splits``): use ``subject_kfold`` or ``leave_one_subject_out``.
"""

import collections
import os
import re

from keras_fer.datasets.readers import base
from keras_fer.datasets.readers.image_folder import (LabelResolver, classes_for,
                                                     entries_to_records, scan_class_folders)
from keras_fer.datasets.records import Record

CKPLUS_FOLDERS = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
_FILE_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)\.\w+$")


def _find_root(root):
    """``root`` itself if it holds the class folders, else ``root/CK+48``."""
    if any(os.path.isdir(os.path.join(root, f)) for f in CKPLUS_FOLDERS):
        return root
    inner = os.path.join(root, "CK+48")
    if os.path.isdir(inner):
        return inner
    raise FileNotFoundError(f"{root!r} holds neither CK+48 class folders "
                            f"({', '.join(CKPLUS_FOLDERS)}) nor a CK+48/ folder")


# The seven classes CK+48 really has, in canonical order: no neutral, contempt last.
CKPLUS_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "contempt")


def read_ckplus48(root, split=None, *, num_classes=None, validate="quick", on_error="raise"):
    """Reads CK+48 (see module docstring).

    Args:
        root: the ``CK+48`` folder or its parent.
        split: must be None: CK+48 has no official split.
        num_classes: None (default): the seven classes CK+48 has (``CKPLUS_CLASSES``,
            contempt included, no neutral), so a model trained on it has no output that was
            never trained. 8: the canonical view (neutral empty), to merge with 8-class
            data. 7: the canonical first seven (contempt images excluded and counted).
        validate: ``"quick"`` (default), ``"full"`` or False (see ``readers.base``).
        on_error: ``"raise"`` or ``"skip"``; a file name without ``S###_###_###`` is an error.
    """
    if split is not None:
        raise ValueError(f"split must be None for CK+48, which has no official split, got "
                         f"{split!r}; use keras_fer.datasets.splits.subject_kfold")
    if num_classes is not None:
        base.check_num_classes(num_classes)
    base.check_validate(validate)
    policy = base.ErrorPolicy(on_error)
    root = _find_root(base.require_path(root, "CK+48 root"))
    entries, excluded, ignored = scan_class_folders(root, LabelResolver(), policy, validate)
    excluded = collections.Counter(excluded)
    classes = (CKPLUS_CLASSES if num_classes is None
               else classes_for(set(), num_classes, (), "ckplus48"))

    def make_record(path, label, _split):
        match = _FILE_NAME.match(os.path.basename(path))
        if match is None:
            policy.fail(path, "file name does not follow S<subject>_<sequence>_<frame>.png, so "
                        "its subject is unknown")
            return None
        subject, sequence, frame = match.groups()
        return Record(source=path, label=label, path=path, subject=subject,
                      meta={"sequence": f"{subject}_{sequence}", "frame": int(frame)})

    records = entries_to_records(entries, classes, excluded, make_record)
    base.check_nonempty(records, root, None)
    info = {"source": root, "excluded": dict(excluded), "ignored": ignored}
    return base.make_dataset("ckplus48", records, classes, policy, info, validate)
