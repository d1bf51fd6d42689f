"""Generic ``root/<class>/<image>`` folders (AffectNet, RAF-DB, BookClub-style exports).

Folder names are mapped onto the canonical vocabulary (``keras_fer.labels``): the usual
spellings (``anger``, ``happiness``, ``sadness``...) are recognised, ``label_map`` renames any
other folder (or drops it with ``None``), and ``extra_classes`` declares names outside the
vocabulary (the generator's ``closed_eyes``). Extra classes are appended after the canonical
eight, in the order given, so that index ``i < 8`` always means the same emotion. They must be
declared: a label_map value that is neither canonical nor declared is an error, so a typo
never becomes a new class.

Layout: either ``root/<class>/*`` (records get ``split=None``) or ``root/<split>/<class>/*``
where every sub-folder of ``root`` is a split name (``train``, ``val``, ``test``...); with
``split="train"`` only ``root/train`` is read.
"""

import collections
import os

from keras_fer.datasets.readers import base
from keras_fer.datasets.records import Record
from keras_fer.labels import EMOTIONS

# Label folders of the published numeric layouts.
LABEL_MAP_PRESETS = {
    # AffectNet expression codes; 8 none, 9 uncertain, 10 no-face are not emotions.
    "affectnet": {"0": "neutral", "1": "happy", "2": "sad", "3": "surprise", "4": "fear",
                  "5": "disgust", "6": "angry", "7": "contempt", "8": None, "9": None,
                  "10": None},
    # RAF-DB basic emotions.
    "rafdb": {"1": "surprise", "2": "fear", "3": "disgust", "4": "happy", "5": "sad",
              "6": "angry", "7": "neutral"},
}

SPLIT_FOLDERS = ("train", "training", "val", "valid", "validation", "test", "testing")

_UNKNOWN = object()


class LabelResolver:
    """Maps a folder name to a class name, ``None`` (dropped on purpose) or ``_UNKNOWN``."""

    def __init__(self, label_map=None, extra_classes=()):
        if isinstance(label_map, str):
            if label_map not in LABEL_MAP_PRESETS:
                raise ValueError(f"label_map must be a dict or one of "
                                 f"{sorted(LABEL_MAP_PRESETS)}, got {label_map!r}")
            label_map = LABEL_MAP_PRESETS[label_map]
        if label_map is not None and not isinstance(label_map, dict):
            raise ValueError(f"label_map must be a dict, a preset name or None, got "
                             f"{type(label_map).__name__}")
        extra_classes = tuple(extra_classes or ())
        clash = [c for c in extra_classes if c in EMOTIONS or base.canonical_name(c)]
        if clash:
            raise ValueError(f"extra_classes must not repeat canonical emotions, got {clash}")
        if len(set(extra_classes)) != len(extra_classes):
            raise ValueError(f"extra_classes must not repeat a name, got {extra_classes}")
        self.extra_classes = extra_classes
        self.label_map = {}
        for folder, target in (label_map or {}).items():
            self.label_map[str(folder)] = None if target is None else self._target(folder, target)

    def _target(self, folder, target):
        if target in self.extra_classes:
            return target
        name = base.canonical_name(target)
        if name is None:
            raise ValueError(f"label_map maps folder {folder!r} to {target!r}, which is neither a "
                             f"canonical emotion ({', '.join(EMOTIONS)}) nor in extra_classes "
                             f"{self.extra_classes}")
        return name

    def __call__(self, folder):
        if folder in self.label_map:
            return self.label_map[folder]
        if folder in self.extra_classes:
            return folder
        return base.canonical_name(folder) or _UNKNOWN


def scan_class_folders(root, resolve, policy, validate, split=None):
    """Lists ``root/<class>/<image>`` as ``(path, class_name, split)`` after validation.

    Returns ``(entries, excluded, ignored)``: ``excluded`` counts files of folders the label
    map drops on purpose; ``ignored`` lists non-image files. Unknown and empty class folders
    go through ``policy``.
    """
    root = base.require_path(root, "image folder")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"image folder {root!r} is not a directory")
    entries, ignored = [], []
    excluded = collections.Counter()
    folders = [n for n in base.list_dir(root) if os.path.isdir(os.path.join(root, n))]
    for name in base.list_dir(root):
        # A class folder replaced by a file (a bad copy, an archive left unpacked) would
        # otherwise drop the whole class without a word.
        if name not in folders and resolve(name) not in (None, _UNKNOWN):
            policy.fail(os.path.join(root, name), f"is a file where the class folder "
                        f"{name!r} should be: its images are missing")
    if not folders:
        raise base.DatasetError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    for folder in folders:
        folder_path = os.path.join(root, folder)
        names = base.list_dir(folder_path)
        images = [n for n in names if base.is_image_file(n)
                  and os.path.isfile(os.path.join(folder_path, n))]
        ignored += [os.path.join(folder_path, n) for n in names if n not in images]
        label = resolve(folder)
        if label is None:
            excluded[f"folder {folder!r} dropped by label_map"] += len(images)
            continue
        if label is _UNKNOWN:
            policy.fail(folder_path, f"unknown label folder {folder!r} ({len(images)} images); "
                        f"known: {', '.join(EMOTIONS)}; map it with label_map=")
            continue
        if not images:
            policy.fail(folder_path, f"class folder {folder!r} has no image files")
            continue
        for name in images:
            path = base.checked_image_path(os.path.join(folder_path, name), validate, policy)
            if path is not None:
                entries.append((path, label, split))
    return entries, excluded, ignored


