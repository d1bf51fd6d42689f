"""``ZooEntry``: one named model of the zoo, its whole configuration as data (JSON).

An entry is everything needed to rebuild, feed, judge and fetch a model without reading its
weights file: the architecture and its arguments, the input size and normalisation, the
class list, where the numbers came from (dataset, protocol, the exact training command),
the measured metrics, the files with their sha256, and the terms of use. Names follow timm's
``arch.tag`` convention (``mini_xception.fer2013``, ``resnet18_hfc.ckplus48``): the part
before the dot says what the network is, the part after it what it was trained on.
"""

import dataclasses
import json
import re
from typing import Optional

#: ``arch.tag``: lower-case letters, digits and underscores on both sides of one dot. No
#: other characters, because the name becomes a folder, a file name and the model name in
#: TF Serving's URL (``/v1/models/<name>:predict``).
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*\.[a-z0-9][a-z0-9_]*$")

DEFAULT_LICENCE = (
    "Code: Apache-2.0. Weights: derived from the training data, so the data set's own terms "
    "apply (most FER data sets are licensed for non-commercial research only); check them "
    "before any other use.")
DEFAULT_INTENDED_USE = (
    "Research and teaching on facial expression recognition: benchmarking, fine-tuning on "
    "other expression data, demonstrations. Input: one roughly frontal face crop per image.")
DEFAULT_LIMITATIONS = (
    "Recognises posed or in-the-wild facial *expressions*, which are not reliable evidence "
    "of a person's emotions or intentions. Accuracy is measured on one data set and protocol "
    "and drops on other populations, lighting, poses, occlusions and image sizes; FER data "
    "sets are unbalanced in age, ethnicity and gender. Not for decisions about people "
    "(hiring, policing, education, health, access) nor for surveillance.")

#: How the ``.keras`` file stores its float32 weights (``weights_storage["dtype"]``): as
#: Keras saves them, or rounded to float16 (half the bytes; ``keras_fer.zoo.compact``).
STORAGE_DTYPES = ("float32", "float16")


