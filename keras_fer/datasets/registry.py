"""One door to every reader: ``list_datasets()`` and ``load(name, root, split=None, **options)``."""

import inspect

from keras_fer.datasets import readers

_READERS = {
    "fer2013": (readers.read_fer2013, "FER2013 Kaggle csv (plain/gzip) or train/test jpg folders"),
    "ferplus": (readers.read_ferplus, "FERPlus votes joined with FER2013 pixels"),
    "ckplus48": (readers.read_ckplus48, "CK+48 class folders with subject ids"),
    "jaffe": (readers.read_jaffe, "JAFFE TIFFs, labels and posers from file names"),
    "image_folder": (readers.read_image_folder, "generic root/<class>/* folders"),
    "mnist": (readers.read_mnist, "MNIST mnist.npz (Keras layout), classes 0..9"),
}


def register_dataset(name, reader, description=""):
    """Adds ``reader(root, split=None, **options) -> FERDataset`` under ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in _READERS:
        raise ValueError(f"name {name!r} is already registered")
    if not callable(reader):
        raise ValueError(f"reader must be callable, got {type(reader).__name__}")
    _READERS[name] = (reader, description)


def list_datasets(with_descriptions=False):
    """Registered dataset names (sorted), or ``{name: description}``."""
    if with_descriptions:
        return {n: _READERS[n][1] for n in sorted(_READERS)}
    return sorted(_READERS)


def load(name, root, split=None, **options):
    """Reads dataset ``name`` from ``root``; ``options`` go to its reader (see its docstring).

    Options most readers share: ``num_classes`` (7 or 8 canonical classes), ``on_error``
    (``"raise"``, or ``"skip"`` to log, count and list bad records in ``dataset.skipped``)
    and, for file-based datasets, ``validate`` (``"quick"`` by default: headers and file
    endings are checked at load time so corrupt or truncated files are named up front without
    decoding every image; ``"full"`` decodes each file; False defers to the pipeline).
    Unknown names and options raise ``ValueError`` naming what is accepted.
    """
    if name not in _READERS:
        raise ValueError(f"name must be one of {list_datasets()}, got {name!r}")
    reader = _READERS[name][0]
    params = inspect.signature(reader).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params or k in ("root", "split")]
    if unknown and not accepts_any:
        allowed = [k for k in params if k not in ("root", "split")]
        raise ValueError(f"unknown option(s) {unknown} for dataset {name!r}; accepted: {allowed}")
    return reader(root, split, **options)
