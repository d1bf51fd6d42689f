"""The zoo's list of entries: JSON files, read fresh on every call.

Two places hold entries:

- the package's own ``keras_fer/zoo/entries/<name>.json`` (shipped with the wheel);
- the user's ``$KERAS_FER_HOME/entries/<name>.json`` (what ``publish`` writes by default).

A user entry with the same name as a packaged one wins, as a local cache wins over the
package's files: it lets a user re-publish or correct an entry without editing the install.
Nothing is cached in memory, so an entry published a moment ago is listed at once.
"""

import difflib
import fnmatch
import warnings

from keras_fer.zoo import store
from keras_fer.zoo.entry import ZooEntry


def entry_dirs():
    """Folders searched for entries, lowest priority first."""
    return [store.BUNDLED_DIR / "entries", store.home() / "entries"]


def _entry_paths():
    paths = {}
    for folder in entry_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                if not path.name.startswith("."):  # temporary files of an atomic write
                    paths[path.stem] = path
    return paths


class ZooEntryWarning(UserWarning):
    """An entry file that cannot be read and is left out of ``list_models``."""


def _readable(names, paths):
    """``names`` whose entry file reads as a valid entry; each other one is skipped with a
    ``ZooEntryWarning`` naming the file, so one broken file does not hide every model."""
    kept = []
    for name in names:
        try:
            describe(name)
        except (ValueError, OSError) as err:
            text = str(err)
            where = "" if str(paths[name]) in text else f"{paths[name]}: "
            warnings.warn(f"skipped the zoo entry {name!r}: {where}{text}", ZooEntryWarning,
                          stacklevel=3)
            continue
        kept.append(name)
    return kept


def list_models(pattern=None, pretrained=None):
    """Sorted names of the readable entries (an unreadable or invalid entry file is skipped
    with a ``ZooEntryWarning`` naming it).

    Args:
        pattern: a shell pattern on the name (``"mini_xception.*"``, ``"*.fer2013"``).
        pretrained: True lists entries that have a weights file, False those without
            (architecture-only entries), None all.
    """
    if pretrained not in (None, True, False):
        raise ValueError(f"pretrained must be None, True or False, got {pretrained!r}")
    paths = _entry_paths()
    names = sorted(paths)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    names = _readable(names, paths)
    if pretrained is not None:
        names = [n for n in names if describe(n).pretrained == pretrained]
    return names


def describe(name):
    """The ``ZooEntry`` of ``name`` (its ``summary()`` prints it, ``to_dict()`` gives JSON)."""
    if isinstance(name, ZooEntry):
        return name
    paths = _entry_paths()
    if name not in paths:
        known = sorted(paths)
        close = similar_names(name, known)
        if close and close[0] == _normalized(name):
            hint = (f" Did you mean {close[0]!r}? (names are lower case, with underscores "
                    f"and one dot)")
        else:
            hint = f" Similar: {', '.join(close)}." if close else ""
        raise ValueError(
            f"unknown zoo model {name!r}.{hint} Known: {', '.join(known) or 'none'} (entries "
            f"are read from {' and '.join(str(d) for d in entry_dirs())}; see "
            f"keras_fer.zoo.list_models()).")
    entry = ZooEntry.from_json(paths[name])
    if entry.name != name:
        raise ValueError(f"{paths[name]}: the file is named for {name!r} but holds the entry "
                         f"{entry.name!r}; rename one of them")
    return entry


def _normalized(name):
    return str(name).strip().lower().replace("-", "_")


def similar_names(name, known):
    """Known names close to ``name``, best first, compared case- and dash-insensitively
    (``MINI-XCEPTION.FER2013`` -> ``mini_xception.fer2013``); none for an empty name."""
    key = _normalized(name)
    if not key.strip("._"):
        return []
    if key in known:
        return [key]
    stem = key.split(".")[0]
    family = stem.split("_")[0]
    close = [n for n in known if n.split(".")[0] == stem]
    close += difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    if len(family) >= 3:
        close += fnmatch.filter(known, f"*{family}*")
    return list(dict.fromkeys(close))[:5]
