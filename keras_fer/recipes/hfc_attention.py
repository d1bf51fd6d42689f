"""Seed 002: high-frequency spatial attention in ResNet18 and MobileNetV2 (Tables 1 and 2).

    python -m keras_fer.recipes.hfc_attention [--data-root DIR] [--smoke | --paper]
        [--models resnet18,mobilenetv2] [--datasets fer2013,jaffe,ckplus48]
        [--variants vanilla,bam,hfc] [--no-ablation] [--protocols subject|random]

Table 2: vanilla vs +BAM vs +HFC ("Ours") for ResNet18 (4 modules, +708 parameters) and
MobileNetV2 (7 modules, +767), on FER2013, JAFFE and CK+48, with per-class accuracy at the
best epoch and its mean ("Average", the paper's figure). Table 1: the query ablation on
ResNet18 / CK+: HFC, LFC, HFC+LFC (two cross-correlation maps concatenated before the 7x7
conv), HFC+LFC+HL (plus the HFC-query / LFC-key map). BAM is
``BAM(conv_bias=False, batch_norm="none")``: the configuration whose parameter count equals
the paper's +23,808 / +11,192 (see ``keras_fer.layers.BAM``).

Paper settings (``--paper``): 224x224x3, cross-entropy, 100 epochs, Adam lr 1e-4 (MobileNetV2
1e-3 on JAFFE and CK+), ``ReduceLROnPlateau(factor 0.3, patience 5)`` on the validation loss,
batch 32 (FER2013) / 8 (JAFFE) / 16 (CK+), random splits of CK+ (735/246) and JAFFE (158/55),
FER2013 Training vs test (here PublicTest: PrivateTest is held out of the shared data).

CPU defaults: 48x48 grey inputs, 6 epochs, Adam 1e-3 for both networks (from scratch, few
epochs), plateau patience 2, a class-stratified share of FER2013 (150 training and 60 test
images per class), and CK+48 / JAFFE on the first subject-independent fold (the random split
leaks the same person into the test side; ``--protocols random`` gives the paper's). At 48x48
the attention maps are 12, 12, 6 and 3 pixels wide (ResNet18), where the module's default
1-bin cutoff would leave a 3x3 map no high frequency: the CPU and smoke modes use a relative
cutoff (a quarter of each map's half size, ``relative_cutoff=True``). The FFT high-pass has
little room at these sizes, so CPU numbers test the plumbing and the trend, not the paper's
effect size. ``--paper`` keeps the module's default (1 bin at 56, 56, 28 and 14 pixels).
``--smoke``: synthetic CK+48 only, ResNet18, 1 epoch.

Pretrained mode (``--init SOURCE``, e.g. ``--init zoo:resnet18.fer2013``; issue 12 item 4):
every variant (vanilla, BAM, HFC and the ablation) is fine-tuned from the same trained
ResNet18, its weights copied by layer path (``TrainConfig.init_mode="layers"``): the source's
architecture options (the zoo backbone's half width and dropout 0.2) and input (48x48x1), the
attention modules and nothing else at their initialisation. Training uses the CK+48 transfer
settings of ``zoo_checkpoints``' ``resnet18.ckplus48`` entry (AdamW 5e-4, weight decay 0.05,
cosine, label smoothing 0.1, batch 32, BN momentum 0.9, 15 epochs), on 10 subject folds (all
run, the same folds for every variant) and reports the LAST epoch's accuracy (no epoch chosen
on the test fold). Each variant is compared with vanilla fold by fold: mean difference, paired
t-test and Wilcoxon signed-rank p-values (``results.md``, ``results.json``) and
``paired_folds.png`` (each fold's accuracy per variant, lines joining a fold). The inserted
modules start as the identity (``--attention-init identity``: their ``identity_init``
option) so that the trained features reach the head unchanged at the first step: at the
paper's initialisation the modules cut the source's FER2013 accuracy from 58 % to 15-20 %
(HFC and its ablation) or 27 % (BAM) before any training (``benchmarks/attention_at_init.py``);
``--attention-init paper`` keeps it. A zoo entry can be re-published while a sweep runs
(each run loads the source when it starts and records its sha256; the results warn when they
differ): pin it with a file, ``--init FILE.keras``, as docs/recipes.md does.
"""

