"""The recipes' shared pieces that need no training: run keys, the data folder's resolution,
the smoke data spec, and facts read from the model registry instead of copied."""

import argparse

import pytest

from keras_fer.recipes import _common as C


def test_run_key_joins_parts_and_spells_out_subject_folds():
    assert C.run_key("ckplus48", {"protocol": "subject", "fold": 2}, "resnet18", "hfc") == \
        "ckplus48/subject/fold2/resnet18/hfc"
    assert C.run_key("jaffe", {"protocol": "random", "fold": 0}, "vgg16") == "jaffe/random/vgg16"
    assert C.run_key("vit", "proposed", "fpdls") == "vit/proposed/fpdls"


def test_no_data_root_is_an_error_saying_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.delenv(C.DATA_ENV, raising=False)
    assert C.default_data_root() is None
    args = C.make_parser("demo", "demo").parse_args(["--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--data-root DIR or set KERAS_FER_DATA"):
        C.prepare(args, "demo")
    from keras_fer.recipes import generator_faces, generator_mnist

    with pytest.raises(SystemExit, match="KERAS_FER_DATA"):
        generator_mnist.parse_args(["--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="KERAS_FER_DATA"):
        generator_faces.parse_args(["--out", str(tmp_path)])
    # Data that is not read from the data root needs none.
    args = generator_faces.parse_args(["--dataset-root", str(tmp_path)])
    assert args.data_root is None and generator_mnist.parse_args(["--smoke"]).smoke


def test_smoke_data_spec_writes_the_named_datasets_once(tmp_path):
    from keras_fer.recipes._common import smoke

    spec = {"jaffe": dict(posers=("KA", "KM"), takes=1, size=16)}
    folder = smoke.smoke_data_root(str(tmp_path), "demo", spec)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [".complete", "jaffe"]
    assert smoke.smoke_data_root(str(tmp_path), "demo", None) == folder  # reused
    with pytest.raises(ValueError, match="no smoke data writer"):
        smoke.smoke_data_root(str(tmp_path / "other"), "demo", None)


def test_recipes_read_timm_names_and_bam_options_from_the_registry(tmp_path):
    from keras_fer.models import get_architecture
    from keras_fer.models.cnn_common import PAPER_BAM_OPTIONS
    from keras_fer.recipes import hfc_attention, zoo_checkpoints

    timm = get_architecture("mobilenetv2").timm_name
    (tmp_path / f"{timm}.safetensors").write_bytes(b"")
    options = C.with_weights({"attention": "hfc"}, "mobilenetv2", str(tmp_path))
    assert options == {"attention": "hfc", "weights": str(tmp_path / f"{timm}.safetensors")}
    assert C.with_weights({}, "mini_xception", str(tmp_path)) == {}  # no timm counterpart
    bam = hfc_attention.arch_options("bam", hfc_attention.MODES["cpu"])
    assert bam == {"attention": "bam", "attention_options": PAPER_BAM_OPTIONS}
    command = zoo_checkpoints.command_line("mini_xception.jaffe", argparse.Namespace(epochs=3))
    assert command == ("keras-fer train zoo_checkpoints --models mini_xception.jaffe "
                       '--data-root "$KERAS_FER_DATA" --epochs 3')
