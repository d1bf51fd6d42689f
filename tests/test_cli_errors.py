"""``keras-fer train`` / ``keras-fer evaluate``: user errors are one clear line (no traceback),
checked before any data is read; bare ``train`` prints usage; ``--help`` lists the keys."""

import os

import pytest

from keras_fer.cli import main


@pytest.fixture(autouse=True)
def _seed():
    """Overrides the conftest fixture: no Keras state is built by most of these."""
    yield


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err, *fragments):
    lines = [line for line in err.strip().splitlines() if line.startswith("keras-fer")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("settings, fragments", [
    (["dataset=nope", "data_root=."], ["unknown dataset 'nope'", "fer2013"]),
    (["dataset=fer2013", "data_root=/no/such/file.csv"], ["/no/such/file.csv", "does not exist"]),
    (["lr=0.1"], ["unknown TrainConfig fields: lr"]),
    (["learnin_rate=0.1"], ["did you mean learning_rate"]),
    (["epochs=abc"], ["epochs must be an integer, got 'abc'"]),
    (["epochs=2.5"], ["epochs must be an integer, got 2.5"]),
    (["epochs=0"], ["epochs must be > 0"]),
    (["batch_size=-3"], ["batch_size must be > 0"]),
    (["optimizer=rmsprop"], ["optimizer must be one of"]),
    (["tensorboard=maybe"], ["tensorboard must be bool"]),
    (["epochs"], ["--set expects key=value"]),
])
def test_train_set_errors_are_one_line(capsys, tmp_path, settings, fragments):
    code, _, err = _run(capsys, "train", "--set", *settings, f"out_dir={tmp_path / 'run'}")
    assert code == 2
    _one_line_error(err, *fragments)
    assert not (tmp_path / "run").exists()  # nothing written before the check


def test_train_bad_split_is_one_line(capsys, tmp_path):
    from keras_fer.datasets import synthetic

    root = synthetic.write_fer2013(str(tmp_path), per_class_train=1, per_class_test=1)
    code, _, err = _run(capsys, "train", "--set", "dataset=fer2013", f"data_root={root}",
                        "train_split=Trainnig", f"out_dir={tmp_path / 'run'}")
    assert code == 1
    _one_line_error(err, "split must be one of", "'Trainnig'")


def test_learning_rate_int_is_a_float(capsys):
    from keras_fer.training import TrainConfig

    config = TrainConfig(learning_rate=1, epochs=3.0)
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.epochs == 3 and isinstance(config.epochs, int)


def test_bare_train_prints_usage(capsys):
    code, _, err = _run(capsys, "train")
    assert code == 2 and err.startswith("usage: keras-fer train") and "Traceback" not in err


def test_train_help_lists_set_keys_with_types_and_defaults(capsys):
    import dataclasses

    from keras_fer.training import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for field in dataclasses.fields(TrainConfig):
        assert f"  {field.name} " in out, field.name
    assert "epochs                   int              default 10" in out
    assert "learning_rate            float            default 0.001" in out


def test_evaluate_errors_are_one_line(capsys, tmp_path):
    code, _, err = _run(capsys, "evaluate", "missing.keras", "--dataset", "ckplus48",
                        "--root", str(tmp_path))
    assert code == 2
    _one_line_error(err, "missing.keras", "does not exist")
    code, _, err = _run(capsys, "evaluate", "mini_xception.fer2013", "--dataset", "nope",
                        "--root", str(tmp_path))
    _one_line_error(err, "unknown dataset 'nope'")
    code, _, err = _run(capsys, "evaluate", "no_such.model", "--dataset", "ckplus48",
                        "--root", str(tmp_path))
    assert code == 1
    _one_line_error(err, "no_such.model")


def test_evaluate_ckplus48_model_on_ckplus48_by_file_and_zoo_name(capsys, tmp_path):
    # CK+48 has seven classes (contempt, no neutral): the bundled model's seven outputs and the
    # dataset's labels agree, so the evaluation runs (it failed with "labels outside [0, 7)").
    import json

    import keras_fer
    from keras_fer.datasets import synthetic

    root = synthetic.write_ckplus48(str(tmp_path), subjects=2, frames=2)
    path = os.path.join(os.path.dirname(keras_fer.__file__), "zoo", "files",
                        "mini_xception.ckplus48", "mini_xception.ckplus48.keras")
    for model in (path, "mini_xception.ckplus48"):
        out = tmp_path / f"eval_{len(model)}"
        code, stdout, err = _run(capsys, "evaluate", model, "--dataset", "ckplus48", "--root",
                                 root, "--out", str(out))
        assert code == 0, err
        report = json.loads((out / "report.json").read_text())
        assert report["num_samples"] == 28 and "on 28 images" in stdout
        assert list(report["per_class"]) == ["angry", "disgust", "fear", "happy", "sad",
                                             "surprise", "contempt"]
