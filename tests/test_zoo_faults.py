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


# -- item 1: an existing name is never shadowed without overwrite --------------------------

def _tiny_model(seed=0):
    import numpy as np

    from keras_fer.models import create_model

    model = create_model("mini_xception", num_classes=3, input_shape=(24, 24, 1))
    rng = np.random.default_rng(seed)
    for v in model.trainable_weights:
        v.assign(v.numpy() + rng.normal(0, 0.05, v.shape).astype("float32"))
    model.class_names = list(CLASSES)
    return model


def test_publish_refuses_a_name_that_exists_in_the_package(homes, tmp_path, capsys):
    from keras_fer.cli import main

    home, bundled = homes
    packaged = bundled / "entries" / "mini_xception.fer2013.json"
    packaged.write_text(_arch_entry("mini_xception.fer2013").to_json())
    model = _tiny_model()
    model.save(tmp_path / "other.keras")
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    with pytest.raises(FileExistsError, match=rf"{packaged} \(shipped with keras-fer\).*shadow"):
        zoo.publish(model, "mini_xception.fer2013")
    # Into another release folder too: it would shadow the package's model wherever it is used.
    with pytest.raises(FileExistsError, match="already exists"):
        zoo.publish(model, "mini_xception.fer2013", out_dir=tmp_path / "release")
    with pytest.raises(SystemExit, match=r"keras-fer zoo publish: zoo model "
                                         r"'mini_xception.fer2013' already exists.*--overwrite"):
        main(["zoo", "publish", str(tmp_path / "other.keras"), "--name",
              "mini_xception.fer2013"])
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before
    assert not (tmp_path / "release").exists()
    assert zoo.describe("mini_xception.fer2013") == ZooEntry.from_json(packaged)
    # A user's entry is protected the same way; --overwrite replaces on purpose.
    (home / "entries" / "mini_xception.mine.json").write_text(
        _arch_entry("mini_xception.mine").to_json())
    with pytest.raises(FileExistsError, match=str(home / "entries" / "mini_xception.mine.json")):
        zoo.publish(model, "mini_xception.mine", bundle=True)
    entry = zoo.publish(model, "mini_xception.fer2013", overwrite=True, description="mine")
    assert zoo.describe("mini_xception.fer2013") == entry and entry.pretrained


# -- item 8: publish ends in the old state or the new one, whatever write fails -------------

class _InjectedFault(OSError):
    pass


class _Faults:
    """Counts every write-like call (files opened for writing, renames, folders made,
    permission changes, copies, fsyncs) and fails the ``fail_at``-th one."""

    def __init__(self, fail_at=0):
        self.fail_at, self.calls, self.failed = fail_at, 0, None

    def _count(self, what):
        self.calls += 1
        if self.calls == self.fail_at:
            self.failed = what
            raise _InjectedFault(28, f"injected failure at write {self.calls} ({what})")

    def install(self, mp):
        import builtins
        import io
        import os
        import shutil

        def wrap(module, attr, is_write=lambda *a, **k: True):
            real = getattr(module, attr)

            def wrapper(*args, **kwargs):
                if is_write(*args, **kwargs):
                    self._count(f"{attr}{args[:1]}")
                return real(*args, **kwargs)

            mp.setattr(module, attr, wrapper)

        def writes_mode(file, mode="r", *args, **kwargs):
            return any(c in kwargs.get("mode", mode) for c in "wax+")

        writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT

        def writes_flags(path, flags, *args, **kwargs):
            return bool(flags & writes)

        wrap(builtins, "open", writes_mode)
        wrap(io, "open", writes_mode)
        wrap(os, "open", writes_flags)
        for attr in ("replace", "rename", "mkdir", "chmod", "fsync"):
            wrap(os, attr)
        wrap(shutil, "copyfile")


def _fake_export(model, export_dir, version=1, class_names=None, overwrite=False):
    """A quick stand-in for the SavedModel export with the same write pattern (an atomic
    folder holding several files), so that every k can be tried in reasonable time."""
    with store.atomic_dir(f"{export_dir}/{version}", overwrite=overwrite) as tmp:
        (tmp / "variables").mkdir()
        for rel in ("saved_model.pb", "variables/variables.index",
                    "variables/variables.data-00000-of-00001"):
            with open(tmp / rel, "wb") as f:
                f.write(f"{rel} of {model.name}".encode())


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def _check_consistent(root, name):
    """The entry of ``name`` under ``root`` describes exactly the files of its folder."""
    entry = ZooEntry.from_json(root / "entries" / f"{name}.json")
    folder = root / "models" / name
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert on_disk == set(entry.files)
    for rel, info in entry.files.items():
        store.verify(folder / rel, info, name, rel)
    return entry


