"""The paper recipes: shared helpers, the synthetic smoke data, and each recipe's --smoke run.

The fast tests run one or two tiny trainings per recipe (a narrowed ``--smoke``); the recipes'
full default smoke runs and the throughput benchmark's timm side are ``slow``.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_fer.recipes import _common as C

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- synthetic data in the real formats ------------------------------------------------------

def test_synthetic_datasets_read_back_with_the_real_readers(tmp_path):
    from keras_fer import datasets
    from keras_fer.datasets import synthetic

    paths = synthetic.write_datasets(
        str(tmp_path), ("ckplus48", "jaffe", "fer2013", "ferplus", "image_folder"),
        ckplus48={"subjects": 3, "frames": 2}, jaffe={"posers": ("KA", "KM"), "takes": 1},
        fer2013={"per_class_train": 2, "per_class_test": 1},
        ferplus={"per_class_train": 2, "per_class_test": 1},
        image_folder={"per_class": 1})
    ck = datasets.load("ckplus48", paths["ckplus48"])
    assert len(ck) == 3 * 7 * 2 and len(set(ck.subjects())) == 3
    assert "neutral" not in ck.classes and ck.class_counts()["contempt"] == 6
    jaffe = datasets.load("jaffe", paths["jaffe"])
    assert len(jaffe) == 14 and sorted(set(jaffe.subjects())) == ["KA", "KM"]
    assert set(jaffe.class_counts().values()) == {2}
    fer = datasets.load("fer2013", paths["fer2013"])
    assert len(fer) == 21 and fer.split_names() == ["Training", "PublicTest"]
    ferplus = datasets.load("ferplus", paths["ferplus"], label_mode="majority")
    assert len(ferplus) == 21
    # Row i of fer2013new.csv labels row i of fer2013.csv: the majority is the FER2013 code.
    assert np.array_equal(ferplus.labels(), fer.labels())
    for r in ferplus.records:
        assert r.distribution.shape == (8,) and abs(r.distribution.sum() - 1) < 1e-6
        assert np.argmax(r.distribution) == r.label and r.distribution[r.label] >= 0.6
    folder = datasets.load("image_folder", paths["image_folder"], num_classes=8)
    assert len(folder) == 16 and set(folder.split_names()) == {"train", "val"}


def test_synthetic_faces_are_deterministic_and_class_dependent():
    from keras_fer.datasets.synthetic import synthetic_face

    a, b = synthetic_face(3, seed=5), synthetic_face(3, seed=5)
    assert a.dtype == np.uint8 and a.shape == (48, 48) and np.array_equal(a, b)
    assert not np.array_equal(a, synthetic_face(3, seed=6))
    # The class is in the picture: nearest class centroid of the (phase-free) spectrum
    # magnitude, fitted on some seeds, names the class of images drawn with other seeds.
    def features(label, seed):
        return np.abs(np.fft.fft2(synthetic_face(label, seed).astype(np.float64))).ravel()

    centroids = np.stack([np.mean([features(c, s) for s in range(8)], axis=0)
                          for c in range(7)])
    hits = [np.argmin(np.linalg.norm(centroids - features(c, 100 + s), axis=1)) == c
            for c in range(7) for s in range(4)]
    assert np.mean(hits) > 0.8
    with pytest.raises(ValueError, match="label"):
        synthetic_face(-1, seed=0)


def test_synthetic_writers_validate_arguments(tmp_path):
    from keras_fer.datasets import synthetic

    with pytest.raises(ValueError, match="subjects must be an integer >= 1"):
        synthetic.write_ckplus48(str(tmp_path), subjects=0)
    with pytest.raises(ValueError, match="posers"):
        synthetic.write_jaffe(str(tmp_path), posers=())
    with pytest.raises(ValueError, match="names must be among"):
        synthetic.write_datasets(str(tmp_path), ("affectnet",))


def test_write_mnist_is_a_keras_layout_npz(tmp_path):
    from keras_fer import datasets
    from keras_fer.datasets import synthetic

    path = synthetic.write_mnist(str(tmp_path / "mnist.npz"), n_train=30, n_test=10)
    train = datasets.load("mnist", path, split="train")
    assert len(train) == 30 and list(train.labels()[:11]) == list(range(10)) + [0]
    image = train.records[1].image
    assert image.shape == (28, 28) and image.max() > 200  # a drawn stroke, not noise


# ---- recipes/_common.py ----------------------------------------------------------------------

def _dataset_with_subjects(n_subjects=6, per_class=2, classes=("angry", "happy", "sad")):
    from keras_fer.datasets.records import FERDataset, Record

    records = [Record(source=f"s{s}_{c}_{i}", label=c, image=np.zeros((4, 4), np.uint8),
                      subject=f"S{s:03d}")
               for s in range(n_subjects) for c in range(len(classes)) for i in range(per_class)]
    return FERDataset("toy", records, classes)


def test_protocol_splits_random_and_subject():
    ds = _dataset_with_subjects()
    (tags, train, test), = C.protocol_splits(ds, "random", test_fraction=0.25, seed=1)
    assert tags == {"protocol": "random", "fold": 0}
    assert len(train) + len(test) == len(ds) and len(test) == 9
    parts = C.protocol_splits(ds, "subject", folds=3, seed=0)
    assert [t["fold"] for t, _, _ in parts] == [0, 1, 2]
    seen = set()
    for _, train, test in parts:
        train_subjects, test_subjects = set(train.subjects()), set(test.subjects())
        assert not train_subjects & test_subjects
        seen |= test_subjects
    assert seen == set(ds.subjects())
    assert len(C.protocol_splits(ds, "subject", folds=3, max_folds=1)) == 1
    with pytest.raises(ValueError, match="protocol must be"):
        C.protocol_splits(ds, "leaky")
    with pytest.raises(ValueError, match="Training and PublicTest"):
        C.protocol_splits(ds, "official")


def test_holdout_protocol_validates_on_training_rows_only():
    from keras_fer.datasets.records import FERDataset, Record

    classes = ("angry", "happy")
    records = [Record(source=f"r{i}", label=i % 2, image=np.zeros((4, 4), np.uint8),
                      split="PublicTest" if i >= 40 else "Training") for i in range(50)]
    ds = FERDataset("toy", records, classes)
    (tags, train, val), = C.protocol_splits(ds, "holdout", test_fraction=0.1, seed=0)
    assert tags == {"protocol": "holdout", "fold": 0}
    assert len(train) == 36 and len(val) == 4
    assert {r.split for r in train} | {r.split for r in val} == {"Training"}
    assert not {r.source for r in train} & {r.source for r in val}
    assert sorted(val.labels().tolist()) == [0, 0, 1, 1]  # stratified


def test_zoo_checkpoints_init_source_prefers_this_recipes_run_then_the_zoo(tmp_path):
    import argparse

    from keras_fer.recipes import zoo_checkpoints as Z

    spec = Z.ENTRIES["resnet18.ckplus48"]
    args = argparse.Namespace(init=None, out=str(tmp_path))
    assert Z.initial_source(spec, args) == "zoo:resnet18.fer2013"
    run = tmp_path / "resnet18.fer2013" / "holdout"
    run.mkdir(parents=True)
    (run / "model.keras").write_bytes(b"x")
    assert Z.initial_source(spec, args) == str(run)
    args.init = "zoo:other.fer2013"
    assert Z.initial_source(spec, args) == "zoo:other.fer2013"
    assert Z.initial_source(Z.ENTRIES["mini_xception.ckplus48"],
                            argparse.Namespace(init=None, out=str(tmp_path))) is None


def test_zoo_checkpoints_overrides_reach_the_settings_and_the_recorded_command(capsys):
    from keras_fer.recipes import zoo_checkpoints as Z

    argv = ["--models", "resnet18.fer2013", "--init", "zoo:resnet18.fer2013", "--init-mode",
            "layers", "--arch-option", "stem_pool=false", "--arch-option", "dropout=0.3",
            "--augment", "basic_erasing", "--mixup", "0.2", "--seed", "3"]
    args = Z.parse_args(argv)
    spec = Z.entry_settings("resnet18.fer2013", args)
    assert spec["arch_options"] == {"width_multiplier": 0.5, "dropout": 0.3,
                                    "stem_pool": False}
    assert spec["train"]["init_mode"] == "layers"
    assert spec["train"]["augment"] == "basic_erasing" and spec["train"]["mixup"] == 0.2
    assert Z.ENTRIES["resnet18.fer2013"]["arch_options"]["dropout"] == 0.2  # not mutated
    command = Z.command_line("resnet18.fer2013", args)
    assert "--arch-option stem_pool=false --arch-option dropout=0.3" in command
    assert "--init-mode layers --augment basic_erasing --mixup 0.2" in command
    assert Z.parse_args(command.split()[3:]).arch_options == args.arch_options
    for bad, words in [(["--arch-option", "stem_pool"], "KEY=VALUE"),
                       (["--arch-option", "stem_pool=nope"], "is not JSON"),
                       (["--init-mode", "layers"], "goes with --init")]:
        with pytest.raises(SystemExit):
            Z.parse_args(["--models", "resnet18.fer2013"] + bad)
        assert words in capsys.readouterr().err


@pytest.mark.slow
def test_zoo_checkpoints_backbone_then_transfer_smoke(tmp_path):
    """The FER2013 backbone on a holdout split with --final-test, then CK+48 folds that each
    start from it (not from the previous fold) and carry its history."""
    from keras_fer.recipes import zoo_checkpoints as Z

    out = tmp_path / "zoo"
    assert Z.main(["--smoke", "--models", "resnet18.fer2013,resnet18.ckplus48", "--final-test",
                   "--out", str(out)]) == 0
    metrics = json.loads((out / "resnet18.fer2013" / "metrics.json").read_text())
    assert metrics["public_test"]["images"] == 14  # the smoke data's PublicTest rows
    assert 0 <= metrics["public_test"]["flip_tta_accuracy"] <= 1
    for fold in ("fold0", "fold1", "all"):
        config = json.loads((out / "resnet18.ckplus48" / fold / "config.json").read_text())
        assert config["init"] == str(out / "resnet18.fer2013" / "holdout")
        history = json.loads((out / "resnet18.ckplus48" / fold /
                              "training_history.json").read_text())
        assert len(history) == 2 and history[0]["config"]["arch"] == "resnet18"


def test_subsample_is_stratified_and_validated():
    ds = _dataset_with_subjects(n_subjects=5, per_class=2)  # 10 per class
    small = C.subsample(ds, 3, seed=0)
    assert list(small.class_counts().values()) == [3, 3, 3]
    assert C.subsample(ds, None) is ds
    assert len(C.subsample(ds, 100)) == len(ds)
    with pytest.raises(ValueError, match="per_class must be"):
        C.subsample(ds, 0)


def test_aggregate_means_folds_and_counts_failures():
    rows = [
        {"dataset": "d", "model": "m", "accuracy": 0.5, "train_seconds": 10, "params": 7,
         "per_class": {"a": 0.4, "b": 0.6}, "weighted": {"f1": 0.5}},
        {"dataset": "d", "model": "m", "accuracy": 0.7, "train_seconds": 30, "params": 7,
         "per_class": {"a": 0.6, "b": 0.8}, "weighted": {"f1": 0.7}},
        {"dataset": "d", "model": "m", "error": "ValueError: boom"},
        {"dataset": "d", "model": "x", "error": "OOM"},
    ]
    agg = C.aggregate(rows, ("dataset", "model"))
    assert [(r["model"], r["n"], r["failed"]) for r in agg] == [("m", 2, 1), ("x", 0, 1)]
    m = agg[0]
    assert m["accuracy"] == pytest.approx(0.6) and m["accuracy_std"] == pytest.approx(0.1)
    assert m["train_seconds"] == pytest.approx(20) and m["params"] == 7
    assert m["per_class"] == pytest.approx({"a": 0.5, "b": 0.7})
    assert agg[1]["error"] == "OOM" and agg[1]["accuracy"] is None
    table = C.markdown_table(agg, [("Model", "model"), ("Acc", lambda r: C.fmt_pct(
        r["accuracy"], r.get("accuracy_std")))])
    lines = table.splitlines()
    assert lines[0] == "| Model | Acc |" and lines[2] == "| m | 60.00 ± 10.00 |"
    assert "FAILED: OOM" in lines[3]


def test_formatters():
    assert C.fmt_pct(0.92314) == "92.31" and C.fmt_pct(None) == "n/a"
    assert C.fmt_pct(float("nan")) == "n/a"
    assert C.fmt_seconds(373.2) == "6m13s" and C.fmt_seconds(59.6) == "1m00s"
    assert C.fmt_seconds(5) == "5s" and C.fmt_seconds(None) == "n/a"
    assert C.fmt_millions(25_600_000) == "25.60"


def test_selected_and_weights_for(tmp_path):
    assert C.selected(("a", "b", "c"), "c,a", "models") == ["a", "c"]
    assert C.selected(("a", "b"), None, "models") == ["a", "b"]
    with pytest.raises(SystemExit, match="--models must be among"):
        C.selected(("a", "b"), "z", "models")
    (tmp_path / "resnet18.safetensors").write_bytes(b"x")
    (tmp_path / "vgg16").mkdir()
    (tmp_path / "vgg16" / "model.safetensors").write_bytes(b"x")
    assert C.weights_for("resnet18", str(tmp_path)).endswith("resnet18.safetensors")
    assert C.weights_for("vgg16", str(tmp_path)).endswith(os.path.join("vgg16",
                                                                       "model.safetensors"))
    assert C.weights_for("vit_base_patch16_224", str(tmp_path)) is None
    assert C.weights_for("resnet18", None) is None


def test_prepare_resolves_paths_and_writes_smoke_data_once(tmp_path, monkeypatch):
    calls = []

    def writer(folder):
        calls.append(folder)
        os.makedirs(folder)

    args = C.make_parser("demo", "demo").parse_args(["--smoke", "--out", str(tmp_path / "o")])
    C.prepare(args, "demo", writer)
    assert args.data_root == str(tmp_path / "o" / "data") and len(calls) == 1
    args = C.make_parser("demo", "demo").parse_args(["--smoke", "--out", str(tmp_path / "o")])
    C.prepare(args, "demo", writer)
    assert len(calls) == 1  # reused
    monkeypatch.setenv("KERAS_FER_DATA", str(tmp_path))
    assert C.default_data_root() == str(tmp_path)
    args = C.make_parser("demo", "demo").parse_args(["--out", str(tmp_path / "p")])
    assert C.prepare(args, "demo").data_root == str(tmp_path)
    args = C.make_parser("demo", "demo").parse_args(["--data-root", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="is not a folder"):
        C.prepare(args, "demo")
    args = C.make_parser("demo", "demo").parse_args(["--epochs", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--epochs must be >= 1"):
        C.prepare(args, "demo")
    with pytest.raises(SystemExit):  # --smoke and --paper exclude each other
        C.make_parser("demo", "demo").parse_args(["--smoke", "--paper"])


def test_best_epoch_weights_restores_the_best_epoch(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    callback = C.BestEpochWeights(str(tmp_path / "best.weights.h5"))
    callback.set_model(model)
    for epoch, acc in enumerate([0.2, 0.6, 0.4]):
        model.layers[0].kernel.assign(np.full((3, 2), float(epoch), np.float32))
        callback.on_epoch_end(epoch, {"val_accuracy": acc})
    assert callback.best == 0.6 and callback.best_epoch == 1
    callback.on_train_end()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.layers[0].kernel),
                                  np.full((3, 2), 1.0, np.float32))
    # No validation accuracy logged: nothing saved, nothing restored.
    other = C.BestEpochWeights(str(tmp_path / "none.weights.h5"))
    other.set_model(model)
    other.on_epoch_end(0, {"loss": 1.0})
    other.on_train_end()
    assert not os.path.exists(tmp_path / "none.weights.h5")


def test_write_results_and_json_helpers(tmp_path, capsys):
    text = C.write_results(str(tmp_path), "Title", [("Part", "| a |\n|---|\n| 1 |")],
                           [{"accuracy": np.float32(0.5)}], notes=["a note"],
                           settings={"x": 1})
    assert "# Title" in text and "## Part" in text and "- a note" in text
    assert "# Title" in capsys.readouterr().out
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"][0]["accuracy"] == 0.5 and saved["settings"] == {"x": 1}
    assert (tmp_path / "results.md").read_text() == text
    path = C.write_json(str(tmp_path / "d" / "x.json"), {"a": np.arange(3)})
    assert C.read_json(path) == {"a": [0, 1, 2]}
    assert C.exit_code([{"a": 1}]) == 0 and C.exit_code([{"error": "x"}]) == 1


# ---- the recipes' smoke runs -----------------------------------------------------------------

def _run_recipe(module, argv):
    import importlib

    recipe = importlib.import_module(f"keras_fer.recipes.{module}")
    return recipe.main(argv)


def _check_outputs(out, n_runs, headings):
    text = open(os.path.join(out, "results.md")).read()
    for heading in headings:
        assert heading in text, heading
    rows = json.load(open(os.path.join(out, "results.json")))["rows"]
    assert len(rows) == n_runs
    for row in rows:
        assert "error" not in row, row.get("error")
        assert 0.0 <= row["accuracy"] <= 1.0 and row["params"] > 0
        assert os.path.exists(row["report"])
        assert os.path.exists(os.path.join(os.path.dirname(row["report"]),
                                           "confusion_matrix.png"))
    return text, rows


def test_vit_vs_cnn_smoke_one_run_and_resume(tmp_path, capsys):
    out = str(tmp_path / "out")
    argv = ["--smoke", "--out", out, "--models", "vit_base_patch16", "--protocols", "subject"]
    assert _run_recipe("vit_vs_cnn", argv) == 0
    text, rows = _check_outputs(out, 1, ["JAFFE (Table 4.2)", "Accuracy, % (subject folds)"])
    assert rows[0]["protocol"] == "subject" and rows[0]["dataset"] == "jaffe"
    assert rows[0]["epochs"] == 1 and rows[0]["best_epoch"] == 1
    # Re-running the same command reuses the finished run instead of training again.
    capsys.readouterr()
    assert _run_recipe("vit_vs_cnn", argv) == 0
    assert "done before, reusing" in capsys.readouterr().out


def test_hfc_attention_smoke_one_variant(tmp_path):
    out = str(tmp_path / "out")
    assert _run_recipe("hfc_attention", ["--smoke", "--out", out, "--variants", "hfc"]) == 0
    text, rows = _check_outputs(out, 1, ["Table 2: CK+48, subject split",
                                         "ResNet18 + Ours (HFC)", "contempt"])
    assert rows[0]["variant"] == "hfc"


def test_vit_sam_avfer_smoke_sam_run(tmp_path):
    out = str(tmp_path / "out")
    assert _run_recipe("vit_sam_avfer", ["--smoke", "--out", out, "--models", "vit_sam"]) == 0
    text, rows = _check_outputs(out, 1, ["8-class accuracy", "7-class accuracy",
                                         "ViT-B/16/SAM: per-class precision"])
    assert len(rows[0]["per_class_prf"]) == 8 and rows[0]["accuracy_7class"] is not None
    config = json.load(open(os.path.join(out, "vit_sam", "config.json")))
    assert config["sam_rho"] == 0.05 and config["schedule"] == "step"


def test_neural_resizer_smoke(tmp_path):
    out = str(tmp_path / "out")
    assert _run_recipe("neural_resizer", ["--smoke", "--out", out]) == 0
    text, rows = _check_outputs(out, 2, ["Table 1: FERPlus accuracy", "CE + Vanilla"])
    by_key = {r["key"]: r for r in rows}
    assert set(by_key) == {"vit/vanilla/ce", "vit/proposed/fpdls"}
    proposed = json.load(open(os.path.join(out, "vit", "proposed", "fpdls", "config.json")))
    assert proposed["label_mode"] == "distribution" and proposed["loss"] == "fpdls"
    assert proposed["arch_options"]["resizer"]["target_size"] == [32, 32]
    assert by_key["vit/proposed/fpdls"]["params"] > by_key["vit/vanilla/ce"]["params"]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["vit_vs_cnn", "hfc_attention", "vit_sam_avfer",
                                    "neural_resizer"])
def test_default_smoke_as_a_command(recipe, tmp_path):
    """The exact command CI documents: ``python -m keras_fer.recipes.<name> --smoke``."""
    out = str(tmp_path / "out")
    result = subprocess.run([sys.executable, "-m", f"keras_fer.recipes.{recipe}", "--smoke", "--out", out,
                             "--verbose", "0"], cwd=ROOT, capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.exists(os.path.join(out, "results.md"))
    rows = json.load(open(os.path.join(out, "results.json")))["rows"]
    assert rows and all("error" not in r for r in rows)


# ---- benchmarks/train_throughput.py ----------------------------------------------------------

def _benchmark(args, timeout=600):
    return subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks",
                                                        "train_throughput.py")] + args,
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_train_throughput_keras_side(tmp_path):
    path = str(tmp_path / "t.json")
    result = _benchmark(["--families", "mini_xception", "--configs", "none", "--batch-sizes",
                         "2", "--steps", "1", "--warmup", "1", "--repeats", "1", "--no-timm",
                         "--json", path])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mini_xception" in result.stdout and "img/s" in result.stdout
    (row,) = json.load(open(path))["throughput"]["raw"]
    assert row["key"] == ["family", "mini_xception", 2]
    assert len(row["runs"]) == 1 and row["runs"][0] > 0
    assert row["results"][0]["input"] == [48, 48, 1]


def test_train_throughput_rejects_unknown_family():
    result = _benchmark(["--families", "alexnet"])
    assert result.returncode != 0 and "--families must be among" in result.stderr


@pytest.mark.slow
def test_train_throughput_against_timm(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    path = str(tmp_path / "t.json")
    result = _benchmark(["--families", "resnet", "--batch-size", "2", "--steps", "1",
                         "--json", path], timeout=1200)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.load(open(path))["results"][0]
    # Same architecture: Keras also counts BN moving statistics (under 1% of ResNet18).
    keras_params, timm_params = row["keras"]["params"], row["timm_result"]["params"]
    assert timm_params <= keras_params < 1.01 * timm_params
    assert row["ratio"] > 0


def test_zoo_checkpoints_smoke_trains_cross_validates_and_publishes(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("KERAS_FER_HOME", str(home))
    out = str(tmp_path / "out")
    argv = ["--smoke", "--out", out, "--models", "mini_xception.jaffe", "--max-folds", "1",
            "--publish", str(home)]
    # The name ships with the package: without --overwrite the recipe stops before training
    # (zoo.publish refused it only at the end, after the training).
    with pytest.raises(SystemExit, match=r"cannot publish mini_xception.jaffe: .*shipped with "
                                         r"keras-fer.*--overwrite"):
        _run_recipe("zoo_checkpoints", argv)
    assert not os.path.exists(os.path.join(out, "mini_xception.jaffe"))
    assert _run_recipe("zoo_checkpoints", argv + ["--overwrite"]) == 0
    metrics = json.load(open(os.path.join(out, "mini_xception.jaffe", "metrics.json")))
    assert metrics["protocol"].startswith("1-fold subject-independent")
    assert len(metrics["fold_accuracies"]) == 1 and 0 <= metrics["accuracy"] <= 1
    cm = np.asarray(metrics["confusion_matrix_summed_over_folds"])
    assert cm.shape == (7, 7) and cm.sum() > 0
    # The published model is the all-data run's, with the command that reproduces it.
    from keras_fer import zoo

    entry = zoo.describe("mini_xception.jaffe")
    assert entry.recipe.startswith("keras-fer train zoo_checkpoints --models "
                                   "mini_xception.jaffe")
    model = zoo.load("mini_xception.jaffe")
    import keras

    trained = keras.saving.load_model(os.path.join(out, "mini_xception.jaffe", "all",
                                                   "model.keras"))
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), trained.predict(x, verbose=0),
                               atol=1e-6)
    assert list(model.class_names) == list(trained.class_names)

    # --bundle replaces the packaged entry on purpose (here a copy of the package's folder).
    import shutil

    from keras_fer.zoo import store

    bundled = tmp_path / "bundled"
    (bundled / "entries").mkdir(parents=True)
    shutil.copy(store.BUNDLED_DIR / "entries" / "mini_xception.jaffe.json", bundled / "entries")
    shutil.copytree(store.BUNDLED_DIR / "files" / "mini_xception.jaffe",
                    bundled / "files" / "mini_xception.jaffe")
    monkeypatch.setattr(store, "BUNDLED_DIR", bundled)
    shutil.rmtree(home)  # so that zoo.describe reads the bundled entry
    before = json.loads((bundled / "entries" / "mini_xception.jaffe.json").read_text())
    argv = ["--smoke", "--out", out, "--models", "mini_xception.jaffe", "--max-folds", "1"]
    assert _run_recipe("zoo_checkpoints", argv + ["--bundle"]) == 0  # the runs are done
    after = json.loads((bundled / "entries" / "mini_xception.jaffe.json").read_text())
    assert after["files"] != before["files"]
    # The package's copy stores the weights as float16: the trained ones, rounded.
    assert after["weights_storage"]["dtype"] == "float16"
    rounded = keras.saving.load_model(os.path.join(out, "mini_xception.jaffe", "all",
                                                   "model.keras"))
    for v in rounded.weights:
        v.assign(v.numpy().astype("float16").astype("float32"))
    np.testing.assert_allclose(zoo.load("mini_xception.jaffe").predict(x, verbose=0),
                               rounded.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(SystemExit):  # --overwrite belongs to --publish
        _run_recipe("zoo_checkpoints", argv + ["--bundle", "--overwrite"])


def test_keras_fer_train_runs_a_recipe_by_name(capsys):
    from keras_fer.cli import main

    with pytest.raises(SystemExit, match="unknown recipe 'nope'"):
        main(["train", "nope"])
    with pytest.raises(SystemExit) as err:
        main(["train", "zoo_checkpoints", "--help"])
    assert err.value.code == 0
    assert "keras-fer train zoo_checkpoints" in capsys.readouterr().out
