"""Seed 002 fine-tuned from a trained ResNet18 (``hfc_attention --init``): the paired
statistics against independent references, the attention modules' ``identity_init``, the
pretrained runs (same folds for every variant, weights copied from the source), the tables,
the picture and the argument errors. Synthetic data only."""

import itertools
import json
import math
import os

import numpy as np
import pytest

import keras

from keras_fer.recipes import _common as C
from keras_fer.recipes import hfc_attention as H

SOURCE = "zoo:resnet18.fer2013"


# ---- paired statistics -------------------------------------------------------------------------

def _midranks(values):
    order = np.argsort(values, kind="stable")
    ranks, ordered = np.empty(len(values)), values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and ordered[j + 1] == ordered[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def wilcoxon_reference(d):
    """Two-sided signed-rank test by enumerating every sign assignment of the nonzero
    differences (mid-ranks for ties): (smaller rank sum, p)."""
    d = d[d != 0]
    ranks = _midranks(np.abs(d))
    observed = ranks[d > 0].sum()
    sums = np.array([ranks[np.array(signs, bool)].sum()
                     for signs in itertools.product((0, 1), repeat=len(d))])
    p = 2 * min(np.mean(sums <= observed + 1e-9), np.mean(sums >= observed - 1e-9))
    return min(observed, ranks.sum() - observed), min(1.0, p)


def t_reference(d):
    """Paired t statistic and two-sided p, the Student t density integrated numerically."""
    n, df = len(d), len(d) - 1
    t = d.mean() / (d.std(ddof=1) / math.sqrt(n))
    x = np.linspace(0.0, abs(t), 200_001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = np.exp(log_c) * (1 + x ** 2 / df) ** (-(df + 1) / 2)
    return t, 1.0 - 2.0 * np.trapezoid(density, x)


ACCURACIES = np.array([.91, .85, .80, .95, .70, .88, .93, .60, .77, .82])
PAIRS = {
    # Student's sleep data (Cushny & Peebles): R's t.test(paired=TRUE) gives t = 4.0621,
    # p = 0.002833; one zero difference.
    "sleep": (np.array([1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]),
              np.array([0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0])),
    "no ties": (ACCURACIES, ACCURACIES - np.array([.03, -.01, .06, .05, -.02, .08, .01, -.05,
                                                   .07, .04])),
    # Accuracies on 78 test images: k / 78, equal differences that must tie exactly.
    "k/78 with ties": (np.arange(10) / 78 + np.array([1, 2, -1, 2, 0, 3, 1, -2, 1, 4]) / 78,
                       np.arange(10) / 78),
}


@pytest.mark.parametrize("case", PAIRS)
def test_paired_comparison_matches_independent_references(case):
    a, b = PAIRS[case]
    result = C.paired_comparison(a, b)
    d = np.round(a - b, 12)
    t, p_t = t_reference(d)
    w, p_w = wilcoxon_reference(d)
    assert result["n"] == 10
    assert result["mean_difference"] == pytest.approx(d.mean())
    assert result["std_difference"] == pytest.approx(d.std(ddof=1))
    assert (result["better"], result["worse"], result["tied"]) == (
        int((d > 0).sum()), int((d < 0).sum()), int((d == 0).sum()))
    assert result["t_statistic"] == pytest.approx(t, rel=1e-9)
    assert result["t_p_value"] == pytest.approx(p_t, rel=1e-6)
    assert result["wilcoxon_statistic"] == pytest.approx(w)
    assert result["wilcoxon_p_value"] == pytest.approx(p_w, rel=1e-9)
    if case == "sleep":
        assert (result["t_statistic"], result["t_p_value"]) == (
            pytest.approx(4.0621, abs=1e-4), pytest.approx(0.002833, abs=1e-6))


def test_paired_comparison_undefined_tests_and_errors():
    one = C.paired_comparison([0.9], [0.8])
    assert one["mean_difference"] == pytest.approx(0.1) and one["t_p_value"] is None
    assert "fewer than 2" in one["note"]
    same = C.paired_comparison([0.5, 0.7, 0.9], [0.5, 0.7, 0.9])
    assert same["wilcoxon_p_value"] is None and same["tied"] == 3 and "same score" in same["note"]
    shifted = C.paired_comparison([0.6, 0.8, 1.0], [0.5, 0.7, 0.9])
    assert shifted["t_p_value"] is None and "t-test is undefined" in shifted["note"]
    assert shifted["wilcoxon_p_value"] == pytest.approx(0.25)  # 3 positive ranks of 8 signs
    with pytest.raises(ValueError, match="one score per fold"):
        C.paired_comparison([0.5, 0.6], [0.5])


# ---- identity_init of the attention modules ----------------------------------------------------

MODULES = [("hfc", {"query": "hfc"}), ("hfc+lfc+hl", {"query": "hfc+lfc+hl"}),
           ("bam sum", {"combine": "sum"}), ("bam product", {"combine": "product"})]


@pytest.mark.parametrize("name,options", MODULES, ids=[m[0] for m in MODULES])
def test_identity_init_starts_as_the_identity_and_trains(name, options):
    from keras_fer.layers import BAM, HighFrequencyAttention

    cls = BAM if name.startswith("bam") else HighFrequencyAttention
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 16)).astype("float32") * 3
    plain, layer = cls(**options), cls(identity_init=True, **options)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), x, rtol=1e-6, atol=1e-6)
    assert np.abs(keras.ops.convert_to_numpy(plain(x)) - x).max() > 0.1  # the paper's: not
    clone = cls.from_config(layer.get_config())
    assert clone.identity_init and not cls.from_config(plain.get_config()).identity_init
    # The zeroed last layers get a gradient, so the module can move off the identity.
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) * tf.constant(np.linspace(-1, 1, 16), tf.float32))
    grads = tape.gradient(loss, layer.trainable_weights)
    last = {"score_conv", "channel_fc1", "spatial_final"}
    moved = [w.path for w, g in zip(layer.trainable_weights, grads)
             if g is not None and np.abs(g.numpy()).max() > 0 and w.path.split("/")[-2] in last]
    assert moved, [w.path for w in layer.trainable_weights]