import copy
import itertools
import os
import sys

from keras_fer.recipes import _common as C

RECIPE = "hfc_attention"
ARCHS = ("resnet18", "mobilenetv2")
DATASETS = ("fer2013", "jaffe", "ckplus48")
VARIANTS = ("vanilla", "bam", "hfc")
ABLATION = ("lfc", "hfc+lfc", "hfc+lfc+hl")
ATTENTION = {"vanilla": None, "bam": "bam", "hfc": "hfc", "lfc": "lfc", "hfc+lfc": "hfc+lfc",
             "hfc+lfc+hl": "hfc+lfc+hl"}
LABELS = {"vanilla": "", "bam": " + BAM", "hfc": " + Ours (HFC)", "lfc": " + LFC",
          "hfc+lfc": " + (HFC, LFC)", "hfc+lfc+hl": " + (HFC, LFC, HL)"}
# The paper's held-out shares: CK+ 246 of 981, JAFFE 55 of 213.
TEST_FRACTION = {"ckplus48": 246 / 981, "jaffe": 55 / 213}
PAPER_BATCH = {"fer2013": 32, "jaffe": 8, "ckplus48": 16}
SMOKE_DATA = {"ckplus48": dict(subjects=4, frames=2),
              "jaffe": dict(posers=("KA", "KL", "KM", "KR"), takes=1, size=48),
              "fer2013": dict(per_class_train=4, per_class_test=2)}
# Table 2's "Average" for reference.
PAPER_AVERAGE = {
    ("fer2013", "resnet18"): {"vanilla": 59.56, "bam": 60.35, "hfc": 60.43},
    ("fer2013", "mobilenetv2"): {"vanilla": 56.09, "bam": 56.56, "hfc": 57.02},
    ("jaffe", "resnet18"): {"vanilla": 96.17, "bam": 96.43, "hfc": 94.64},
    ("jaffe", "mobilenetv2"): {"vanilla": 69.13, "bam": 76.28, "hfc": 73.98},
    ("ckplus48", "resnet18"): {"vanilla": 86.9, "bam": 90.43, "hfc": 92.31, "lfc": 86.88,
                               "hfc+lfc": 91.7, "hfc+lfc+hl": 87.73},
    ("ckplus48", "mobilenetv2"): {"vanilla": 80.25, "bam": 88.25, "hfc": 89.34},
}

MODES = {
    "paper": dict(shape=(224, 224, 3), epochs=100, patience=5, fer_per_class=None,
                  fer_test_per_class=None, protocol="random", archs=ARCHS, datasets=DATASETS,
                  variants=VARIANTS, ablation=True, relative_cutoff=None),
    "cpu": dict(shape=(48, 48, 1), epochs=6, patience=2, fer_per_class=150,
                fer_test_per_class=60, protocol="subject", archs=ARCHS, datasets=DATASETS,
                variants=VARIANTS, ablation=True, relative_cutoff=0.25),
    "smoke": dict(shape=(32, 32, 1), epochs=1, patience=1, fer_per_class=None,
                  fer_test_per_class=None, protocol="subject", archs=("resnet18",),
                  datasets=("ckplus48",), variants=VARIANTS, ablation=False,
                  relative_cutoff=0.25),
}
# --init: the fine-tune from a trained ResNet18 (the input shape is the source's).
PRETRAINED = dict(folds=10, datasets=("ckplus48",), variants=VARIANTS, relative_cutoff=0.25)
PRETRAINED_DATASETS = ("ckplus48", "jaffe")
#: The transfer settings of this zoo entry (zoo_checkpoints), 91.1 +- 5.2 % on CK+48.
TRANSFER_ENTRY = "resnet18.ckplus48"
ATTENTION_INITS = ("identity", "paper")
PAIRED_PICTURE = "paired_folds.png"


