"""Reads every dataset once and prints per-split / per-class counts, timings and checks.

    python benchmarks/dataset_counts.py [--data-root DIR] [--png-dir DIR]

``--data-root`` defaults to ``$KERAS_FER_DATA`` or ``../shared/data``. The expected numbers
are the ones ``shared/data/README.md`` publishes; a mismatch makes the script exit with 1.
"""

import argparse
import csv
import logging
import os
import sys
import time

import numpy as np

import keras_fer.datasets as kd
from keras_fer.datasets import splits, stats
from keras_fer.datasets.readers.ferplus import ferplus_label

EXPECTED = {
    "fer2013": {"Training": 28709, "PublicTest": 3589},
    "ckplus48": {"records": 771, "subjects": 94},
    "jaffe": {"records": 169, "subjects": 8},
    "mnist": {"train": 60000, "test": 10000},
    "ferplus rows": 32298,
}


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def check(what, got, expected, failures):
    ok = got == expected
    print(f"  check {what}: {got} (expected {expected}) {'OK' if ok else 'MISMATCH'}")
    if not ok:
        failures.append(what)


def show(ds, seconds, png_dir):
    print(f"\n== {ds.name} ({seconds:.2f} s) ==")
    print(ds.summary())
    print(stats.format_counts_table(ds))
    if png_dir:
        stats.plot_class_counts(ds, os.path.join(png_dir, f"{ds.name}_counts.png"))


def ferplus_folder_counts(root):
    """Majority-mode counts of FERPlus's own label.csv files (they ship without images)."""
    out = {}
    for split, folder in (("FER2013Train", "Training"), ("FER2013Valid", "PublicTest")):
        path = os.path.join(root, "data", split, "label.csv")
        if not os.path.isfile(path):
            continue
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r]
        kept = [ferplus_label([int(v) for v in r[2:]])[0] for r in rows]
        out[folder] = (len(rows), sum(k is not None for k in kept))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("KERAS_FER_DATA",
                                                               "../shared/data"))
    parser.add_argument("--png-dir", default=None, help="also save a bar chart per dataset")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    root = args.data_root
    if args.png_dir:
        os.makedirs(args.png_dir, exist_ok=True)
    failures = []

    fer, t = timed(kd.load, "fer2013", os.path.join(root, "fer2013", "fer2013.csv.gz"))
    show(fer, t, args.png_dir)
    for split, n in EXPECTED["fer2013"].items():
        check(f"FER2013 {split}", sum(r.split == split for r in fer), n, failures)

    ferplus, t = timed(kd.load, "ferplus", os.path.join(root, "ferplus"))
    show(ferplus, t, args.png_dir)
    rows = len(ferplus) + sum(ferplus.info["excluded"].values()) + len(ferplus.skipped)
    check("FERPlus rows", rows, EXPECTED["ferplus rows"], failures)
    for mode in ("probability", "multi_target"):
        other, t = timed(kd.load, "ferplus", os.path.join(root, "ferplus"), label_mode=mode)
        print(f"  label_mode={mode}: {len(other)} images kept ({t:.2f} s), per split "
              f"{ {s: len(i) for s, i in other.split_indices().items()} }")
    for split, (n_rows, kept) in ferplus_folder_counts(os.path.join(root, "ferplus")).items():
        print(f"  FERPlus folder label.csv {split}: {n_rows} rows, {kept} with a majority "
              "emotion")

    ck, t = timed(kd.load, "ckplus48", os.path.join(root, "ckplus48"))
    show(ck, t, args.png_dir)
    check("CK+48 images", len(ck), EXPECTED["ckplus48"]["records"], failures)
    check("CK+48 subjects", len(splits.subject_names(ck)), EXPECTED["ckplus48"]["subjects"],
          failures)
    _, t_full = timed(kd.load, "ckplus48", os.path.join(root, "ckplus48"), validate="full")
    _, t_none = timed(kd.load, "ckplus48", os.path.join(root, "ckplus48"), validate=False)
    print(f"  CK+48 validation: quick {t:.2f} s, full {t_full:.2f} s, none {t_none:.2f} s")
    folds = splits.subject_kfold(ck, 10, seed=0)
    sizes = [len(te) for _, te in folds]
    print(f"  subject_kfold(k=10): test sizes {sizes}")
    print("  per-fold test class counts:")
    for i, counts in enumerate(splits.fold_class_counts(ck, folds)):
        print(f"    fold {i}: {counts}")

    jaffe, t = timed(kd.load, "jaffe", os.path.join(root, "jaffe"), ratings=True)
    show(jaffe, t, args.png_dir)
    check("JAFFE images", len(jaffe), EXPECTED["jaffe"]["records"], failures)
    check("JAFFE posers", len(splits.subject_names(jaffe)), EXPECTED["jaffe"]["subjects"],
          failures)
    per_poser = {s: len(te) for s, (_, te) in zip(splits.subject_names(jaffe),
                                                  splits.leave_one_subject_out(jaffe))}
    print(f"  images per poser: {per_poser}")

    mnist, t = timed(kd.load, "mnist", os.path.join(root, "mnist"))
    show(mnist, t, args.png_dir)
    for split, n in EXPECTED["mnist"].items():
        check(f"MNIST {split}", sum(r.split == split for r in mnist), n, failures)

    # FER2013 parse speed alone (the csv is the only large text file).
    from keras_fer.datasets.readers import base, fer2013

    times = []
    for _ in range(2):
        table, t = timed(fer2013.parse_fer2013_csv,
                         os.path.join(root, "fer2013", "fer2013.csv.gz"),
                         base.ErrorPolicy("raise"))
        times.append(t)
    print(f"\nFER2013 csv.gz parse: {len(table)} rows in {min(times):.2f} s (best of 2), "
          f"{np.mean(times):.2f} s mean")

    print("\nall checks OK" if not failures else f"\nMISMATCHES: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