def test_identity_init_modules_leave_a_transferred_network_unchanged():
    """A ResNet18 with the modules inserted at identity_init predicts exactly what the network
    it copies its weights from predicts (inference mode, moving statistics)."""
    from keras_fer.models import create_model
    from keras_fer.zoo import transfer_weights

    small = dict(input_shape=(32, 32, 1), num_classes=3, width_multiplier=0.25)
    source = create_model("resnet18", **small)
    x = np.random.default_rng(1).uniform(0, 255, size=(4, 32, 32, 1)).astype("float32")
    expected = keras.ops.convert_to_numpy(source(x, training=False))
    for variant in ("bam", "hfc", "hfc+lfc+hl"):
        options = H.arch_options(variant, H.PRETRAINED, identity_init=True)
        target = create_model("resnet18", **small, **options)
        fresh = transfer_weights(source, target, skip_layers=())
        assert fresh and all("attention_after_" in path for path in fresh)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(target(x, training=False)),
                                   expected, rtol=1e-4, atol=1e-5)


# ---- the pretrained mode -----------------------------------------------------------------------

def _prepared(tmp_path, *argv):
    return C.prepare(H.parse_args(["--smoke", "--init", SOURCE, "--out", str(tmp_path / "out"),
                                   *argv]), H.RECIPE, H.SMOKE_DATA)


def test_pretrained_runs_share_the_folds_and_the_source(tmp_path):
    from keras_fer.recipes.zoo_checkpoints import ENTRIES

    runs = H.build_runs(_prepared(tmp_path))
    variants = list(H.VARIANTS + H.ABLATION)
    assert [r.tags["variant"] for r in runs] == variants * 2  # fold-major, every variant
    assert {r.tags["fold"] for r in runs} == {0, 1}
    for fold in (0, 1):
        same_fold = [r for r in runs if r.tags["fold"] == fold]
        assert len({tuple(sorted(r.train_data.subjects())) for r in same_fold}) == 1
        assert len({tuple(sorted(r.val_data.subjects())) for r in same_fold}) == 1
    train = dict(ENTRIES[H.TRANSFER_ENTRY]["train"], epochs=1, batch_size=8)
    for run in runs:
        c = run.config
        assert (c.init, c.init_mode, c.arch, c.input_shape) == (SOURCE, "layers", "resnet18",
                                                                (48, 48, 1))
        assert c.arch_options["width_multiplier"] == 0.5 and c.arch_options["dropout"] == 0.2
        assert all(getattr(c, k) == v for k, v in train.items())
        assert run.key == f"ckplus48/subject/fold{run.tags['fold']}/resnet18/{run.tags['variant']}"
        if run.tags["variant"] != "vanilla":
            assert c.arch_options["attention_options"]["identity_init"] is True
    paper = H.build_runs(_prepared(tmp_path, "--attention-init", "paper", "--variants",
                                   "bam,lfc", "--max-folds", "1", "--learning-rate", "1e-4"))
    assert [r.tags["variant"] for r in paper] == ["bam", "lfc"]
    assert all("identity_init" not in r.config.arch_options["attention_options"] for r in paper)
    assert paper[0].config.learning_rate == 1e-4


