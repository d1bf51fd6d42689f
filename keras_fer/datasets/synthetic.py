"""Tiny synthetic datasets written in the real published on-disk formats.

For smoke runs (``python -m keras_fer.recipes.<name> --smoke``), demos and tests that must exercise the
real readers (``keras_fer.datasets.load``) without the real data, which a user's checkout
never has. Each writer produces the layout of the shared copy (see ``load``'s readers):

* ``write_ckplus48``: ``<root>/ckplus48/CK+48/<folder>/S###_###_########.png`` (48x48 grey),
  three consecutive "frames" per sequence, like CK+48;
* ``write_jaffe``: ``<root>/jaffe/images/<XX>.<CODE><take>.<number>.tiff``;
* ``write_fer2013``: ``<root>/fer2013/fer2013.csv.gz`` (``emotion,pixels,Usage``);
* ``write_ferplus``: ``<root>/ferplus/fer2013new.csv``, ten votes per row of the FER2013 file
  written next to it (FERPlus reads its pixels from ``../fer2013/``);
* ``write_image_folder``: ``<root>/<name>/<split>/<class>/*.png`` (an AffectNet-style export);
* ``write_mnist``: a Keras-layout ``mnist.npz`` of digits drawn with OpenCV's Hershey font.

Images are not noise: each class draws a different pattern (an oriented grating whose angle
is the class index), under per-image noise, a per-subject brightness and small shifts, so a
model trained for an epoch or two can beat chance and a smoke run shows learning, not only
plumbing. Everything is a deterministic function of the arguments (``seed``).
"""

import csv
import gzip
import os

import numpy as np
from PIL import Image

from keras_fer.labels import EMOTIONS
from keras_fer.validation import positive_int

# Canonical class -> each dataset's own name or code.
CKPLUS_FOLDERS = {"angry": "anger", "contempt": "contempt", "disgust": "disgust",
                  "fear": "fear", "happy": "happy", "sad": "sadness", "surprise": "surprise"}
JAFFE_CODES = {"angry": "AN", "disgust": "DI", "fear": "FE", "happy": "HA", "neutral": "NE",
               "sad": "SA", "surprise": "SU"}
FERPLUS_VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                        "fear", "contempt", "unknown", "NF")
# Canonical index -> FERPlus vote column.
_FERPLUS_COLUMN = {6: 0, 3: 1, 5: 2, 4: 3, 0: 4, 1: 5, 2: 6, 7: 7}


def synthetic_face(label, seed, size=(48, 48), subject_shift=0.0, num_patterns=8):
    """A deterministic uint8 grey image whose pattern encodes ``label``.

    An oriented sinusoidal grating (angle ``pi * label / num_patterns``) inside an elliptic
    "face" mask, plus Gaussian noise, a random phase and a ``subject_shift`` in brightness.
    """
    if label < 0:
        raise ValueError(f"label must be >= 0, got {label}")
    h, w = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    yy, xx = yy / h - 0.5, xx / w - 0.5
    angle = np.pi * label / num_patterns
    freq = 3.0 + (label % 3)
    phase = rng.uniform(0, 2 * np.pi)
    grating = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
    mask = ((xx / 0.42) ** 2 + (yy / 0.48) ** 2) <= 1.0
    image = 110.0 + 40.0 * subject_shift + 60.0 * grating * mask
    image += rng.normal(0.0, 18.0, size=(h, w))
    return np.clip(image, 0, 255).astype(np.uint8)


def _save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_ckplus48(root, subjects=4, frames=3, size=48, seed=0):
    """CK+48 layout: every subject poses every one of the seven CK+ classes in one sequence of
    ``frames`` consecutive frames. Returns the dataset root (``<root>/ckplus48``)."""
    subjects = positive_int(subjects, "subjects")
    frames = positive_int(frames, "frames")
    base = os.path.join(root, "ckplus48")
    k = seed
    for s in range(subjects):
        shift = np.random.default_rng(seed + 7919 * s).uniform(-1, 1)
        for q, (canonical, folder) in enumerate(CKPLUS_FOLDERS.items(), 1):
            for fr in range(frames):
                name = f"S{100 + s:03d}_{q:03d}_{10 + fr:08d}.png"
                image = synthetic_face(EMOTIONS.index(canonical), k, (size, size), shift)
                _save(os.path.join(base, "CK+48", folder, name), image)
                k += 1
    return base


def write_jaffe(root, posers=("KA", "KL", "KM", "KR", "MK"), takes=2, size=64, seed=0):
    """JAFFE layout: every poser shows the seven expressions ``takes`` times (grey TIFFs).
    Returns the dataset root (``<root>/jaffe``)."""
    takes = positive_int(takes, "takes")
    if not posers:
        raise ValueError("posers must name at least one poser, got an empty list")
    base = os.path.join(root, "jaffe")
    number, k = 1, seed
    for p, poser in enumerate(posers):
        shift = np.random.default_rng(seed + 104729 * (p + 1)).uniform(-1, 1)
        for canonical, code in JAFFE_CODES.items():
            for take in range(1, takes + 1):
                image = synthetic_face(EMOTIONS.index(canonical), k, (size, size), shift)
                _save(os.path.join(base, "images", f"{poser}.{code}{take}.{number}.tiff"), image)
                number += 1
                k += 1
    return base


def _fer2013_rows(per_class_train, per_class_test, seed):
    rows = []
    k = seed
    for usage, n in (("Training", per_class_train), ("PublicTest", per_class_test)):
        for i in range(n):
            for code in range(7):
                rows.append((code, synthetic_face(code, k), usage))
                k += 1
    return rows


