"""Writers of tiny datasets in the real published formats, for tests (no real data needed).

Plain functions so that any test module can use them (``from datasets_fixtures import ...``;
pytest puts ``tests/`` on ``sys.path``). Every image is deterministic (``face(seed)``).
"""

import csv
import gzip
import os

import numpy as np
from PIL import Image

FER2013_CODES = {"angry": 0, "disgust": 1, "fear": 2, "happy": 3, "sad": 4, "surprise": 5,
                 "neutral": 6}
FERPLUS_HEADER = ("Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger",
                  "disgust", "fear", "contempt", "unknown", "NF")


def face(seed, size=(48, 48)):
    """A deterministic uint8 grey image."""
    return np.random.default_rng(seed).integers(0, 256, size=size, dtype=np.uint8)


def write_image(path, array, fmt=None, mode=None):
    """Saves ``array`` with Pillow (format from the extension unless ``fmt``)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    img = Image.fromarray(np.asarray(array, dtype=np.uint8))
    if mode == "P":
        img = img.convert("RGB").convert("P")
    img.save(path, format=fmt)
    return path


def pixels_text(array):
    return " ".join(str(int(v)) for v in np.asarray(array).ravel())


def write_fer2013_csv(path, rows, header=("emotion", "pixels", "Usage")):
    """``rows``: ``(emotion, pixels, usage)``; pixels an array or a ready-made string.

    ``.gz`` paths are gzip-compressed, like the shared copy.
    """
    lines = [",".join(header)]
    for emotion, pixels, usage in rows:
        text = pixels if isinstance(pixels, str) else pixels_text(pixels)
        lines.append(f"{emotion},{text},{usage}")
    data = ("\n".join(lines) + "\n").encode()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(data)
    return path


def fer2013_rows(spec, seed=0):
    """Rows for ``write_fer2013_csv`` from ``[(usage, emotion code), ...]``; row i shows
    ``face(seed + i)``."""
    return [(code, face(seed + i), usage) for i, (usage, code) in enumerate(spec)]


def write_ferplus_csv(path, rows):
    """``rows``: ``(usage, image name, votes)`` with 10 votes (FERPlus column order)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FERPLUS_HEADER)
        for usage, name, votes in rows:
            w.writerow([usage, name] + [str(v) for v in votes])
    return path


def write_ferplus_folder(folder, rows, write_images=True):
    """FERPlus's own layout: ``folder/label.csv`` (no header) + ``folder/<name>`` PNGs.

    ``rows``: ``(image name, votes)``.
    """
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "label.csv"), "w", newline="") as f:
        w = csv.writer(f)
        for i, (name, votes) in enumerate(rows):
            w.writerow([name, "(0, 0, 48, 48)"] + [str(v) for v in votes])
            if write_images:
                write_image(os.path.join(folder, name), face(1000 + i))
    return folder


def write_ckplus_tree(root, items, size=(48, 48)):
    """``root/CK+48/<folder>/S<subject>_<seq>_<frame>.png`` for ``items`` =
    ``[(folder, subject number, sequence number, frame number), ...]``; returns the CK+48 dir."""
    base = os.path.join(root, "CK+48")
    for i, (folder, subject, sequence, frame) in enumerate(items):
        name = f"S{subject:03d}_{sequence:03d}_{frame:08d}.png"
        write_image(os.path.join(base, folder, name), face(i, size))
    return base


def ckplus_items(subjects, folders=("anger", "happy", "surprise"), frames=3):
    """Every subject posing every folder's expression once (one sequence, ``frames`` frames)."""
    items = []
    for s in subjects:
        for q, folder in enumerate(folders, 1):
            for fr in range(frames):
                items.append((folder, s, q, 10 + fr))
    return items


def write_jaffe_tree(root, items, ratings=None, palette=(), size=(64, 64)):
    """``root/images/<poser>.<code><take>.<number>.tiff`` for ``items`` =
    ``[(poser, code, take, number), ...]``; ``ratings``: ``{number: (6 scores, name)}`` written
    to ``root/JAFFE_labels.txt``; numbers in ``palette`` are saved as palette TIFFs."""
    images = os.path.join(root, "images")
    for i, (poser, code, take, number) in enumerate(items):
        path = os.path.join(images, f"{poser}.{code}{take}.{number}.tiff")
        write_image(path, face(i, size), mode="P" if number in palette else None)
    if ratings is not None:
        with open(os.path.join(root, "JAFFE_labels.txt"), "w") as f:
            for number, (scores, name) in sorted(ratings.items()):
                f.write(f"{number} " + " ".join(f"{s:.2f}" for s in scores) + f" {name}\n")
    return root


def write_image_folder(root, counts, ext="png", size=(32, 32), seed=0):
    """``root/<class>/<i>.<ext>`` with ``counts = {class folder: n}``."""
    k = seed
    for folder, n in counts.items():
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for i in range(n):
            write_image(os.path.join(root, folder, f"{i:04d}.{ext}"), face(k, size))
            k += 1
    return root


def write_mnist_npz(path, n_train=20, n_test=10, seed=0):
    """A Keras-layout ``mnist.npz`` with labels ``i % 10``."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    np.savez(path, x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
             y_train=np.arange(n_train) % 10,
             x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
             y_test=np.arange(n_test) % 10)
    return path


def truncate_file(path, keep=0.5):
    """Cuts ``path`` to a fraction of its bytes (a truncated download)."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:max(1, int(len(data) * keep))])
    return path


def write_bytes(path, data=b""):
    """Writes raw bytes (``b""`` gives a 0-byte file, other bytes a non-image)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path