@pytest.mark.parametrize("argv,message", [
    (["--paper"], "pick one"),
    (["--models", "mobilenetv2"], "ResNet18 only"),
    (["--datasets", "fer2013"], "not \\['fer2013'\\]"),
    (["--protocols", "random"], "random split is one split"),
    (["--folds", "1"], "--folds must be >= 2"),
    (["--max-folds", "0"], "--max-folds must be >= 1"),
    (["--init", "no/such/model.keras"], "does not exist"),
])
def test_pretrained_argument_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as err:
        H.parse_args(["--init", SOURCE, *argv])
    assert err.value.code == 2
    assert __import__("re").search(message, capsys.readouterr().err)


def test_pretrained_refuses_other_architectures(tmp_path, monkeypatch):
    args = _prepared(tmp_path)
    monkeypatch.setattr(H, "source_architecture", lambda init: ("mobilenetv2", {}, (48, 48, 1)))
    with pytest.raises(SystemExit, match="is a mobilenetv2"):
        H.build_runs(args)
    with pytest.raises(SystemExit, match="--datasets must be among"):
        H.parse_args(["--init", SOURCE, "--datasets", "ckplus"])


def test_pretrained_tables_json_and_picture(tmp_path):
    fold_acc = {"vanilla": [.90, .80, .85, .95], "hfc": [.88, .78, .85, .90],
                "bam": [.91, .82, .86, .96]}
    params = {"vanilla": 1000, "hfc": 1003, "bam": 1010}
    rows = [dict(dataset="ckplus48", protocol="subject", fold=f, model="resnet18", variant=v,
                 accuracy=acc[f], mean_class_accuracy=acc[f] - .05, last_accuracy=acc[f],
                 train_seconds=100.0 + f, best_epoch=15, params=params[v], epochs=15)
            for v, acc in fold_acc.items() for f in range(4)]
    rows.append(dict(rows[0], variant="lfc", fold=0, error="ValueError: boom"))
    args = H.parse_args(["--smoke", "--init", SOURCE, "--out", str(tmp_path)])
    args.out = str(tmp_path)
    sections, paired = H.pretrained_sections(rows, args)
    text = "\n".join(table for _, table in sections)
    hfc = np.array(fold_acc["hfc"])
    assert (f"| ResNet18 + Ours (HFC) | 0.001M (+3) | 4 | "
            f"{C.fmt_pct(hfc.mean(), hfc.std())} | 80.25 | 102 |") in text
    assert "| ResNet18 + Ours (HFC) | 4 | -2.25 |" in text
    assert "0 / 3 / 1" in text and "| ResNet18 | 90.00 | 80.00 | 85.00 | 95.00 |" in text
    expected = C.paired_comparison(fold_acc["hfc"], fold_acc["vanilla"])
    assert paired["ckplus48"]["hfc"] == dict(expected, folds=[0, 1, 2, 3])
    assert set(paired["ckplus48"]) == {"hfc", "bam"}  # the failed variant has no fold
    picture = tmp_path / H.PAIRED_PICTURE
    assert picture.stat().st_size > 5000
    C.write_results(str(tmp_path), "t", sections, rows, extra={"paired": paired})
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["paired"]["ckplus48"]["bam"]["better"] == 4


