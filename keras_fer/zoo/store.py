"""Where the zoo's files live, how they are found, fetched and checked.

Lookup order for a file of entry ``name`` (first place that has it wins):

1. the local cache ``$KERAS_FER_HOME/models/<name>/`` (``KERAS_FER_HOME`` defaults to
   ``~/.keras_fer``; ``publish`` writes there by default);
2. the files bundled with the package, ``keras_fer/zoo/files/<name>/`` (``BUNDLED_DIR``);
3. the entry's ``url`` (``<url>/<file>``; ``https://``, ``http://`` or ``file://``),
   downloaded into the cache.

Every file is checked against the sha256 and size recorded in the entry before it is used.
A file that is found but does not match is an error, never skipped for the next place: a
silently different model is worse than a failure. Downloads land in a temporary name and are
renamed into place only after the check, so a broken transfer never leaves a bad file.
"""

import contextlib
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from keras_fer.paths import home

#: The package's own zoo folder (``entries/`` and ``files/`` live here). A module attribute,
#: read at call time, so tests can point it at a temporary folder.
BUNDLED_DIR = Path(__file__).resolve().parent

DOWNLOAD_TIMEOUT_S = 60


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# tempfile creates private (0600 / 0700) paths; what we publish gets ordinary permissions.
_UMASK = _umask()


class ZooFileError(OSError):
    """A zoo file that cannot be used; the message says what to do."""


class MissingFileError(ZooFileError, FileNotFoundError):
    """No lookup place has the file (the message lists where it looked)."""


class HashMismatchError(ZooFileError):
    """A file whose sha256 or size differs from the entry's."""


def cache_dir(name):
    return home() / "models" / name


def bundled_files_dir(name):
    return BUNDLED_DIR / "files" / name


def sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path):
    """The ``files`` value of an entry for ``path``: ``{"sha256": ..., "bytes": ...}``."""
    return {"sha256": sha256(path), "bytes": os.path.getsize(path)}