def split_folders(root, split, aliases=None):
    """``[(split_name, folder)]`` to read: one split folder, all of them, or ``root`` itself."""
    root = base.require_path(root, "image folder")
    subdirs = [n for n in base.list_dir(root) if os.path.isdir(os.path.join(root, n))]
    if split is not None:
        wanted = [split] if isinstance(split, str) else list(split)
        out = []
        for name in wanted:
            name = (aliases or {}).get(name, name)
            folder = os.path.join(root, name)
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"split folder {folder!r} does not exist (split={name!r}; "
                                        f"sub-folders of {root}: {subdirs})")
            out.append((name, folder))
        return out
    if subdirs and all(n.lower() in SPLIT_FOLDERS for n in subdirs):
        return [(n, os.path.join(root, n)) for n in subdirs]
    return [(None, root)]


def classes_for(used, num_classes, extra_classes, reader):
    """Canonical prefix (7 or 8) plus the declared extra classes."""
    if num_classes is None:
        num_classes = 8 if ("contempt" in used or extra_classes) else 7
    base.check_num_classes(num_classes)
    if extra_classes and num_classes != 8:
        raise ValueError(f"num_classes must be 8 (or None) for {reader} when extra_classes are "
                         f"given: extensions come after all eight canonical classes, got "
                         f"{num_classes}")
    return tuple(EMOTIONS[:num_classes]) + tuple(extra_classes)


def entries_to_records(entries, classes, excluded, make_record=None):
    """Records for ``(path, class_name, split)`` entries; classes outside ``classes`` excluded.

    ``make_record(path, label, split)`` may return a ``Record`` with more fields (subject...)
    or ``None`` after reporting the file to the reader's error policy.
    """
    records = []
    for path, name, split in entries:
        if name not in classes:
            excluded[f"{name} (not in the {len(classes)}-class view)"] += 1
            continue
        label = classes.index(name)
        if make_record is None:
            records.append(Record(source=path, label=label, path=path, split=split))
        else:
            record = make_record(path, label, split)
            if record is not None:
                records.append(record)
    return records


def read_image_folder(root, split=None, *, label_map=None, extra_classes=(), num_classes=None,
                      validate="quick", on_error="raise", name="image_folder"):
    """Reads ``root/<class>/*`` or ``root/<split>/<class>/*`` (see module docstring).

    Args:
        root: the folder.
        split: a split folder name (or list of them); None reads every split folder, or
            ``root`` itself when it holds class folders directly.
        label_map: ``{folder: class name or None}`` or a preset (``"affectnet"``,
            ``"rafdb"``); folders not in it must be canonical spellings.
        extra_classes: names beyond the canonical eight, appended in this order.
        num_classes: 7 or 8 canonical classes; None takes 8 when contempt or an extra class
            is present, else 7. With 7, contempt images are excluded (and counted).
        validate: ``"quick"`` (default), ``"full"`` or False; see ``readers.base``.
        on_error: ``"raise"`` or ``"skip"``.
    """
    policy = base.ErrorPolicy(on_error)
    base.check_validate(validate)
    resolve = LabelResolver(label_map, extra_classes)
    entries, excluded, ignored = [], collections.Counter(), []
    for split_name, folder in split_folders(root, split):
        e, x, i = scan_class_folders(folder, resolve, policy, validate, split_name)
        entries += e
        excluded.update(x)
        ignored += i
    classes = classes_for({e[1] for e in entries}, num_classes, resolve.extra_classes, name)
    records = entries_to_records(entries, classes, excluded)
    base.check_nonempty(records, os.fspath(root), split)
    info = {"source": os.fspath(root), "excluded": dict(excluded), "ignored": ignored}
    return base.make_dataset(name, records, classes, policy, info, validate)