def check_name(name):
    """Raises ``ValueError`` unless ``name`` is a valid ``arch.tag`` entry name."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(f"name must look like 'arch.tag' (lower-case letters, digits and "
                         f"underscores around one dot, e.g. 'mini_xception.fer2013'), got "
                         f"{name!r}")
    return name


def check_relative_path(path):
    """A file name inside an entry's folder: relative, POSIX, no ``..`` (it is joined to
    cache folders and URLs, so it must not be able to escape them)."""
    if (not isinstance(path, str) or not path or path.startswith("/") or "\\" in path
            or any(p in ("", ".", "..") for p in path.split("/"))):
        raise ValueError(f"files: {path!r} is not a relative path inside the model's folder")
    return path


@dataclasses.dataclass
class ZooEntry:
    """A registry entry. ``files`` maps paths relative to the model's folder to
    ``{"sha256": hex digest, "bytes": size}``; an entry without files describes an
    architecture recipe with no trained weights (``list_models(pretrained=False)``).

    ``keras_file`` is ``<name>.keras``; the SavedModel files are those under
    ``serving/<name>/<serving_version>/``.

    ``weights_storage`` is empty for a ``.keras`` file as Keras saves it (float32 weights);
    for one whose weights are stored as float16 it records ``dtype`` and how much that
    changes the outputs (``keras_fer.zoo.compact.store_float16``). Either loads as float32.
    """

    name: str
    arch: str
    input_shape: tuple
    class_names: list
    arch_options: dict = dataclasses.field(default_factory=dict)
    mean: tuple = (0.5,)
    std: tuple = (0.5,)
    dataset: str = ""
    protocol: str = ""
    recipe: str = ""
    metrics: dict = dataclasses.field(default_factory=dict)
    files: dict = dataclasses.field(default_factory=dict)
    weights_storage: dict = dataclasses.field(default_factory=dict)
    url: Optional[str] = None
    licence: str = DEFAULT_LICENCE
    description: str = ""
    intended_use: str = DEFAULT_INTENDED_USE
    limitations: str = DEFAULT_LIMITATIONS
    serving_version: int = 1
    created: str = ""
    software: dict = dataclasses.field(default_factory=dict)
    training_history: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        check_name(self.name)
        if not isinstance(self.arch, str) or not self.arch:
            raise ValueError(f"arch must be an architecture name, got {self.arch!r}")
        self.input_shape = tuple(int(v) for v in self.input_shape)
        if len(self.input_shape) != 3 or self.input_shape[-1] not in (1, 3):
            raise ValueError(f"input_shape must be (height, width, 1 or 3), got "
                             f"{self.input_shape}")
        self.class_names = [str(c) for c in self.class_names]
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"class_names must hold at least two distinct names, got "
                             f"{self.class_names}")
        channels = self.input_shape[-1]
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        for field, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != channels:
                raise ValueError(f"{field} must have one value per input channel "
                                 f"({channels}), got {list(values)}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be > 0, got {list(self.std)}")
        if not isinstance(self.arch_options, dict):
            raise ValueError(f"arch_options must be a dict, got {type(self.arch_options).__name__}")
        if not isinstance(self.metrics, dict):
            raise ValueError(f"metrics must be a dict, got {type(self.metrics).__name__}")
        for path, info in self.files.items():
            check_relative_path(path)
            if (not isinstance(info, dict)
                    or not re.fullmatch(r"[0-9a-f]{64}", str(info.get("sha256")))
                    or not isinstance(info.get("bytes"), int)):
                raise ValueError(f"files[{path!r}] must be {{'sha256': 64 hex digits, 'bytes': "
                                 f"int}}, got {info!r}")
        if not isinstance(self.weights_storage, dict) or (
                self.weights_storage
                and self.weights_storage.get("dtype") not in STORAGE_DTYPES):
            raise ValueError(f"weights_storage must be {{}} or a dict whose 'dtype' is one of "
                             f"{', '.join(STORAGE_DTYPES)}, got {self.weights_storage!r}")
        if not isinstance(self.training_history, list) or not all(
                isinstance(run, dict) for run in self.training_history):
            raise ValueError("training_history must be a list of runs (JSON objects), got "
                             f"{type(self.training_history).__name__}")
        if isinstance(self.serving_version, bool) or not isinstance(self.serving_version, int) \
                or self.serving_version < 1:
            raise ValueError(f"serving_version must be an integer >= 1, got "
                             f"{self.serving_version!r}")

    # -- names of the files --------------------------------------------------------------
    @property
    def keras_file(self):
        return f"{self.name}.keras"

    @property
    def serving_dir(self):
        """The SavedModel folder, relative to the model's folder (TF Serving's layout)."""
        return f"serving/{self.name}/{self.serving_version}"

    @property
    def serving_files(self):
        prefix = self.serving_dir + "/"
        return sorted(f for f in self.files if f.startswith(prefix))

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def pretrained(self):
        return self.keras_file in self.files

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self):
        data = dataclasses.asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data, source="entry"):
        if not isinstance(data, dict):
            raise ValueError(f"{source}: an entry must be a JSON object, got "
                             f"{type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"{source}: unknown entry fields: {', '.join(unknown)}")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING and f.name not in data)
        if missing:
            raise ValueError(f"{source}: missing entry fields: {', '.join(missing)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_json(cls, path):
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data, source=str(path))

    def summary(self):
        """A few human-readable lines (``keras-fer zoo describe``)."""
        shape = "x".join(str(v) for v in self.input_shape)
        lines = [f"{self.name}: {self.description or self.arch}",
                 f"  architecture: {self.arch} {json.dumps(self.arch_options, sort_keys=True)}",
                 f"  input: {shape} pixels in [0, 255], normalised inside the model with "
                 f"mean {list(self.mean)} and std {list(self.std)} (on the [0, 1] scale)",
                 f"  classes ({self.num_classes}): {', '.join(self.class_names)}",
                 f"  data: {self.dataset or 'n/a'}; protocol: {self.protocol or 'n/a'}"]
        if self.metrics:
            shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in self.metrics.items() if not isinstance(v, dict))
            lines.append(f"  metrics: {shown}")
        if self.recipe:
            lines.append(f"  recipe: {self.recipe}")
        if self.training_history:
            runs = self.training_history
            seen = sum(run.get("images_seen") or 0 for run in runs)
            lines.append(f"  training: {len(runs)} run(s), "
                         f"{sum(run.get('epochs') or 0 for run in runs)} epochs, "
                         f"{seen:,} images seen (training_history)")
        if self.files:
            total = sum(info["bytes"] for info in self.files.values())
            lines.append(f"  files: {len(self.files)} ({total / 1e6:.2f} MB), "
                         f"{'with' if self.pretrained else 'without'} weights")
            if self.weights_storage.get("dtype") == "float16":
                lines.append(f"  weights: {storage_note(self.weights_storage)}")
        else:
            lines.append("  files: none (architecture only: load(name, weights=False))")
        if self.url:
            lines.append(f"  url: {self.url}")
        lines.append(f"  licence: {self.licence}")
        return "\n".join(lines)


def storage_note(storage):
    """One sentence on a ``weights_storage`` record of float16 weights."""
    note = (f"stored as float16 ({storage['bytes'] / 1e6:.1f} MB instead of "
            f"{storage['float32_bytes'] / 1e6:.1f} MB), loaded as float32. The softmax outputs "
            f"differ from the float32 model's by at most {storage['max_softmax_diff']:.2g} on "
            f"the probe batch ({storage['probe']})")
    check = storage.get("data_check")
    if check:
        note += (f" and by at most {check['max_softmax_diff']:.2g} on {check['images']} "
                 f"images ({check['data']}), where {check['changed_top1']} top-1 "
                 f"prediction(s) changed")
        if "accuracy_float32" in check:
            note += (f" and the accuracy went from {100 * check['accuracy_float32']:.2f} % to "
                     f"{100 * check['accuracy_float16']:.2f} %")
    if storage.get("flushed_to_zero"):
        note += (f"; {storage['flushed_to_zero']} negligible weight(s), |w| <= "
                 f"{storage['largest_flushed']:.1g}, became 0")
    return note + "."