def parse_args(argv=None):
    p = C.make_parser(RECIPE, __doc__)
    p.add_argument("--variants", default=None,
                   help=f"comma-separated subset of {VARIANTS + ABLATION} (default: "
                        "vanilla,bam,hfc plus the ablation on ResNet18 / CK+48)")
    p.add_argument("--no-ablation", action="store_true",
                   help="leave out Table 1's LFC / HFC+LFC / HFC+LFC+HL runs")
    p.add_argument("--protocols", default=None,
                   help="CK+48 / JAFFE protocol(s): random (the paper's) and/or subject "
                        "(default: random with --paper, subject otherwise)")
    p.add_argument("--folds", type=int, default=None,
                   help="subject folds (default 5, 10 with --init; 2 with --smoke)")
    p.add_argument("--max-folds", type=int, default=None,
                   help="subject folds run (default 1; all with --init)")
    p.add_argument("--fer-per-class", type=int, default=None,
                   help="FER2013 training images per class (default: all with --paper, 150)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="override the learning rate of every run")
    p.add_argument("--init", default=None, metavar="SOURCE",
                   help="pretrained mode: fine-tune every variant from this trained ResNet18 "
                        "(zoo:NAME, a .keras file or a run folder; e.g. zoo:resnet18.fer2013), "
                        "weights copied by layer path, 10 subject folds, paired test against "
                        "vanilla (see above)")
    p.add_argument("--attention-init", choices=ATTENTION_INITS, default=None,
                   help="how the inserted modules start: identity (their identity_init "
                        "option; the default with --init) or paper (the papers' random "
                        "initialisation; the default otherwise)")
    args = p.parse_args(argv)
    check_pretrained_args(p, args)
    return args


def check_pretrained_args(parser, args):
    """The pretrained mode's argument errors (``parser.error``: exit status 2)."""
    if not args.init:
        return
    from keras_fer.training.warm_start import check_init

    try:
        check_init(args.init)
    except ValueError as err:
        parser.error(f"--init: {err}")
    if args.paper:
        parser.error("--init fine-tunes at the source's input size (48x48x1 for the zoo's "
                     "resnet18.fer2013); --paper trains at 224x224x3 from scratch: pick one")
    if args.models and args.models.replace(" ", "") != "resnet18":
        parser.error(f"--init fine-tunes ResNet18 only (the source's architecture), got "
                     f"--models {args.models}")
    if args.datasets:
        C.selected(DATASETS, args.datasets, "datasets")  # unknown names: the usual error
        other = set(args.datasets.replace(" ", "").split(",")) - set(PRETRAINED_DATASETS)
        if other:
            parser.error(f"--init fine-tunes on {list(PRETRAINED_DATASETS)} (subject folds), "
                         f"not {sorted(other)}")
    if args.protocols and args.protocols.replace(" ", "") != "subject":
        parser.error("--init compares variants fold by fold on subject folds; the random "
                     f"split is one split (got --protocols {args.protocols})")
    if args.folds is not None and args.folds < 2:
        parser.error(f"--folds must be >= 2 for a paired comparison, got {args.folds}")
    if args.max_folds is not None and args.max_folds < 1:
        parser.error(f"--max-folds must be >= 1, got {args.max_folds}")


def learning_rate(mode, arch, dataset):
    if mode == "paper":  # seed 002, section 4.2
        return 1e-3 if arch == "mobilenetv2" and dataset != "fer2013" else 1e-4
    return 1e-3


def dataset_splits(name, args, settings):
    dataset = C.load_dataset(name, args.data_root)
    print(dataset.summary())
    if name == "fer2013":
        (tags, train, test), = C.protocol_splits(dataset, "official")
        train = C.subsample(train, args.fer_per_class or settings["fer_per_class"], args.seed)
        test = C.subsample(test, settings["fer_test_per_class"], args.seed)
        return [(tags, train, test)]
    protocols = C.selected(("random", "subject"), args.protocols or settings["protocol"],
                           "protocols")
    return C.splits_under(dataset, protocols, folds=args.folds or (2 if args.smoke else 5),
                          test_fraction=TEST_FRACTION[name], seed=args.seed,
                          max_folds=args.max_folds or 1)


def selection(args, settings):
    """``(archs, datasets, variants, ablation)`` chosen by the arguments and the mode."""
    archs = C.selected(ARCHS, args.models, "models") if args.models else settings["archs"]
    datasets = (C.selected(DATASETS, args.datasets, "datasets") if args.datasets
                else settings["datasets"])
    if args.variants:
        return archs, datasets, C.selected(VARIANTS + ABLATION, args.variants, "variants"), ()
    ablation = ABLATION if settings["ablation"] and not args.no_ablation else ()
    return archs, datasets, settings["variants"], ablation


def arch_options(variant, settings, identity_init=False):
    """The attention hook's options of ``variant``; BAM in the configuration whose parameter
    count is the paper's (``cnn_common.PAPER_BAM_OPTIONS``); ``identity_init``: the modules
    start as the identity (their ``identity_init`` option)."""
    if not ATTENTION[variant]:
        return {}
    options = {"attention": ATTENTION[variant]}
    layer_options = {"identity_init": True} if identity_init else {}
    if variant == "bam":
        from keras_fer.models.cnn_common import PAPER_BAM_OPTIONS

        layer_options = dict(PAPER_BAM_OPTIONS, **layer_options)
    elif settings["relative_cutoff"]:
        # Small inputs give 2x2-3x3 maps after the last stages, where a 1-bin absolute
        # cutoff would remove every frequency.
        options["attention_cutoff"] = settings["relative_cutoff"]
        layer_options["relative_cutoff"] = True
    if layer_options:
        options["attention_options"] = layer_options
    return options


def build_runs(args):
    if args.init:
        return pretrained_runs(args)
    mode = C.mode_of(args)
    settings = MODES[mode]
    identity = args.attention_init == "identity"
    archs, datasets, variants, ablation = selection(args, settings)
    splits = [(name, split) for name in datasets
              for split in dataset_splits(name, args, settings)]
    # Table 1's ablation runs on ResNet18 / CK+48 only, after that pair's Table 2 variants.
    every_variant = list(variants) + [v for v in ablation if v not in variants]
    runs = []
    for (name, (tags, train, test)), arch, variant in itertools.product(
            splits, archs, every_variant):
        if variant not in variants and (arch, name) != ("resnet18", "ckplus48"):
            continue
        config = C.base_config(
            arch=arch, arch_options=C.with_weights(arch_options(variant, settings, identity),
                                                   arch, args.weights_dir),
            input_shape=settings["shape"], batch_size=args.batch_size or PAPER_BATCH[name],
            epochs=args.epochs or settings["epochs"], optimizer="adam",
            learning_rate=args.learning_rate or learning_rate(mode, arch, name), loss="ce",
            schedule="plateau", plateau_factor=0.3, plateau_patience=settings["patience"],
            augment="basic", seed=args.seed, verbose=args.verbose)
        runs.append(C.Run(key=C.run_key(name, tags, arch, variant), config=config,
                          train_data=train, val_data=test,
                          tags=dict(tags, dataset=name, model=arch, variant=variant)))
    return runs


def source_architecture(init):
    """``(arch, arch_options, input_shape)`` of an ``init`` source: a zoo entry's record, or
    the saved model's own (``keras_fer.models.load_model``)."""
    from keras_fer.training.warm_start import ZOO_PREFIX, check_init

    check_init(init)
    if init.startswith(ZOO_PREFIX):
        from keras_fer.zoo.registry import describe

        entry = describe(init[len(ZOO_PREFIX):])
        return entry.arch, dict(entry.arch_options), tuple(entry.input_shape)
    from keras_fer.models import load_model

    model = load_model(os.path.join(init, "model.keras") if os.path.isdir(init) else init)
    return model.arch, dict(model.arch_options), tuple(model.input_shape[1:])


def source_sha256(init):
    """The sha256 of the source's weights file (a zoo entry's recorded hash), to say which
    weights every fold started from (an entry may be re-published while a sweep runs)."""
    from keras_fer.training.warm_start import ZOO_PREFIX

    if init.startswith(ZOO_PREFIX):
        from keras_fer.zoo.registry import describe

        name = init[len(ZOO_PREFIX):]
        return describe(name).files[f"{name}.keras"]["sha256"]
    import hashlib

    path = os.path.join(init, "model.keras") if os.path.isdir(init) else init
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def transfer_settings(args):
    """``TrainConfig`` fields of the fine-tune: ``zoo_checkpoints``' CK+48 transfer entry,
    with ``--epochs``, ``--batch-size`` and ``--learning-rate`` (1 epoch, batch 8 with
    ``--smoke``)."""
    from keras_fer.recipes.zoo_checkpoints import ENTRIES

    train = copy.deepcopy(ENTRIES[TRANSFER_ENTRY]["train"])
    if args.smoke:
        train.update(epochs=1, batch_size=8)
    for name in ("epochs", "batch_size", "learning_rate"):
        if getattr(args, name):
            train[name] = getattr(args, name)
    return train


def pretrained_runs(args):
    """Every variant on the same subject folds, each fold's runs fine-tuned from ``--init``."""
    arch, source_options, shape = source_architecture(args.init)
    if arch != "resnet18":
        raise SystemExit(f"--init {args.init} is a {arch}; the pretrained mode fine-tunes "
                         "ResNet18 variants (the attention hook's layer names are ResNet18's)")
    source_options = {k: v for k, v in source_options.items() if not k.startswith("attention")}
    settings = PRETRAINED
    identity = (args.attention_init or "identity") == "identity"
    datasets = (C.selected(DATASETS, args.datasets, "datasets") if args.datasets
                else settings["datasets"])
    variants = (C.selected(VARIANTS + ABLATION, args.variants, "variants") if args.variants
                else list(settings["variants"]) + ([] if args.no_ablation else list(ABLATION)))
    folds = args.folds or (2 if args.smoke else settings["folds"])
    train = transfer_settings(args)
    runs = []
    for name in datasets:
        dataset = C.load_dataset(name, args.data_root)
        print(dataset.summary())
        # One split for every variant: the folds pair up.
        splits = C.protocol_splits(dataset, "subject", folds=folds, seed=args.seed,
                                   max_folds=args.max_folds)
        for (tags, train_data, test_data), variant in itertools.product(splits, variants):
            options = dict(source_options, **arch_options(variant, settings, identity))
            config = C.base_config(
                arch=arch, arch_options=options, input_shape=shape, init=args.init,
                init_mode="layers", seed=args.seed, verbose=args.verbose, tensorboard=False,
                **train)
            runs.append(C.Run(key=C.run_key(name, tags, arch, variant), config=config,
                              train_data=train_data, val_data=test_data,
                              tags=dict(tags, dataset=name, model=arch, variant=variant)))
    return runs


def per_fold(rows, dataset, metric="accuracy"):
    """``{variant: {fold: value}}`` of the finished runs on ``dataset``."""
    table = {}
    for r in rows:
        if r.get("dataset") == dataset and "error" not in r and r.get(metric) is not None:
            table.setdefault(r["variant"], {})[r["fold"]] = r[metric]
    return table


def paired_tests(rows, dataset):
    """Each variant against vanilla on the folds both finished (``C.paired_comparison``)."""
    folds = per_fold(rows, dataset)
    base = folds.get("vanilla", {})
    if not base:
        return {}
    out = {}
    for variant, values in folds.items():
        if variant == "vanilla":
            continue
        common = sorted(set(values) & set(base))
        out[variant] = dict(C.paired_comparison([values[f] for f in common],
                                                [base[f] for f in common]), folds=common)
    return out


def pretrained_sections(rows, args):
    """The pretrained mode's tables: the variants' mean +- std over folds, the paired tests
    against vanilla, and every fold's accuracy."""
    sections, paired = [], {}
    titles = {"jaffe": "JAFFE", "ckplus48": "CK+48"}
    for dataset in dict.fromkeys(r["dataset"] for r in rows if r.get("dataset")):
        part = [r for r in rows if r.get("dataset") == dataset]
        agg = C.aggregate(part, ("variant",))
        base = next((r for r in agg if r["variant"] == "vanilla"), {})
        tests = paired[dataset] = paired_tests(part, dataset)

        def params(r):
            if r.get("params") is None:
                return "n/a"
            delta = r["params"] - base["params"] if base.get("params") is not None else 0
            return f"{r['params'] / 1e6:.3f}M" + (f" ({delta:+,})" if delta else "")

        columns = [("Model", lambda r: _label(r)), ("Param.", params), ("Folds", "n"),
                   ("Accuracy (last epoch), mean ± std", lambda r: C.fmt_pct(
                       r["accuracy"], r["accuracy_std"])),
                   ("Mean class accuracy", lambda r: C.fmt_pct(r["mean_class_accuracy"])),
                   ("Train s / fold", lambda r: f"{r['train_seconds']:.0f}")]
        sections.append((f"Fine-tuned from {args.init}: {titles[dataset]}, subject folds",
                         C.markdown_table([dict(r, model="resnet18") for r in agg], columns)))
        test_rows = [dict(t, variant=v, model="resnet18") for v, t in tests.items()]
        sections.append((f"Paired against vanilla, fold by fold ({titles[dataset]})",
                         C.markdown_table(test_rows, PAIRED_COLUMNS)))
        folds = per_fold(part, dataset)
        fold_ids = sorted({f for values in folds.values() for f in values})
        fold_columns = [("Model", lambda r: _label(r))] + [
            (f"fold {f}", (lambda f: lambda r: C.fmt_pct(folds[r["variant"]].get(f)))(f))
            for f in fold_ids]
        sections.append((f"Accuracy of every fold ({titles[dataset]})", C.markdown_table(
            [{"model": "resnet18", "variant": v} for v in folds], fold_columns)))
        picture = os.path.join(args.out, PAIRED_PICTURE if len(paired) == 1
                               else f"{dataset}_{PAIRED_PICTURE}")
        if folds.get("vanilla"):
            plot_paired_folds(folds, picture, f"{titles[dataset]}: fine-tuned from {args.init}")
    return sections, paired


def _p(value):
    return "n/a" if value is None else f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


PAIRED_COLUMNS = [
    ("Model", lambda r: _label(r)),
    ("Folds", "n"),
    ("Mean difference (points)", lambda r: "n/a" if r.get("mean_difference") is None else
     f"{100 * r['mean_difference']:+.2f}"),
    ("Std of differences", lambda r: "n/a" if r.get("std_difference") is None else
     f"{100 * r['std_difference']:.2f}"),
    ("Better / worse / tied", lambda r: f"{r['better']} / {r['worse']} / {r['tied']}"),
    ("t", lambda r: "n/a" if r.get("t_statistic") is None else f"{r['t_statistic']:.2f}"),
    ("Paired t-test p", lambda r: _p(r.get("t_p_value"))),
    ("Wilcoxon p", lambda r: _p(r.get("wilcoxon_p_value"))),
]


def plot_paired_folds(folds, path, title):
    """Left: each fold's accuracy per variant, one line per fold joining its points. Right:
    each variant minus vanilla on the same fold, with the mean difference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(folds)
    fold_ids = sorted({f for values in folds.values() for f in values})
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=80,
                                      gridspec_kw={"width_ratios": [3, 2]})
    cmap = plt.get_cmap("tab10")
    for i, fold in enumerate(fold_ids):
        xs = [j for j, v in enumerate(variants) if fold in folds[v]]
        left.plot(xs, [100 * folds[variants[j]][fold] for j in xs], "-o", ms=3, lw=0.8,
                  color=cmap(i % 10), alpha=0.7, label=f"fold {fold}")
    means = [100 * sum(folds[v].values()) / len(folds[v]) for v in variants]
    left.plot(range(len(variants)), means, "k_", ms=24, mew=2.5, label="mean")
    left.set_xticks(range(len(variants)), variants)
    left.set_ylabel("accuracy, % (last epoch)")
    left.legend(fontsize=7, ncol=2, loc="lower left")
    others = [v for v in variants if v != "vanilla"]
    for j, v in enumerate(others):
        common = sorted(set(folds[v]) & set(folds["vanilla"]))
        diffs = [100 * (folds[v][f] - folds["vanilla"][f]) for f in common]
        right.scatter([j] * len(diffs), diffs, s=12,
                      color=[cmap(fold_ids.index(f) % 10) for f in common])
        if diffs:
            right.plot([j], [sum(diffs) / len(diffs)], "k_", ms=24, mew=2.5)
    right.axhline(0, color="grey", lw=0.8)
    right.set_xticks(range(len(others)), others)
    right.set_ylabel("minus vanilla on the same fold, points")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def tables(rows):
    agg = C.aggregate(rows, ("dataset", "protocol", "model", "variant"))
    sections = []
    titles = {"fer2013": "FER2013", "jaffe": "JAFFE", "ckplus48": "CK+48"}
    for dataset, protocol in dict.fromkeys((r["dataset"], r["protocol"]) for r in agg):
        part = [r for r in agg if r["dataset"] == dataset and r["protocol"] == protocol]
        classes = next((list(r["per_class"]) for r in part if r.get("per_class")), [])
        vanilla = {r["model"]: r for r in part if r["variant"] == "vanilla"}

        def delta(r, key):
            base = vanilla.get(r["model"], {}).get(key)
            if r.get(key) is None:
                return "n/a"
            text = C.fmt_pct(r[key])
            if base is not None and r["variant"] != "vanilla":
                text += f" ({100 * (r[key] - base):+.2f})"
            return text

        def params(r):
            base = vanilla.get(r["model"], {}).get("params")
            if r.get("params") is None:
                return "n/a"
            text = f"{r['params'] / 1e6:.3f}M"
            if base is not None and r["variant"] != "vanilla":
                text += f" ({r['params'] - base:+,})"
            return text

        def pick(variants):
            return [r for r in part if r["variant"] in variants]

        columns = [("Model", lambda r: _label(r)), ("Param.", params),
                   ("Best epoch", lambda r: _best_epoch(r))]
        columns += [(c, (lambda c: lambda r: C.fmt_pct((r.get("per_class") or {}).get(c)))(c))
                    for c in classes]
        columns += [("Average", lambda r: delta(r, "mean_class_accuracy")),
                    ("Accuracy", lambda r: delta(r, "accuracy")),
                    ("Paper average", lambda r: PAPER_AVERAGE.get(
                        (r["dataset"], r["model"]), {}).get(r["variant"]))]
        where = f"{titles[dataset]}, {protocol} split" + (
            " (first fold)" if protocol == "subject" else "")
        main_rows = pick(VARIANTS)
        if main_rows:
            sections.append((f"Table 2: {where}", C.markdown_table(main_rows, columns)))
        ablation_rows = [r for r in part if r["model"] == "resnet18"
                         and r["variant"] in ("vanilla", "hfc") + ABLATION]
        if any(r["variant"] in ABLATION for r in ablation_rows):
            ablation_columns = [("Model", lambda r: _label(r)),
                                ("Best epoch", lambda r: _best_epoch(r)),
                                ("Accuracy (mean per class) @ best epoch",
                                 lambda r: delta(r, "mean_class_accuracy")),
                                ("Overall accuracy", lambda r: delta(r, "accuracy")),
                                ("Paper", lambda r: PAPER_AVERAGE.get(
                                    (r["dataset"], r["model"]), {}).get(r["variant"]))]
            sections.append((f"Table 1 (ablation, ResNet18): {where}",
                             C.markdown_table(ablation_rows, ablation_columns)))
    return sections


def _label(r):
    name = {"resnet18": "ResNet18", "mobilenetv2": "MobileNetV2"}[r["model"]]
    return name + LABELS[r["variant"]]


def _best_epoch(r):
    value = r.get("best_epoch")  # the mean over folds when several were run
    return "n/a" if value is None else f"{value:g}" if r.get("n", 1) > 1 else f"{value:.0f}"


def main(argv=None):
    args = C.prepare(parse_args(argv), RECIPE, SMOKE_DATA)
    runs = build_runs(args)
    if args.init:
        return pretrained_main(args, runs)
    rows = C.run_all(runs, args.out, force=args.force)
    mode = C.mode_of(args)
    notes = [C.sizes_note(mode), f"data: {args.data_root}",
             "per-class accuracy = recall of the class; Average = their mean (the paper's "
             "figure); Accuracy = overall; both at the best epoch (the paper's selection, on "
             "the test split, optimistic)",
             "Param. counts every weight (BN moving statistics included); the paper's "
             "deltas (+708 / +767 HFC, +23,808 / +11,192 BAM) count the same modules"]
    C.write_results(args.out, "High-frequency attention (seed 002, Tables 1 and 2)",
                    tables(rows), rows, notes, settings=vars(args))
    return C.exit_code(rows)


def _source_options(config):
    return config and {k: v for k, v in config.arch_options.items() if "attention" not in k}


def pretrained_main(args, runs):
    rows = []
    for i, run in enumerate(runs, 1):
        # Each run loads the source when it starts: its hash then, in its row (a zoo entry
        # re-published during a sweep would otherwise mix two sources unnoticed).
        run.tags["source_sha256"] = source_sha256(args.init)
        # The last epoch, as the zoo's transfer entries: no epoch is chosen on the test fold.
        # No t-SNE pictures: on 78 test faces they cost more than the 15 epochs on this CPU.
        rows.append(C.run_one(run, args.out, force=args.force, select_best=False,
                              head=f"[{i}/{len(runs)}] {run.key}",
                              evaluation_options={"tsne_samples": 0}))
    sections, paired = pretrained_sections(rows, args)
    sources = sorted({r["source_sha256"] for r in rows if r.get("source_sha256")}
                     | {source_sha256(args.init)})
    config = runs[0].config if runs else None
    start = ("the identity (identity_init)" if (args.attention_init or "identity") == "identity"
             else "at the paper's random initialisation")
    notes = [C.sizes_note(C.mode_of(args)) if args.smoke else
             f"mode: --init (fine-tuned from {args.init}, weights copied by layer path)",
             f"data: {args.data_root}",
             "architecture: ResNet18 with the source's options "
             f"{_source_options(config)}, input {config and config.input_shape}; the "
             f"attention modules start as {start}",
             f"training: {TRANSFER_ENTRY}'s settings {transfer_settings(args)}",
             f"source weights: sha256 {sources[0]}" if len(sources) == 1 else
             f"WARNING: the source's weights changed between runs (sha256 {sources}, each "
             "run's in its row): the folds did not all start from the same weights; pin the "
             "source (--init FILE.keras) and retrain (--force)",
             "accuracy of the LAST epoch on each test fold (no epoch chosen on the test side); "
             "std over folds is the population std (ddof 0), as the zoo's",
             "paired tests: the variant's fold accuracies against vanilla's on the same "
             "folds, two-sided: t-test of the differences, Wilcoxon signed-rank test (zero "
             "differences dropped; exact, or an exact sign-flip permutation with ties) "
             f"(C.paired_comparison, scipy); picture: {PAIRED_PICTURE}"]
    C.write_results(args.out, "High-frequency attention (seed 002) fine-tuned from a "
                    "pretrained ResNet18", sections, rows, notes, settings=vars(args),
                    extra={"paired": paired})
    return C.exit_code(rows)


if __name__ == "__main__":
    sys.exit(main())
