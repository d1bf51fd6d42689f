"""train(config): an end-to-end run on synthetic faces, its outputs, TensorBoard and report."""

import json
import os

import numpy as np
import pytest

import keras

from keras_fer.datasets.records import FERDataset, Record
from keras_fer.app.demo import DEMO_CLASSES, draw_faces
from keras_fer.models import FERClassifier, register_architecture
from keras_fer.training import TrainConfig, train


def _faces(n, seed):
    images, labels = draw_faces(n, size=32, seed=seed)
    records = [Record(source=f"synthetic:{i}", label=int(y), image=img)
               for i, (img, y) in enumerate(zip(images, labels))]
    return FERDataset(f"faces{seed}", records, DEMO_CLASSES)


@register_architecture("engine_test_cnn", family="test", default_input_shape=(32, 32, 1),
                       mean=(0.5,), std=(0.5,))
def _engine_test_cnn(num_classes, input_shape, width=8):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(width, 3, strides=2, activation="relu", padding="same")(inputs)
    x = keras.layers.Conv2D(2 * width, 3, strides=2, activation="relu", padding="same")(x)
    backbone = keras.Model(inputs, x, name="engine_test_backbone")
    return FERClassifier(backbone, num_classes, input_shape=input_shape, mean=(0.5,),
                         std=(0.5,), arch="engine_test_cnn",
                         arch_options={"width": width})


def _read_scalars_and_images(event_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(event_dir, size_guidance={"tensors": 0})
    acc.Reload()
    return acc, acc.Tags()["tensors"]


def test_train_end_to_end_writes_everything(tmp_path):
    config = TrainConfig(arch="engine_test_cnn", epochs=2, batch_size=32, learning_rate=3e-3,
                         augment=None, out_dir=str(tmp_path / "run"), verbose=0,
                         schedule="plateau", plateau_patience=1)
    result = train(config, train_data=_faces(256, 0), val_data=_faces(64, 1))
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.model.class_names == list(DEMO_CLASSES)
    run = tmp_path / "run"
    for name in ("config.json", "model.keras", "history.json", "checkpoints/trainer_state.json",
                 "evaluation/report.json", "evaluation/report.md",
                 "evaluation/confusion_matrix.png", "evaluation/confusion_matrix.csv",
                 "evaluation/tsne_2d.png", "evaluation/tsne_3d.png", "evaluation/gradcam.png"):
        assert (run / name).exists(), name
    report = json.loads((run / "evaluation/report.json").read_text())
    cm = np.array(report["confusion_matrix"])
    assert cm.sum() == 64 and report["num_samples"] == 64
    assert report["accuracy"] == pytest.approx(np.trace(cm) / 64)
    assert report["params"]["total"] == result.model.count_params()
    assert report["flops"] > 0

    acc, tags = _read_scalars_and_images(str(run / "tensorboard" / "val"))
    for tag in ("epoch/loss", "epoch/val_loss", "epoch/val_accuracy", "epoch/learning_rate",
                "class_accuracy/happy", "confusion_matrix", "sample_predictions"):
        assert tag in tags, tag
    import tensorflow as tf

    losses = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("epoch/loss")]
    np.testing.assert_allclose(losses, [h["loss"] for h in result.history], rtol=1e-5)
    assert os.path.exists(run / "tensorboard" / "projector" / "projector_config.pbtxt")

    # The saved model is the trained one.
    restored = keras.saving.load_model(run / "model.keras")
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(restored.predict(x, verbose=0), result.model.predict(x, verbose=0),
                               atol=1e-5)

    # Re-running the finished command resumes at the end: nothing more is trained.
    again = train(config, train_data=_faces(256, 0), val_data=_faces(64, 1))
    assert [h["epoch"] for h in again.history] == [1, 2]


def test_config_validation_names_the_field(tmp_path):
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="fold"):
        TrainConfig(fold=5, folds=5)
    with pytest.raises(ValueError, match="unknown TrainConfig fields: lr"):
        TrainConfig.from_dict({"lr": 0.1})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        TrainConfig.from_json(str(bad))
    config = TrainConfig(arch="x", epochs=3)
    path = tmp_path / "c.json"
    config.to_json(str(path))
    assert TrainConfig.from_json(str(path)) == config


