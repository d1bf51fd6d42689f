"""The zoo under bad input and faults (issue 15): broken entry files, names that differ only
in case or dashes, publishing over an existing name, publishing that fails at any write, and
a cache of exported SavedModels that was damaged or swapped."""

import json
import warnings

import pytest

from keras_fer import zoo
from keras_fer.zoo import registry, store
from keras_fer.zoo.entry import ZooEntry

CLASSES = ["angry", "happy", "neutral"]


def _arch_entry(name):
    return ZooEntry(name=name, arch="mini_xception", input_shape=(24, 24, 1),
                    class_names=CLASSES)


@pytest.fixture
def homes(tmp_path, monkeypatch):
    """An empty private KERAS_FER_HOME and an empty private package folder."""
    home, bundled = tmp_path / "home", tmp_path / "bundled"
    (home / "entries").mkdir(parents=True)
    (bundled / "entries").mkdir(parents=True)
    monkeypatch.setenv("KERAS_FER_HOME", str(home))
    monkeypatch.setattr(store, "BUNDLED_DIR", bundled)
    return home, bundled


# -- item 13: broken entry files, name suggestions -----------------------------------------

def test_invalid_user_entry_is_skipped_with_a_warning_naming_it(homes, capsys):
    from keras_fer.cli import main

    home, bundled = homes
    (bundled / "entries" / "mini_xception.fer2013.json").write_text(
        _arch_entry("mini_xception.fer2013").to_json())
    (home / "entries" / "vit_tiny.ferplus.json").write_text(
        _arch_entry("vit_tiny.ferplus").to_json())
    broken = home / "entries" / "resnet18.broken.json"
    broken.write_text('{"name": "resnet18.broken", ')  # cut short: not valid JSON
    with pytest.warns(registry.ZooEntryWarning, match=rf"{broken}.*not valid JSON"):
        assert zoo.list_models() == ["mini_xception.fer2013", "vit_tiny.ferplus"]
    with pytest.warns(registry.ZooEntryWarning, match=str(broken)):
        assert zoo.list_models(pretrained=False) == ["mini_xception.fer2013", "vit_tiny.ferplus"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pattern that leaves the broken file out: no warning
        assert zoo.list_models("vit*") == ["vit_tiny.ferplus"]

    assert main(["zoo", "list"]) == 0
    out, err = capsys.readouterr()
    assert "mini_xception.fer2013" in out and "vit_tiny.ferplus" in out
    assert "resnet18.broken" not in out
    assert err.count("\n") == 1 and str(broken) in err and "warning" in err
    assert "Traceback" not in err and "UserWarning" not in err
    # Describing the broken entry itself is still an error that names the file.
    with pytest.raises(ValueError, match=rf"{broken}: not valid JSON"):
        zoo.describe("resnet18.broken")


def test_name_suggestions_ignore_case_and_dashes(homes):
    home, bundled = homes
    for name in ("mini_xception.fer2013", "mini_xception.ckplus48", "resnet18_hfc.ckplus48"):
        (bundled / "entries" / f"{name}.json").write_text(_arch_entry(name).to_json())
    for typed in ("MINI_XCEPTION.FER2013", "mini-xception.fer2013", "Mini-Xception.FER2013 "):
        with pytest.raises(ValueError, match=r"Did you mean 'mini_xception.fer2013'\?"):
            zoo.describe(typed)
    with pytest.raises(ValueError, match=r"Similar: resnet18_hfc.ckplus48"):
        zoo.describe("RESNET18-HFC.ckplus")
    for empty in ("", " ", "."):
        with pytest.raises(ValueError) as err:
            zoo.describe(empty)
        assert "Similar" not in str(err.value) and "Did you mean" not in str(err.value)