def hash_tree(root):
    """``{relative POSIX path: file_record}`` for every file under ``root``, sorted."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): file_record(p)
            for p in sorted(root.rglob("*")) if p.is_file()}


def verify(path, expected, name, filename):
    """Raises ``HashMismatchError`` unless ``path`` has the ``expected`` size and sha256."""
    size = os.path.getsize(path)
    got = sha256(path)
    if got != expected["sha256"] or size != expected["bytes"]:
        raise HashMismatchError(
            f"{path}: does not match the zoo entry {name!r} for {filename!r}: expected sha256 "
            f"{expected['sha256']} ({expected['bytes']} bytes), got {got} ({size} bytes). The "
            f"file is corrupt, truncated or from another model: delete it and retry (it is "
            f"fetched again when the entry has a url), or publish the model again.")
    return path


def locate(entry, filenames, download=True):
    """The folder holding all of ``filenames`` of ``entry``, every one verified.

    The files are taken together from one place (a SavedModel is a folder whose files must
    belong together): the cache when it has them all, else the bundled folder when it has
    them all, else the cache completed by downloads from ``entry.url``.
    """
    filenames = [filenames] if isinstance(filenames, str) else list(filenames)
    unknown = [f for f in filenames if f not in entry.files]
    if unknown:
        has = ", ".join(sorted(entry.files)) or ("no files: it is an architecture-only "
                                                 "entry; use load(name, weights=False)")
        raise MissingFileError(f"zoo entry {entry.name!r} lists no file "
                               f"{', '.join(map(repr, unknown))} (it has: {has}).")
    cache, bundled = cache_dir(entry.name), bundled_files_dir(entry.name)
    for root in (cache, bundled):
        if all((root / f).is_file() for f in filenames):
            for f in filenames:
                verify(root / f, entry.files[f], entry.name, f)
            return root
    missing = [f for f in filenames if not (cache / f).is_file()]
    problem = None
    if entry.url and download:
        try:
            for f in missing:
                _download(entry, f, cache / f)
            return locate(entry, filenames, download=False)
        except (urllib.error.URLError, OSError, ValueError) as err:
            if isinstance(err, HashMismatchError):
                raise
            problem = f"downloading from {entry.url} failed ({err}; is the machine offline?)"
    where = [f"the cache {cache} (KERAS_FER_HOME={home()})", f"the package's bundled files "
             f"{bundled}"]
    if entry.url:
        where.append(problem or f"the url {entry.url} (downloads disabled)")
    else:
        where.append("no url (the entry has none)")
    raise MissingFileError(
        f"zoo model {entry.name!r}: file(s) {', '.join(missing or filenames)} not found. Looked "
        f"in: {'; '.join(where)}. To get them: run `keras-fer zoo publish <model.keras> --name "
        f"{entry.name} ...` (it writes into the cache), copy the published folder to {cache}, "
        f"point KERAS_FER_HOME at a folder that has models/{entry.name}/, or set the entry's "
        f"url and go online.")


def _download(entry, filename, target):
    url = f"{entry.url.rstrip('/')}/{filename}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target) as tmp:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, \
                open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
        verify(tmp, entry.files[filename], entry.name, f"{filename} downloaded from {url}")


# -- atomic writes ----------------------------------------------------------------------
# A reader must never see half an artifact, even if the writer dies: everything is written
# under a hidden temporary name next to its target (same file system, so the final
# os.replace is one atomic rename) and renamed into place when complete.

@contextlib.contextmanager
def atomic_file(target):
    """Yields a temporary path next to ``target``; renamed onto ``target`` on success,
    removed on error."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text_atomic(target, text):
    with atomic_file(target) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_dir(target, overwrite=False):
    """Yields an empty temporary folder next to ``target``; it becomes ``target`` on success
    and is removed on error. With ``overwrite`` an existing ``target`` is replaced (moved
    aside, then deleted once the new one is in place); without, it is an error."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to "
                              f"replace it, or choose another name or version")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old",
                                        dir=target.parent))
            os.replace(target, old / "replaced")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def temporary_dir(target):
    """A new empty hidden folder next to ``target`` (same file system, so it can be renamed
    onto it), with ordinary permissions."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


@contextlib.contextmanager
def staging_dir(target):
    """``temporary_dir(target)`` for the block to fill (and hand to ``commit_release``);
    removed if the block fails."""
    tmp = temporary_dir(target)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def commit_release(folder, target, entry_path, entry_text, overwrite=False):
    """Swaps a complete model ``folder`` into place as ``target`` and writes ``entry_text``
    to ``entry_path``, as one step: on any failure, what was done is undone, so the folder
    and the entry stay either both old or both new. ``folder`` itself is left to the caller
    on failure."""
    target, entry_path = Path(target), Path(entry_path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to "
                              f"replace it, or choose another name or version")
    entry_path.parent.mkdir(parents=True, exist_ok=True)
    fd, entry_tmp = tempfile.mkstemp(prefix=f".{entry_path.name}.", suffix=".tmp",
                                     dir=entry_path.parent)
    os.close(fd)
    aside = None  # a hidden folder holding the old target while the new one moves in
    moved_in = False
    try:
        with open(entry_tmp, "w", encoding="utf-8") as f:
            f.write(entry_text)
            f.flush()
            os.fsync(f.fileno())  # the entry must not reach the disk after its rename
        os.chmod(entry_tmp, 0o666 & ~_UMASK)
        if target.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old",
                                          dir=target.parent))
            os.replace(target, aside / "replaced")
        os.replace(folder, target)
        moved_in = True
        os.replace(entry_tmp, entry_path)  # the commit point: the registry reads entries
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(entry_tmp)
        if moved_in:
            os.replace(target, folder)
        if aside is not None:
            if (aside / "replaced").exists():
                os.replace(aside / "replaced", target)
            shutil.rmtree(aside, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