def write_fer2013(root, per_class_train=10, per_class_test=4, seed=0):
    """FER2013's Kaggle csv, gzipped: ``per_class_train`` Training and ``per_class_test``
    PublicTest rows of each of the seven classes. Returns ``<root>/fer2013``."""
    per_class_train = positive_int(per_class_train, "per_class_train")
    per_class_test = positive_int(per_class_test, "per_class_test")
    base = os.path.join(root, "fer2013")
    os.makedirs(base, exist_ok=True)
    lines = ["emotion,pixels,Usage"]
    for code, image, usage in _fer2013_rows(per_class_train, per_class_test, seed):
        lines.append(f"{code},{' '.join(str(int(v)) for v in image.ravel())},{usage}")
    with gzip.open(os.path.join(base, "fer2013.csv.gz"), "wb") as f:
        f.write(("\n".join(lines) + "\n").encode())
    return base


def ferplus_votes(label, rng, annotators=10):
    """Ten FERPlus votes (column order of ``FERPLUS_VOTE_COLUMNS``) with a clear majority for
    canonical ``label`` and the rest spread over two other emotions (a soft distribution)."""
    votes = np.zeros(len(FERPLUS_VOTE_COLUMNS), np.int64)
    main = _FERPLUS_COLUMN[label]
    majority = int(rng.integers(6, annotators + 1))
    votes[main] = majority
    others = [c for c in range(8) if c != main]
    for _ in range(annotators - majority):
        votes[others[int(rng.integers(0, 2))]] += 1
    return votes


def write_ferplus(root, per_class_train=10, per_class_test=4, seed=0):
    """FERPlus's ``fer2013new.csv`` and the FER2013 csv it labels (``write_fer2013`` with the
    same arguments, so row *i* of one labels row *i* of the other). The FER2013 code of each
    row gets a vote majority; contempt appears in the votes but is never a majority.
    Returns ``<root>/ferplus``."""
    write_fer2013(root, per_class_train, per_class_test, seed)
    base = os.path.join(root, "ferplus")
    os.makedirs(base, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    rows = _fer2013_rows(per_class_train, per_class_test, seed)
    with open(os.path.join(base, "fer2013new.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("Usage", "Image name") + FERPLUS_VOTE_COLUMNS)
        for i, (code, _, usage) in enumerate(rows):
            votes = ferplus_votes(code, rng)
            writer.writerow([usage, f"fer{i:07d}.png"] + [str(v) for v in votes])
    return base


def write_image_folder(root, name="affectnet_like", per_class=6,
                       classes=EMOTIONS, splits=("train", "val"), size=64, seed=0):
    """``<root>/<name>/<split>/<class>/<i>.png`` with ``per_class`` images of every class in
    every split (canonical class names as folder names). Returns ``<root>/<name>``."""
    per_class = positive_int(per_class, "per_class")
    base = os.path.join(root, name)
    k = seed
    for split in splits:
        for class_name in classes:
            label = EMOTIONS.index(class_name) if class_name in EMOTIONS else len(EMOTIONS)
            for i in range(per_class):
                image = synthetic_face(label, k, (size, size))
                _save(os.path.join(base, split, class_name, f"{i:04d}.png"), image)
                k += 1
    return base


def write_mnist(path, n_train=600, n_test=100, seed=0):
    """A Keras-layout ``mnist.npz`` (``x_train`` uint8 (n, 28, 28), ``y_train``, ``x_test``,
    ``y_test``) of real-looking digits: label ``i % 10`` drawn with OpenCV's Hershey font at
    a random scale, thickness, offset and slant, plus noise. Returns ``path``."""
    import cv2

    n_train = positive_int(n_train, "n_train")
    n_test = positive_int(n_test, "n_test")
    rng = np.random.default_rng(seed)

    def digits(n):
        images = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):
            canvas = np.zeros((28, 28), np.uint8)
            scale = rng.uniform(0.7, 0.95)
            thickness = int(rng.integers(2, 4))
            org = (int(rng.integers(5, 10)), int(rng.integers(20, 25)))
            cv2.putText(canvas, str(i % 10), org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255,
                        thickness, cv2.LINE_AA)
            shear = np.float32([[1, rng.uniform(-0.25, 0.25), 0], [0, 1, 0]])
            canvas = cv2.warpAffine(canvas, shear, (28, 28))
            noisy = canvas.astype(np.float64) + rng.normal(0, 8, canvas.shape)
            images[i] = np.clip(noisy, 0, 255).astype(np.uint8)
        return images, (np.arange(n) % 10).astype(np.uint8)

    x_train, y_train = digits(n_train)
    x_test, y_test = digits(n_test)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


WRITERS = {"ckplus48": write_ckplus48, "jaffe": write_jaffe, "fer2013": write_fer2013,
           "ferplus": write_ferplus, "image_folder": write_image_folder}


def write_datasets(root, names=("ckplus48", "jaffe", "fer2013", "ferplus"), **options):
    """Writes the named datasets under ``root`` in the shared data folder's layout, so that
    ``root`` can be passed wherever ``KERAS_FER_DATA`` is expected. ``options`` maps a
    dataset name to its writer's keyword arguments. Returns ``{name: dataset root}``."""
    unknown = [n for n in names if n not in WRITERS]
    if unknown:
        raise ValueError(f"names must be among {sorted(WRITERS)}, got unknown {unknown}")
    return {n: WRITERS[n](root, **options.get(n, {})) for n in names}
