"""Seed 001, chapter 4: vision transformers vs CNNs on CK+48 and JAFFE (Tables 4.1 and 4.2).

    python -m keras_fer.recipes.vit_vs_cnn [--data-root DIR] [--smoke | --paper]
        [--models resnet50d,vit_base_patch16] [--datasets ckplus48,jaffe]
        [--protocols random,subject] [--folds 5] [--max-folds N] [--epochs N]

The paper's seven models (resnet50d, vgg16, vgg19, convit_base, crossvit_base,
vit_base_resnet50, vit_base_patch16), trained one per dataset with SGD (lr 0.003, batch 10)
for 50 epochs on 224x224 images with flips / rotations / pixel augmentation, and compared on
accuracy, training time and parameters. Two evaluation protocols (SPEC 001):

* ``random``: the paper's single random split (CK+48 781/200 images, JAFFE 143/70, i.e. about
  20% and 33% held out). It leaks: the three frames of a CK+48 sequence, and a JAFFE poser's
  several takes, fall on both sides, so the test measures recognition of seen faces.
* ``subject``: ``--folds`` subject-independent folds (CK+48's ``S###`` subjects, JAFFE's
  posers): no person on both sides. ``--max-folds`` bounds how many are run.

Modes. ``--paper``: the models above, 224x224x3 (CrossViT at its native 240), SGD 0.003,
batch 10, 50 epochs, all folds; a GPU job (the paper: Colab Pro). Pretrained weights, which
the paper fine-tuned from, come from ``--weights-dir`` (local timm checkpoints; none is
downloaded). Default (CPU): the same families, sized for a 2-core CPU: 48x48 grey inputs
(CK+48's own size), tiny transformer widths, ResNet18 for ResNet50-D, VGG at 32x32 input (its
smallest), 8 epochs, batch 16, the first subject fold only. ``--smoke``: tiny synthetic data
in the real formats, JAFFE only, a CNN and a ViT row, 1 epoch.

Table per dataset: accuracy (best epoch, as the paper reports) under both protocols, last-epoch
accuracy, training time and parameters; per-run reports (confusion matrix, 3-D t-SNE of the
penultimate features, Grad-CAM) are under ``<out>/<dataset>/<protocol>/<model>/evaluation``.
"""

import itertools
import sys

from keras_fer.recipes import _common as C

RECIPE = "vit_vs_cnn"
PAPER_MODELS = ("resnet50d", "vgg16", "vgg19", "convit_base", "crossvit_base",
                "vit_base_resnet50", "vit_base_patch16")
DATASETS = ("ckplus48", "jaffe")
# The paper's held-out shares: CK+48 200 of 981, JAFFE 70 of 213.
TEST_FRACTION = {"ckplus48": 200 / 981, "jaffe": 70 / 213}
# Reported by the paper (Tables 4.1, 4.2): accuracy %, for the table's reference column.
PAPER_ACCURACY = {
    "ckplus48": {"resnet50d": 100, "vgg16": 100, "vgg19": 100, "convit_base": 100,
                 "crossvit_base": 99.5, "vit_base_resnet50": 98.51, "vit_base_patch16": 92.04},
    "jaffe": {"resnet50d": 92.86, "vgg16": 92.86, "vgg19": 94.29, "convit_base": 91.42,
              "crossvit_base": 90, "vit_base_resnet50": 95.71, "vit_base_patch16": 97.14},
}

