"""TensorBoard of a training run (keras_fer.training.tensorboard), read back from the event
files: step scalars, per-class precision / recall / F1, hparams, graph, histograms, profiler."""

import glob
import os

import pytest


def _acc(path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def _values(acc, tag):
    import tensorflow as tf

    return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from keras_fer.datasets import synthetic
    from keras_fer.training import TrainConfig, train

    tmp = tmp_path_factory.mktemp("tb")
    root = synthetic.write_fer2013(str(tmp / "data"), per_class_train=3, per_class_test=2)
    config = TrainConfig(arch="mini_xception", arch_options={"width": 0.5}, dataset="fer2013",
                         data_root=root, epochs=2, batch_size=8, augment=None, verbose=0,
                         out_dir=str(tmp / "run"), tensorboard_step_every=2,
                         tensorboard_histogram_every=1, profile_batches=(2, 3))
    result = train(config)
    return tmp / "run" / "tensorboard", result, config


def test_defaults_keep_the_cheap_behaviour():
    from keras_fer.training import TrainConfig

    config = TrainConfig()
    assert config.tensorboard_histogram_every is None and config.profile_batches is None
    assert config.tensorboard_step_every == 100 and config.tensorboard_graph


def test_train_side_step_scalars(run):
    tb, result, _ = run
    acc = _acc(tb / "train")
    tags = acc.Tags()["tensors"]
    assert "step/loss" in tags and "step/accuracy" in tags
    steps_per_epoch = -(-21 // 8)  # 7 classes x 3 training images, batch 8
    steps = [s for s, _ in _values(acc, "step/loss")]
    assert steps == [s for s in range(1, 2 * steps_per_epoch + 1) if s % 2 == 0]
    # The running mean at an epoch's last step is the epoch's loss.
    last = dict(_values(acc, "step/loss"))[2 * steps_per_epoch]
    assert last == pytest.approx(result.history[-1]["loss"], rel=1e-5)


def test_graph_and_weight_histograms(run):
    tb, result, _ = run
    acc = _acc(tb / "train")
    assert acc.Tags()["graph"]
    graph = acc.Graph()
    assert any(node.op == "Conv2D" or "conv" in node.name.lower() for node in graph.node)
    histograms = [t for t in acc.Tags()["tensors"] if t.startswith("weights/")]
    assert len(histograms) == len(result.model.weights)
    assert [e.step for e in acc.Tensors(histograms[0])] == [1, 2]  # every epoch


def test_per_class_precision_recall_f1(run):
    tb, result, _ = run
    acc = _acc(tb / "val")
    tags = acc.Tags()["tensors"]
    for name in result.model.class_names:
        for kind in ("class_accuracy", "class_precision", "class_f1"):
            assert f"{kind}/{name}" in tags, (kind, name)
    report = result.report
    for name in result.model.class_names:
        (step, precision), = _values(acc, f"class_precision/{name}")[-1:]
        assert step == 2
        assert precision == pytest.approx(report["per_class"][name]["precision"], abs=1e-6)
        assert _values(acc, f"class_f1/{name}")[-1][1] == pytest.approx(
            report["per_class"][name]["f1"], abs=1e-6)
    assert "epoch/val_mean_class_accuracy" in tags and "epoch/val_weighted_f1" in tags


def test_hparams_config_and_final_metrics(run):
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    tb, result, config = run
    acc = _acc(tb / "hparams")
    tags = acc.Tags()["tensors"]
    assert metadata.SESSION_START_INFO_TAG in tags
    assert len(acc.Tensors(metadata.SESSION_START_INFO_TAG)) == 1
    content = acc.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert info.hparams["arch"].string_value == "mini_xception"
    assert info.hparams["batch_size"].number_value == 8
    assert info.hparams["arch_options.width"].number_value == 0.5
    assert info.hparams["profile_batches"].string_value == "[2, 3]"
    final = {t: _values(acc, t)[-1] for t in tags if t.startswith("final/")}
    assert final["final/val_accuracy"] == (2, pytest.approx(result.history[-1]["val_accuracy"]))
    assert final["final/val_loss"][1] == pytest.approx(result.history[-1]["val_loss"])
    assert final["final/val_weighted_f1"][1] == pytest.approx(result.report["weighted"]["f1"],
                                                              abs=1e-6)


def test_profiler_window_writes_a_trace(run):
    tb, _, _ = run
    traces = glob.glob(os.path.join(tb, "train", "plugins", "profile", "*", "*.xplane.pb"))
    assert len(traces) == 1, traces


def test_bad_tensorboard_options_are_named():
    from keras_fer.training import TrainConfig

    for bad in ((0, 3), (3, 2), (1,), ("a", 2)):
        with pytest.raises(ValueError, match="profile_batches must be"):
            TrainConfig(profile_batches=bad)
    with pytest.raises(ValueError, match="tensorboard_step_every"):
        TrainConfig(tensorboard_step_every=0)
    assert TrainConfig(profile_batches=[2, 4]).profile_batches == (2, 4)
