"""MNIST in the Keras ``mnist.npz`` layout, for the generator's "mutation table" experiment.

Keys ``x_train`` (60000, 28, 28) uint8, ``y_train`` (60000,), ``x_test``, ``y_test``. Classes
are the digits ``"0"`` .. ``"9"`` (not emotions: this is the one dataset outside the
canonical vocabulary). Splits ``train`` and ``test``.
"""

import os

import numpy as np

from keras_fer.datasets.readers import base
from keras_fer.datasets.records import Record

MNIST_CLASSES = tuple(str(d) for d in range(10))
SPLIT_ALIASES = {"train": "train", "training": "train", "Training": "train", "test": "test"}


def read_mnist(root, split=None, *, on_error="raise"):
    """Reads ``mnist.npz`` (``root`` = the file or a folder holding it).

    A label outside 0..9 goes through ``on_error``; missing keys or mismatched lengths raise.
    """
    policy = base.ErrorPolicy(on_error)
    root = base.require_path(root, "MNIST root")
    path = root if os.path.isfile(root) else os.path.join(root, "mnist.npz")
    base.require_path(path, "MNIST file")
    splits = base.resolve_splits(split, SPLIT_ALIASES, "MNIST") or ["train", "test"]
    name = os.path.basename(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as err:
        raise base.DatasetError(f"{path}: not a readable .npz file ({err})") from None
    records = []
    with npz:
        for s in splits:
            keys = (f"x_{s}", f"y_{s}")
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise base.DatasetError(f"{path}: missing arrays {missing} (has {npz.files})")
            x, y = npz[keys[0]], npz[keys[1]]
            if x.ndim != 3 or len(x) != len(y):
                raise base.DatasetError(f"{path}: {keys[0]} must be (n, height, width) with n = "
                                        f"len({keys[1]}), got {x.shape} and {y.shape}")
            x = x.astype(np.uint8, copy=False)
            for i, label in enumerate(y.tolist()):
                where = f"{name}:{keys[1]}[{i}]"
                if not isinstance(label, int) or not 0 <= label <= 9:
                    policy.fail(where, f"label {label!r} is not a digit 0..9")
                    continue
                records.append(Record(source=where, label=label, image=x[i], split=s))
    base.check_nonempty(records, path, split)
    info = {"source": path, "excluded": {}}
    return base.make_dataset("mnist", records, MNIST_CLASSES, policy, info)
