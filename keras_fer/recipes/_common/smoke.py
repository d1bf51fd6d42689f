"""The ``--smoke`` data: tiny synthetic datasets in the real on-disk formats
(``keras_fer.datasets.synthetic``), written once under a recipe's output folder."""

import os
import shutil

MARKER = ".complete"


def writer(spec):
    """A function ``folder -> None`` writing the datasets of ``spec``, a dict mapping a
    dataset name to its ``synthetic`` writer's keyword arguments (e.g. ``{"ckplus48":
    {"subjects": 4, "frames": 2}}``), in the shared data folder's layout. A callable ``spec``
    is returned as it is."""
    if callable(spec):
        return spec

    def write(folder):
        from keras_fer.datasets import synthetic

        synthetic.write_datasets(folder, tuple(spec), **spec)

    return write


def smoke_data_root(out, recipe, spec):
    """``<out>/data``, where the datasets of ``spec`` (see ``writer``) are written on the
    first call; later calls reuse them (a marker file says the writing finished)."""
    folder = os.path.join(out, "data")
    marker = os.path.join(folder, MARKER)
    if not os.path.exists(marker):
        shutil.rmtree(folder, ignore_errors=True)
        if spec is None:
            raise ValueError(f"recipe {recipe!r} has no smoke data writer")
        writer(spec)(folder)
        with open(marker, "w") as f:
            f.write("synthetic smoke data, keras_fer.datasets.synthetic\n")
    return folder


def write_smoke_ckplus48(folder, seed=0, subjects=6):
    """A tiny CK+48 tree in the real layout under ``folder`` (``keras_fer.datasets.
    synthetic.write_ckplus48``: seven classes, ``subjects`` subjects, 3 frames each; enough
    subjects for 5 subject folds). Returns the root to pass to the ckplus48 reader."""
    from keras_fer.datasets import synthetic

    return synthetic.write_ckplus48(folder, subjects=subjects, seed=seed)


def write_smoke_mnist(path, seed=0, n_train=600, n_test=100):
    """A small Keras-layout ``mnist.npz`` of drawn digits at ``path`` (see
    ``keras_fer.datasets.synthetic.write_mnist``). Returns ``path``."""
    from keras_fer.datasets import synthetic

    return synthetic.write_mnist(path, n_train=n_train, n_test=n_test, seed=seed)