def test_pretrained_main_tags_each_run_with_its_source_and_warns_on_a_change(tmp_path,
                                                                            monkeypatch):
    """Each run's row carries the source's hash taken when it starts; a source re-published
    during the sweep (a zoo entry) is called out in the results."""
    args = _prepared(tmp_path, "--variants", "vanilla,hfc")
    runs = H.build_runs(args)
    hashes = iter(["a", "a", "b", "b", "b"])  # 4 runs, then the check at the end
    monkeypatch.setattr(H, "source_sha256", lambda init: next(hashes))
    calls = []

    def fake_run_one(run, out, force=False, select_best=True, head=None,
                     evaluation_options=None):
        calls.append((select_best, evaluation_options))
        return dict(run.tags, key=run.key, accuracy=0.8 + 0.05 * run.tags["fold"],
                    mean_class_accuracy=0.7, train_seconds=10.0, params=100, epochs=1)

    monkeypatch.setattr(C, "run_one", fake_run_one)
    assert H.pretrained_main(args, runs) == 0
    assert calls == [(False, {"tsne_samples": 0})] * 4  # last epoch, no t-SNE
    out = tmp_path / "out"
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["source_sha256"] for r in rows] == ["a", "a", "b", "b"]
    assert "WARNING: the source's weights changed between runs" in (
        out / "results.md").read_text()


@pytest.mark.slow
def test_pretrained_smoke_fine_tunes_from_the_source(tmp_path):
    """One real fold: the run starts from the zoo's weights (a backbone kernel stays next to the
    source's after 4 steps), the modules from the identity, and the history says so."""
    from keras_fer.layers.walk import weighted_leaves
    from keras_fer.models import load_model
    from keras_fer.zoo import load

    out = tmp_path / "out"
    assert H.main(["--smoke", "--init", SOURCE, "--variants", "hfc", "--max-folds", "1",
                   "--out", str(out), "--verbose", "0"]) == 0
    run_dir = out / "ckplus48" / "subject" / "fold0" / "resnet18" / "hfc"
    transfer = json.loads((run_dir / "transfer.json").read_text())
    assert transfer["from"] == SOURCE
    assert sorted({p.split("/")[-2] for p in transfer["layers_initialised"]}) == [
        f"attention_after_{point}" for point in ("layer1", "layer2", "layer3", "stem")]
    history = json.loads((run_dir / "training_history.json").read_text())
    assert history[-1]["transfer"]["from"] == SOURCE and history[-1]["epochs"] == 1
    trained, source = (weighted_leaves(m) for m in (load_model(str(run_dir / "model.keras")),
                                                     load(SOURCE[len("zoo:"):])))
    for path in ("resnet18_backbone/conv1", "resnet18_backbone/layer3.1.conv2"):
        after, before = trained[path].get_weights()[0], source[path].get_weights()[0]
        assert 0 < np.abs(after - before).max() < 0.01 < np.abs(before).max()
    score = trained["resnet18_backbone/attention_after_layer1/score_conv"].get_weights()[0]
    assert np.abs(score).max() < 0.01  # started at zero (glorot would reach ~0.25)
    results = json.loads((out / "results.json").read_text())
    row = results["rows"][0]
    assert row["variant"] == "hfc" and results["paired"] == {"ckplus48": {}}
    assert row["source_sha256"] == H.source_sha256(SOURCE)
    assert f"source weights: sha256 {row['source_sha256']}" in (out / "results.md").read_text()
    # evaluation_options={"tsne_samples": 0}: the report without its t-SNE pictures.
    pictures = sorted(os.listdir(run_dir / "evaluation"))
    assert "confusion_matrix.png" in pictures and not any("tsne" in p for p in pictures)


def test_evaluation_without_tsne_or_gradcam_pictures(tmp_path):
    """``evaluate_model(tsne_samples=0, gradcam_images=0)``: what the pretrained sweep asks of
    every fold's report (``train(evaluation_options=...)``): the numbers, no t-SNE."""
    import tensorflow as tf

    from keras_fer.evaluation import evaluate_model
    from keras_fer.models import create_model

    model = create_model("resnet18", input_shape=(32, 32, 1), num_classes=3,
                         width_multiplier=0.25)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(12, 32, 32, 1)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(12) % 3)).batch(6)
    report = evaluate_model(model, ds, ["a", "b", "c"], str(tmp_path), tsne_samples=0,
                            gradcam_images=0)
    assert report["pictures"] == ["confusion_matrix.png"] and report["num_samples"] == 12
    assert sorted(os.listdir(tmp_path)) == ["confusion_matrix.csv", "confusion_matrix.png",
                                            "report.json", "report.md"]