def test_publish_ends_old_or_new_whatever_write_fails(tmp_path, monkeypatch):
    import shutil

    from keras_fer.zoo import serving

    monkeypatch.setattr(serving, "export_serving", _fake_export)
    monkeypatch.setattr(store, "BUNDLED_DIR", tmp_path / "bundled")
    base = tmp_path / "base"
    monkeypatch.setenv("KERAS_FER_HOME", str(base))
    old_model, new_model = _tiny_model(seed=1), _tiny_model(seed=2)
    zoo.publish(old_model, "mini_xception.old", description="old")
    zoo.publish(old_model, "mini_xception.kept", description="old")
    base_tree = _tree(base)

    def attempt(k, name, overwrite):
        home = tmp_path / f"home_{name}_{k}"
        shutil.copytree(base, home)
        monkeypatch.setenv("KERAS_FER_HOME", str(home))
        faults = _Faults(k)
        error = None
        with pytest.MonkeyPatch.context() as mp:
            faults.install(mp)
            try:
                zoo.publish(new_model, name, description="new", overwrite=overwrite)
            except _InjectedFault as err:
                error = err
        tree = _tree(home)
        leftovers = [p for p in tree if any(part.startswith(".") for part in p.split("/"))]
        assert not leftovers, (k, faults.failed, leftovers)
        if error is None:  # the fault hit nothing that matters, or nothing at all
            assert _check_consistent(home, name).description == "new", (k, faults.failed)
        else:
            assert tree == base_tree, (k, faults.failed)  # exactly as before, byte for byte
        for other in ("mini_xception.old", "mini_xception.kept"):
            if other != name or error is not None:
                assert _check_consistent(home, other).description == "old"
        shutil.rmtree(home)
        return faults.calls, error

    for name, overwrite in (("mini_xception.old", True), ("mini_xception.new", False)):
        total, error = attempt(0, name, overwrite)  # no fault: counts the writes
        assert error is None and total > 10
        failures = [attempt(k, name, overwrite)[1] for k in range(1, total + 1)]
        # Some faults are absorbed where they do no harm (mkdir(exist_ok=True) of a folder
        # that exists); the state was checked above either way.
        assert sum(e is not None for e in failures) > total // 2, total


# -- item 2: load_serving never serves a damaged or foreign export ----------------------------

def test_load_serving_rebuilds_a_damaged_or_foreign_export(homes, tmp_path):
    import shutil

    import numpy as np
    import tensorflow as tf

    from keras_fer.models import create_model
    from keras_fer.zoo import loading, serving

    home, bundled = homes
    name = "mini_xception.bundled"
    model = _tiny_model(seed=3)
    entry = zoo.publish(model, name, bundle=True)  # .keras only: load_serving exports it
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 24, 24, 1)).astype("float32")
    # The bundled file stores float16 weights: the export serves what zoo.load gives.
    expected = tf.nn.softmax(zoo.load(name)(pixels, training=False)).numpy()

    def check(served):
        names = served.signatures["class_names"]()["class_names"].numpy()
        assert [n.decode() for n in names] == CLASSES
        out = served.signatures["serve_preprocessed"](pixels=tf.constant(pixels))
        np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5, rtol=0)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a first export is not worth a warning
        check(zoo.load_serving(name))
    path, = (home / "models" / name / "exported").glob(f"*/{name}/1")
    manifest = path.parents[1] / "manifest.json"
    assert json.loads(manifest.read_text())["files"] == store.hash_tree(path)
    # Another model's export (4 classes, as in the 8-for-7), made once, copied in.
    foreign = serving.export_serving(
        create_model("mini_xception", num_classes=4, input_shape=(24, 24, 1)),
        tmp_path / "foreign", version=1)

    def replace_with_foreign():
        shutil.rmtree(path)
        shutil.copytree(foreign, path)

    replace_with_foreign()
    with pytest.warns(RuntimeWarning, match=rf"{path}: does not match its manifest"):
        check(zoo.load_serving(name))
    shutil.rmtree(path / "variables")
    with pytest.warns(RuntimeWarning, match=r"missing: variables/variables.data-00000-of-00001, "
                                            r"variables/variables.index"):
        check(zoo.load_serving(name))
    # An export without a manifest (older keras-fer, or killed before it) is not trusted.
    replace_with_foreign()
    manifest.unlink()
    with pytest.warns(RuntimeWarning, match="no manifest"):
        check(zoo.load_serving(name))
    # A foreign export together with a manifest that matches it: the signatures give it away.
    replace_with_foreign()
    manifest.write_text(json.dumps(loading._export_manifest(
        entry, path, entry.files[entry.keras_file]["sha256"])))
    with pytest.warns(RuntimeWarning, match=r"holds a model of 4 classes"):
        check(zoo.load_serving(name))
    # An export by an older export_serving (before serve_preprocessed checked its input) is
    # redone, so a cached export gets the checks of the installed version.
    recorded = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**recorded, "export_format": 1}))
    with pytest.warns(RuntimeWarning, match="is for another model or version"):
        check(zoo.load_serving(name))
    assert json.loads(manifest.read_text())["export_format"] == serving.EXPORT_FORMAT
    # Intact now: served as it is, not exported again.
    mtime = (path / "saved_model.pb").stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check(zoo.load_serving(name))
    assert (path / "saved_model.pb").stat().st_mtime_ns == mtime