def test_bn_momentum_reaches_nested_batchnorm_and_is_saved(tmp_path):
    from keras_fer.models import create_model
    from keras_fer.training.builders import set_batchnorm_momentum

    with pytest.raises(ValueError, match="bn_momentum"):
        TrainConfig(bn_momentum=1.0)
    model = create_model("mini_xception", num_classes=3, input_shape=(24, 24, 1))
    bns = [layer for layer in model.backbone.layers
           if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(layer.momentum == 0.99 for layer in bns)
    assert set_batchnorm_momentum(model, 0.9) == len(bns)
    assert all(layer.momentum == 0.9 for layer in bns)
    # The running statistics move by (1 - momentum) of the batch statistic per step.
    bn = bns[0]
    before = keras.ops.convert_to_numpy(bn.moving_mean)
    x = np.random.default_rng(0).uniform(0, 255, (8, 24, 24, 1)).astype("float32")
    model(x, training=True)
    after = keras.ops.convert_to_numpy(bn.moving_mean)
    feats = keras.Model(model.backbone.input, bn.input)(
        (x - 127.5) / 127.5, training=True)  # classifier normalises with mean=std=0.5*255
    batch_mean = keras.ops.convert_to_numpy(keras.ops.mean(feats, axis=(0, 1, 2)))
    np.testing.assert_allclose(after, 0.9 * before + 0.1 * batch_mean, rtol=1e-4, atol=1e-5)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert all(layer.momentum == 0.9 for layer in loaded.backbone.layers
               if isinstance(layer, keras.layers.BatchNormalization))


def test_official_protocol_without_splits_uses_the_official_split(tmp_path):
    # The README's `keras-fer train --set arch=... dataset=fer2013 data_root=... epochs=N`
    # used to train on every row, PublicTest included, with no validation.
    from keras_fer.cli import main
    from keras_fer.datasets import synthetic
    from keras_fer.training.engine import load_splits

    root = synthetic.write_fer2013(str(tmp_path), per_class_train=3, per_class_test=2)
    train_set, val_set = load_splits(TrainConfig(dataset="fer2013", data_root=root, verbose=0))
    assert {r.split for r in train_set} == {"Training"} and len(train_set) == 21
    assert {r.split for r in val_set} == {"PublicTest"} and len(val_set) == 14

    out = tmp_path / "run"
    code = main(["train", "--set", "arch=engine_test_cnn", "dataset=fer2013",
                 f"data_root={root}", "epochs=1", "batch_size=8", "augment=null",
                 "tensorboard=false", f"out_dir={out}", "verbose=0"])
    assert code == 0
    report = json.loads((out / "evaluation" / "report.json").read_text())
    assert report["num_samples"] == 14 and report["val_dataset"] == "fer2013/PublicTest"


def test_official_protocol_on_a_dataset_without_splits_says_what_to_do(tmp_path):
    from keras_fer.datasets import synthetic
    from keras_fer.training.engine import load_splits

    root = synthetic.write_ckplus48(str(tmp_path), subjects=2, frames=1)
    with pytest.raises(ValueError, match="has no official split.*subject_kfold"):
        load_splits(TrainConfig(dataset="ckplus48", data_root=root, verbose=0))


def test_ckplus48_model_has_the_seven_classes_of_the_data(tmp_path):
    # CK+48 used to be read as 8 classes: the model got an untrained "neutral" output.
    from keras_fer.datasets import synthetic

    root = synthetic.write_ckplus48(str(tmp_path), subjects=2, frames=1)
    config = TrainConfig(arch="engine_test_cnn", dataset="ckplus48", data_root=root,
                         protocol="subject_kfold", folds=2, epochs=1, batch_size=8,
                         augment=None, tensorboard=False, out_dir=str(tmp_path / "run"),
                         verbose=0)
    result = train(config)
    assert result.model.output_shape[-1] == 7
    assert result.model.class_names == ["angry", "disgust", "fear", "happy", "sad", "surprise",
                                        "contempt"]


def test_final_save_is_atomic_and_incompatible_restart_fails_before_writing(tmp_path,
                                                                            monkeypatch):
    out = tmp_path / "run"
    config = TrainConfig(arch="engine_test_cnn", epochs=1, batch_size=32, augment=None,
                         tensorboard=False, out_dir=str(out), verbose=0)
    first = train(config, train_data=_faces(64, 0), val_data=_faces(32, 1))
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    expected = first.model.predict(x, verbose=0)

    # A disk that fills up half-way through the final save.
    def failing_save(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\x03\x04 truncated")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        train(config.replace(epochs=2), train_data=_faces(64, 0), val_data=_faces(32, 1))
    monkeypatch.undo()
    restored = keras.saving.load_model(out / "model.keras")  # the previous one, intact
    np.testing.assert_allclose(restored.predict(x, verbose=0), expected, atol=1e-5)
    assert not [n for n in os.listdir(out) if ".tmp" in n]

    # Another arch in the same out_dir: refused before config.json is touched.
    before = (out / "config.json").read_text()
    with pytest.raises(ValueError, match="arch: 'engine_test_cnn' -> 'mini_xception'"):
        train(config.replace(arch="mini_xception"), train_data=_faces(64, 0))
    assert (out / "config.json").read_text() == before


def test_corrupt_image_mid_epoch_names_the_file(tmp_path):
    import keras_fer.datasets as kd
    from keras_fer.datasets import synthetic

    root = synthetic.write_image_folder(str(tmp_path), per_class=4, classes=("angry", "happy"),
                                        splits=("train",), size=32)
    bad = os.path.join(root, "train", "happy", "0002.png")
    data = bytearray(open(bad, "rb").read())
    data[len(data) // 2] ^= 0x55
    open(bad, "wb").write(bytes(data))
    ds = kd.load("image_folder", root)  # quick validation: passes
    config = TrainConfig(arch="engine_test_cnn", epochs=1, batch_size=4, augment=None,
                         tensorboard=False, out_dir=str(tmp_path / "run"), verbose=0)
    with pytest.raises(kd.ImageReadError, match="0002.png: corrupt image.*on_error='skip'"):
        train(config, train_data=ds)