_TINY_HYBRID = {"layers": (1, 1, 1), "embed_dim": 192, "depth": 12, "num_heads": 3}
_SMOKE_VIT = {"patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}
# paper row -> mode -> (registered arch, options, input shape)
MODELS = {
    "resnet50d": {"paper": ("resnet50d", {}, (224, 224, 3)),
                  "cpu": ("resnet18", {}, (48, 48, 1)),
                  "smoke": ("mini_xception", {}, (32, 32, 1))},
    "vgg16": {"paper": ("vgg16", {}, (224, 224, 3)),
              "cpu": ("vgg16", {}, (32, 32, 1)),
              "smoke": ("mini_xception", {}, (32, 32, 1))},
    "vgg19": {"paper": ("vgg19", {}, (224, 224, 3)),
              "cpu": ("vgg19", {}, (32, 32, 1)),
              "smoke": ("mini_xception", {}, (32, 32, 1))},
    "convit_base": {"paper": ("convit_base", {}, (224, 224, 3)),
                    "cpu": ("convit_tiny", {"patch_size": 12}, (48, 48, 1)),
                    "smoke": ("convit_tiny", {"patch_size": 8, "embed_dim": 32, "depth": 2,
                                              "num_heads": 2, "local_up_to_layer": 1},
                              (32, 32, 1))},
    "crossvit_base": {"paper": ("crossvit_base", {}, (240, 240, 3)),
                      "cpu": ("crossvit_tiny", {"patch_size": (12, 16), "img_scale": (1.0, 1.0)},
                              (48, 48, 1)),
                      "smoke": ("crossvit_tiny", {"patch_size": (8, 16), "img_scale": (1.0, 1.0),
                                                  "embed_dim": (16, 32), "num_heads": (2, 2),
                                                  "depth": ((1, 1, 0),)},
                                (32, 32, 1))},
    "vit_base_resnet50": {"paper": ("vit_base_r50_s16", {}, (224, 224, 3)),
                          "cpu": ("vit_base_r50_s16", _TINY_HYBRID, (48, 48, 1)),
                          "smoke": ("vit_base_r50_s16", {"layers": (1, 1, 1), "embed_dim": 32,
                                                         "depth": 1, "num_heads": 2},
                                    (32, 32, 1))},
    "vit_base_patch16": {"paper": ("vit_base_patch16", {}, (224, 224, 3)),
                         "cpu": ("vit_tiny_patch16", {"patch_size": 12}, (48, 48, 1)),
                         "smoke": ("vit_tiny_patch16", _SMOKE_VIT, (32, 32, 1))},
}
SMOKE_MODELS = ("resnet50d", "vit_base_patch16")
SMOKE_DATA = {"ckplus48": dict(subjects=4, frames=2),
              "jaffe": dict(posers=("KA", "KL", "KM", "KR"), takes=1, size=48)}

SETTINGS = {
    # epochs, batch size, max folds (None: all)
    "paper": dict(epochs=50, batch_size=10, max_folds=None),
    "cpu": dict(epochs=8, batch_size=16, max_folds=1),
    "smoke": dict(epochs=1, batch_size=8, max_folds=1),
}


def parse_args(argv=None):
    p = C.make_parser(RECIPE, __doc__)
    p.add_argument("--protocols", default="random,subject",
                   help="comma-separated: random (the paper's split), subject (folds)")
    p.add_argument("--folds", type=int, default=None,
                   help="subject folds (default 5; 2 with --smoke)")
    p.add_argument("--max-folds", type=int, default=None,
                   help="run only the first N subject folds (default: all with --paper, 1 "
                        "otherwise)")
    p.add_argument("--learning-rate", type=float, default=0.003)
    return p.parse_args(argv)


def dataset_splits(name, protocols, args, settings):
    """``[(tags, train, test)]`` of dataset ``name`` under each of ``protocols``."""
    dataset = C.load_dataset(name, args.data_root)
    print(dataset.summary())
    folds = args.folds or (2 if args.smoke else 5)
    max_folds = args.max_folds or settings["max_folds"]
    return C.splits_under(dataset, protocols, folds=folds, test_fraction=TEST_FRACTION[name],
                          seed=args.seed, max_folds=max_folds)


def build_runs(args):
    mode = C.mode_of(args)
    settings = SETTINGS[mode]
    default_models = SMOKE_MODELS if args.smoke else PAPER_MODELS
    models = C.selected(PAPER_MODELS, args.models, "models") if args.models else default_models
    protocols = C.selected(("random", "subject"), args.protocols, "protocols")
    default_datasets = ("jaffe",) if args.smoke and not args.datasets else DATASETS
    splits = [(name, split) for name in C.selected(default_datasets, args.datasets, "datasets")
              for split in dataset_splits(name, protocols, args, settings)]
    runs = []
    for (name, (tags, train_data, test_data)), model in itertools.product(splits, models):
        arch, options, shape = MODELS[model][mode]
        config = C.base_config(
            arch=arch, arch_options=C.with_weights(options, arch, args.weights_dir),
            input_shape=shape, batch_size=args.batch_size or settings["batch_size"],
            epochs=args.epochs or settings["epochs"], optimizer="sgd",
            learning_rate=args.learning_rate, momentum=0.9, augment="basic", seed=args.seed,
            verbose=args.verbose)
        runs.append(C.Run(key=C.run_key(name, tags, model), config=config,
                          train_data=train_data, val_data=test_data,
                          tags=dict(tags, dataset=name, model=model, arch=arch)))
    return runs


def tables(rows, args):
    mode = C.mode_of(args)
    agg = C.aggregate(rows, ("dataset", "model", "protocol"))
    sections = []
    for dataset_name in dict.fromkeys(r["dataset"] for r in agg):
        table_rows = []
        for model in dict.fromkeys(r["model"] for r in agg if r["dataset"] == dataset_name):
            by_protocol = {r["protocol"]: r for r in agg
                           if r["dataset"] == dataset_name and r["model"] == model}
            any_row = next(iter(by_protocol.values()))
            arch, options, shape = MODELS[model][mode]
            table_rows.append(dict(
                model=model, arch=_describe(arch, options, shape),
                random=by_protocol.get("random"), subject=by_protocol.get("subject"),
                params=any_row.get("params"),
                seconds=(by_protocol.get("random") or any_row).get("train_seconds"),
                paper=PAPER_ACCURACY[dataset_name].get(model),
                n=any_row.get("n"), error=any_row.get("error")))

        def acc(protocol, key="accuracy"):
            def cell(r):
                a = r.get(protocol)
                if not a or a.get(key) is None:
                    return "—" if not a else f"FAILED: {str(a.get('error'))[:60]}"
                return C.fmt_pct(a[key], a.get(f"{key}_std"))
            return cell

        columns = [("№", lambda r: table_rows.index(r) + 1), ("Model", "model"),
                   ("Run as", "arch"),
                   ("Accuracy, % (random split)", acc("random")),
                   ("Accuracy, % (subject folds)", acc("subject")),
                   ("Last-epoch acc. (subject)", acc("subject", "last_accuracy")),
                   ("Training time", lambda r: C.fmt_seconds(r["seconds"])),
                   ("Params (M)", lambda r: C.fmt_millions(r["params"])),
                   ("Paper acc., %", "paper")]
        name = {"ckplus48": "CK+48 (Table 4.1)", "jaffe": "JAFFE (Table 4.2)"}[dataset_name]
        sections.append((f"{name}", C.markdown_table(table_rows, columns)))
    return sections


def _describe(arch, options, shape):
    opts = ", ".join(f"{k}={v}" for k, v in options.items() if k != "weights")
    return f"{arch} {shape[0]}x{shape[1]}x{shape[2]}" + (f" ({opts})" if opts else "")


def main(argv=None):
    args = C.prepare(parse_args(argv), RECIPE, SMOKE_DATA)
    runs = build_runs(args)
    rows = C.run_all(runs, args.out, force=args.force)
    mode = C.mode_of(args)
    notes = [C.sizes_note(mode), f"data: {args.data_root}",
             "accuracy: the test split at the best epoch (the paper's model selection, "
             "optimistic); subject folds: mean ± std over the folds run",
             "random split leaks on CK+48/JAFFE (same person on both sides); the subject "
             "folds do not",
             f"training time: summed epoch times on this machine ({mode} settings)"]
    C.write_results(args.out, "ViT variants vs CNNs (seed 001, Tables 4.1/4.2)",
                    tables(rows, args), rows, notes, settings=vars(args))
    return C.exit_code(rows)


if __name__ == "__main__":
    sys.exit(main())
