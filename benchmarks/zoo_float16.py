"""Stores the weights of the package's bundled zoo models as float16 and measures what it
changes, on the seeded probe batch and on real images of each model's data set.

    python benchmarks/zoo_float16.py [--data-root DIR] [--models a,b] [--dry-run]

``--data-root`` defaults to ``$KERAS_FER_DATA`` or ``../shared/data``. The real images:

* FER2013 / FERPlus models: the stratified 10 % holdout (seed 0) of the Training rows, the
  validation split of the recipe's holdout entries (``zoo_checkpoints``; never PublicTest).
  For an entry whose protocol is that holdout (``resnet18.fer2013``) these images are held
  out of its training, and the accuracy before and after is measured too; the others were
  trained on them, so only the change of the outputs is reported.
* CK+48 / JAFFE models: every image of the data set (they are trained on all of them).

Without ``--dry-run`` each bundled entry still stored in float32 is converted in place with
``keras_fer.zoo.publish.compact_release`` (the ``.keras`` file, the model card and the entry,
together), its real-image check recorded in ``weights_storage.data_check``. With it, copies
are converted and measured and the package is left as it is.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from keras_fer.recipes import _common as C
from keras_fer.recipes.zoo_checkpoints import ENTRIES, INPUT_SHAPE
from keras_fer.zoo import compact, store
from keras_fer.zoo.publish import compact_release
from keras_fer.zoo.entry import ZooEntry


def real_images(entry, data_root):
    """``{"images", "labels" (held-out data only), "data"}`` for ``compact.store_float16``."""
    from keras_fer.datasets.pipeline import make_dataset

    dataset = C.load_dataset(entry.dataset, data_root)
    if entry.dataset in ("fer2013", "ferplus"):
        (_, _, dataset), = C.protocol_splits(dataset, "holdout", test_fraction=0.1, seed=0)
        data = (f"{entry.dataset} Training rows, the stratified 10 % holdout of seed 0 that "
                f"is the recipe's validation split")
    else:
        data = f"every {entry.dataset} image, all of them training data"
    if list(dataset.classes) != list(entry.class_names):
        raise SystemExit(f"{entry.name}: data classes {list(dataset.classes)} are not the "
                         f"model's {entry.class_names}")
    batches = make_dataset(dataset, image_size=INPUT_SHAPE[:2], channels=INPUT_SHAPE[2],
                           batch_size=256, shuffle=False, label_mode="int",
                           normalization={"scale": 1.0})
    images = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    held_out = ENTRIES.get(entry.name, {}).get("protocol") == "holdout"
    return {"images": images, "labels": labels if held_out else None, "data": data}


def dry_run(entry, check):
    """The record ``store_float16`` would write, for a copy of the bundled file."""
    source = store.bundled_files_dir(entry.name) / entry.keras_file
    with tempfile.TemporaryDirectory() as tmp:
        return compact.store_float16(source, os.path.join(tmp, entry.keras_file), check=check)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=os.environ.get(C.DATA_ENV, "../shared/data"))
    p.add_argument("--models", default=None, help="comma-separated names (default: every "
                   "bundled entry with weights)")
    p.add_argument("--dry-run", action="store_true", help="measure on copies; change nothing")
    args = p.parse_args(argv)
    entries = {path.stem: ZooEntry.from_json(path)
               for path in sorted((store.BUNDLED_DIR / "entries").glob("*.json"))}
    rows = []
    for name in args.models.split(",") if args.models else entries:
        entry = entries[name]
        if not entry.pretrained:
            continue
        if entry.weights_storage.get("dtype") == "float16" and not args.dry_run:
            print(f"{name}: already stored as float16")
            storage = entry.weights_storage
        else:
            start = time.perf_counter()
            check = real_images(entry, args.data_root)
            storage = (dry_run(entry, check) if args.dry_run
                       else compact_release(name, check=check).weights_storage)
            print(f"{name}: {time.perf_counter() - start:.0f} s")
        rows.append((name, storage))
    print("\n| model | .keras float32 | float16 | probe max dsoftmax | real images | "
          "max dsoftmax | top-1 changed | accuracy float32 -> float16 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in rows:
        c = s.get("data_check", {})
        accuracy = (f"{100 * c['accuracy_float32']:.2f} % -> {100 * c['accuracy_float16']:.2f} %"
                    if "accuracy_float32" in c else "-")
        print(f"| `{name}` | {s['float32_bytes'] / 1e6:.2f} MB | {s['bytes'] / 1e6:.2f} MB | "
              f"{s['max_softmax_diff']:.4f} | {c.get('images', '-')} | "
              f"{c.get('max_softmax_diff', float('nan')):.4f} | "
              f"{c.get('changed_top1', '-')} | {accuracy} |")
    total = sum(info["bytes"] for path in (store.BUNDLED_DIR / "entries").glob("*.json")
                for info in ZooEntry.from_json(path).files.values())
    print(f"\nbundled files in all: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
