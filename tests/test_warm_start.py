"""Warm starts from zoo entries and run folders, training histories, EMA and the best model."""

import json

import numpy as np
import pytest

import keras

from keras_fer import zoo
from keras_fer.datasets.records import FERDataset, Record
from keras_fer.training import TrainConfig, train
from keras_fer.layers.walk import weighted_leaves
from keras_fer.training.warm_start import check_init

CLASSES = ("angry", "happy", "neutral")
ARCH = dict(arch="mini_xception", input_shape=(48, 48, 1),
            arch_options={"width": 0.5, "head": "dense", "l2_regularization": 0})


def _data(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    # A learnable signal: the class sets the mean brightness.
    images = np.clip(rng.normal(60 + 70 * labels[:, None, None], 30, (n, 48, 48)), 0, 255)
    records = [Record(source=f"synthetic:{seed}:{i}", label=int(y), image=img.astype(np.uint8))
               for i, (img, y) in enumerate(zip(images, labels))]
    return FERDataset(f"random{seed}", records, CLASSES)


def _config(out_dir, **changes):
    values = dict(ARCH, epochs=1, batch_size=16, augment=None, tensorboard=False, verbose=0,
                  out_dir=str(out_dir), learning_rate=3e-3)
    values.update(changes)
    return TrainConfig(**values)


class _WeightsAtStart(keras.callbacks.Callback):
    def __init__(self, network):
        super().__init__()
        self.network, self.weights = network, None

    def on_train_begin(self, logs=None):
        self.weights = [w.copy() for w in self.network.get_weights()]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_FER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_continue_from_a_published_entry_starts_from_its_weights_and_grows_its_history(
        tmp_path, home):
    first = train(_config(tmp_path / "run1"), train_data=_data(64, 0), val_data=_data(32, 1))
    history1 = json.loads((tmp_path / "run1" / "training_history.json").read_text())
    assert len(history1) == 1 and history1[0]["epochs"] == 1
    assert history1[0]["images_seen"] == 64 and history1[0]["config"]["arch"] == "mini_xception"
    entry = zoo.publish(first.model, "tiny_mx.random", evaluation_dir=tmp_path / "run1/evaluation")
    assert entry.training_history == history1

    published = [w.copy() for w in zoo.load("tiny_mx.random").get_weights()]
    # Train() builds the model inside; the callback sees it through the engine's model.
    probe = {}

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            inner = getattr(self.model, "model", self.model)  # SAMModel would wrap it
            probe["weights"] = [w.copy() for w in inner.get_weights()]

    second = train(_config(tmp_path / "run2", init="zoo:tiny_mx.random", epochs=2),
                   train_data=_data(64, 2), val_data=_data(32, 3), extra_callbacks=[Probe()])
    assert len(probe["weights"]) == len(published)
    for got, want in zip(probe["weights"], published):
        np.testing.assert_array_equal(got, want)
    history2 = json.loads((tmp_path / "run2" / "training_history.json").read_text())
    assert len(history2) == 2
    assert history2[0]["finished"] == history1[0]["finished"]
    assert history2[0]["published_as"] == "tiny_mx.random"
    assert history2[1]["config"]["init"] == "zoo:tiny_mx.random"
    assert history2[1]["epochs"] == 2 and history2[1]["images_seen"] == 128
    # The weights moved from the entry's.
    assert any(not np.array_equal(a, b)
               for a, b in zip(second.model.get_weights(), published))

    entry2 = zoo.publish(second.model, "tiny_mx.random", evaluation_dir=tmp_path / "run2/evaluation",
                         overwrite=True)
    assert len(entry2.training_history) == 2
    assert "2 run(s), 3 epochs" in entry2.summary()
    card = (home / "models" / "tiny_mx.random" / "model_card.md").read_text()
    assert "Training history" in card and "zoo:tiny_mx.random" in card


def test_init_from_a_run_folder_with_a_new_head(tmp_path):
    train(_config(tmp_path / "run1"), train_data=_data(48, 0))
    four = FERDataset("four", [Record(source=f"s{i}", label=i % 4, image=np.full((48, 48), 7 * i,
                                                                            np.uint8))
                               for i in range(32)], ("angry", "happy", "neutral", "sad"))
    result = train(_config(tmp_path / "run2", init=str(tmp_path / "run1")), train_data=four)
    assert result.model.output_shape[-1] == 4
    assert result.model.class_names == ["angry", "happy", "neutral", "sad"]
    history = json.loads((tmp_path / "run2" / "training_history.json").read_text())
    assert len(history) == 2 and history[1]["config"]["init"] == str(tmp_path / "run1")


def test_bad_init_is_named_before_anything_runs(tmp_path):
    for bad, words in [("zoo:", "entry name"), (str(tmp_path / "missing.keras"), "does not exist"),
                       (str(tmp_path), "without model.keras")]:
        with pytest.raises(ValueError, match=words):
            check_init(bad)
    with pytest.raises(ValueError, match="init"):
        TrainConfig(init=str(tmp_path / "nothing"))


def test_ema_validates_and_ends_with_the_averaged_weights(tmp_path):
    result = train(_config(tmp_path / "ema", epochs=2, ema_momentum=0.9),
                   train_data=_data(64, 0), val_data=_data(32, 1))
    optimizer = result.model.optimizer
    averages = [keras.ops.convert_to_numpy(v) for v in optimizer._model_variables_moving_average]
    trainables = [keras.ops.convert_to_numpy(v) for v in result.model.trainable_variables]
    assert len(averages) == len(trainables)
    for avg, weight in zip(averages, trainables):
        np.testing.assert_allclose(weight, avg, atol=1e-6)
    # best.keras holds the averaged weights of its epoch; the last epoch's validation ran on
    # averaged weights too, so if the last epoch was best the files agree exactly.
    best = json.loads((tmp_path / "ema" / "best.json").read_text())
    assert best["monitor"] == "val_accuracy"
    assert best["value"] == max(h["val_accuracy"] for h in result.history)
    from keras_fer.models import load_model

    loaded = load_model(str(tmp_path / "ema" / "best.keras"))
    if best["epoch"] == 2:
        for a, b in zip(loaded.get_weights(), result.model.get_weights()):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_ema_weights_differ_from_the_raw_ones_and_validation_uses_them(tmp_path):
    from keras_fer.training.builders import build_optimizer

    config = _config(tmp_path / "x", ema_momentum=0.5)
    optimizer = build_optimizer(config, steps_per_epoch=4)
    assert optimizer.use_ema and optimizer.ema_momentum == 0.5
    with pytest.raises(ValueError, match="ema_momentum"):
        _config(tmp_path / "y", ema_momentum=1.0)


RESNET = dict(arch="resnet18", input_shape=(48, 48, 1),
              arch_options={"width_multiplier": 0.25, "dropout": 0.0})


def test_init_mode_layers_copies_weights_by_name_into_another_architecture(tmp_path):
    train(_config(tmp_path / "run1", **RESNET), train_data=_data(32, 0))
    source = keras.saving.load_model(tmp_path / "run1" / "model.keras")
    probe = {}

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            inner = getattr(self.model, "model", self.model)
            probe["layers"] = {path: [w.copy() for w in layer.get_weights()]
                               for path, layer in weighted_leaves(inner).items()}

    options = dict(RESNET["arch_options"], stem_pool=False, attention="hfc",
                   attention_cutoff=0.25, attention_options={"relative_cutoff": True})
    result = train(_config(tmp_path / "run2", **dict(RESNET, arch_options=options),
                           init=str(tmp_path / "run1"), init_mode="layers"),
                   train_data=_data(32, 1), extra_callbacks=[Probe()])
    assert result.model.arch_options["stem_pool"] is False
    assert result.model.arch_options["attention"] == "hfc"
    source_layers = {path: layer.get_weights()
                     for path, layer in weighted_leaves(source).items()}
    copied = [name for name in probe["layers"] if name in source_layers]
    assert {"resnet18_backbone/conv1", "resnet18_backbone/layer4.1.conv2"} <= set(copied)
    for name in copied:
        for got, want in zip(probe["layers"][name], source_layers[name]):
            np.testing.assert_array_equal(got, want)
    history = json.loads((tmp_path / "run2" / "training_history.json").read_text())
    transfer = history[-1]["transfer"]
    assert transfer["from"] == str(tmp_path / "run1")
    assert transfer["layers_copied"] == len(copied)
    # The inserted attention modules start from their own initialisation, and say so.
    new = sorted(set(probe["layers"]) - set(source_layers))
    assert new and sorted(transfer["layers_initialised"]) == new
    # Sub-layers are named within their module: four "pointwise" layers, four paths.
    assert len([p for p in new if p.endswith("/pointwise")]) == 4
    assert history[-1]["config"]["init_mode"] == "layers"


def test_transfer_between_unrelated_models_is_an_error():
    from keras_fer.zoo import transfer_weights

    a = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a")])
    b = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="b")])
    with pytest.raises(ValueError, match="no layer"):
        transfer_weights(a, b)
    c = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, name="a")])
    with pytest.raises(ValueError, match="no layer"):
        transfer_weights(a, c)  # same name, other shapes


def test_init_mode_is_validated():
    with pytest.raises(ValueError, match="init_mode"):
        TrainConfig(init_mode="weights")
    with pytest.raises(ValueError, match="needs an init"):
        TrainConfig(init_mode="layers")
