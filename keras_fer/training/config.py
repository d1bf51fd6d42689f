"""``TrainConfig``: everything a training run needs, as data (JSON in, JSON out)."""

import dataclasses
import json
import numbers
import typing
from typing import Optional

OPTIMIZERS = ("sgd", "adam", "adamw")
#: ``init_mode``: the source model itself, or its weights copied by layer name into ``arch``.
INIT_MODES = ("model", "layers")
LOSSES = ("ce", "focal", "pdls", "fpdls")
SCHEDULES = ("constant", "step", "cosine", "plateau")
PROTOCOLS = ("official", "subject_kfold", "random")
PRECISIONS = (None, "mixed_float16", "mixed_bfloat16")


def field_type(field):
    """``(base type, optional)`` of a dataclass field annotated ``T`` or ``Optional[T]``."""
    tp = field.type
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else object), True
    return (tp if isinstance(tp, type) else object), False


def check_field_types(config):
    """Checks (and converts where lossless) every field against its annotation, so that a bad
    value (``epochs=2.5``, ``epochs="abc"``) is named here, before any data is read, rather
    than failing deep inside the training loop."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        tp, optional = field_type(field)
        if value is None:
            if not optional and field.default is not None:
                raise ValueError(f"{field.name} must be {tp.__name__}, got None")
            continue
        if tp is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
            value = float(value)  # learning_rate=1 means 1.0 (Keras refuses an int)
        elif tp is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
            value = int(value)  # NumPy integers from arithmetic in recipes
        elif tp is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif tp is tuple and isinstance(value, list):
            value = tuple(value)
        ok = tp is object or (isinstance(value, tp)
                              and not (isinstance(value, bool) and tp is not bool))
        if not ok:
            raise ValueError(f"{field.name} must be {'an integer' if tp is int else tp.__name__}"
                             f"{' or null' if optional else ''}, got {value!r}")
        setattr(config, field.name, value)


@dataclasses.dataclass
class TrainConfig:
    """One training run. Every recipe is a set of these; ``keras-fer train`` reads one as JSON.

    Data: ``dataset`` + ``data_root`` name a reader of ``keras_fer.datasets.load``;
    ``protocol`` picks the split: "official" (``train_split``/``val_split``, e.g. FER2013
    Training/PublicTest; with neither given, the dataset's own official split: FER2013 and
    FERPlus train on Training and validate on PublicTest, never on test rows), "subject_kfold" (fold ``fold`` of ``folds``, no subject on both
    sides) or "random" (the papers' leaky random split; opt-in). Recipes may instead pass
    datasets to ``train`` directly.

    ``bn_momentum`` overrides the momentum of every BatchNormalization layer. Keras' default
    (0.99) averages over ~100 steps: a run of a few hundred steps on a small set (JAFFE,
    CK+48) then evaluates with moving statistics that still remember the first, untrained
    steps, so inference accuracy can sit far below training accuracy. 0.9 (PyTorch's
    default) follows the weights within ~10 steps.

    ``init`` starts from trained weights instead of a random initialisation, then trains with
    this config's own schedule (a warm restart): ``"zoo:NAME"`` (a zoo entry: bundled, cached
    or downloaded), a ``.keras`` file, or the ``out_dir`` of an earlier run. The model's
    architecture then comes from that source (``arch``/``arch_options`` are ignored); a
    different class count gets a new head. The run's ``training_history.json`` continues the
    source's history (``keras_fer.training.warm_start``). ``init_mode="layers"`` instead builds
    ``arch``/``arch_options`` and copies the source's weights into every layer of the same
    name whose weight shapes match: a trained backbone into a variant of it (attention modules
    inserted, a stem without max-pool); the layers left at their initialisation are listed in
    the log and the history.

    ``ema_momentum`` keeps an exponential moving average of the weights (Keras' optimizer
    ``use_ema``; 0.999 averages over ~1000 steps): validation, the best-model file and the
    final model use the averaged weights.
    """

    # model
    arch: str = "mini_xception"
    arch_options: dict = dataclasses.field(default_factory=dict)
    input_shape: Optional[tuple] = None
    init: Optional[str] = None
    init_mode: str = "model"
    # data
    dataset: Optional[str] = None
    data_root: Optional[str] = None
    data_options: dict = dataclasses.field(default_factory=dict)
    train_split: Optional[str] = None
    val_split: Optional[str] = None
    protocol: str = "official"
    folds: int = 5
    fold: int = 0
    label_mode: str = "onehot"
    augment: Optional[str] = "basic"
    mixup: Optional[float] = None
    cutmix: Optional[float] = None
    balance_per_class: Optional[int] = None
    batch_size: int = 64
    epochs: int = 10
    # optimisation
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    sam_rho: Optional[float] = None
    loss: str = "ce"
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    pdls_alpha: float = 0.9
    schedule: str = "constant"
    step_epochs: int = 10
    step_factor: float = 0.1
    plateau_factor: float = 0.3
    plateau_patience: int = 5
    early_stopping_patience: Optional[int] = None
    mixed_precision: Optional[str] = None
    bn_momentum: Optional[float] = None
    ema_momentum: Optional[float] = None
    # infrastructure
    strategy: str = "default"
    cpus: Optional[int] = None
    out_dir: str = "runs/experiment"
    checkpoint_every: Optional[int] = None
    seed: int = 0
    tensorboard: bool = True
    # TensorBoard extras (docs/training.md): train-side scalars every N steps (None: off), the
    # model graph, weight histograms every N epochs (None: off), a profiler window of global
    # steps (start, stop), 1-based and inclusive (None: off).
    tensorboard_step_every: Optional[int] = 100
    tensorboard_graph: bool = True
    tensorboard_histogram_every: Optional[int] = None
    profile_batches: Optional[tuple] = None
    verbose: int = 1

    def __post_init__(self):
        self.validate()

    def validate(self):
        check_field_types(self)

        def choice(field, allowed):
            value = getattr(self, field)
            if value not in allowed:
                raise ValueError(f"{field} must be one of {allowed}, got {value!r}")

        def positive(field, strict=True):
            value = getattr(self, field)
            if value is not None and (value <= 0 if strict else value < 0):
                raise ValueError(f"{field} must be {'> 0' if strict else '>= 0'}, got {value}")

        choice("optimizer", OPTIMIZERS)
        choice("init_mode", INIT_MODES)
        choice("loss", LOSSES)
        choice("schedule", SCHEDULES)
        choice("protocol", PROTOCOLS)
        choice("mixed_precision", PRECISIONS)
        choice("label_mode", ("onehot", "distribution"))
        for field in ("batch_size", "epochs", "learning_rate", "step_epochs", "folds",
                      "sam_rho", "checkpoint_every", "balance_per_class", "cpus",
                      "early_stopping_patience", "plateau_patience",
                      "tensorboard_step_every", "tensorboard_histogram_every"):
            positive(field)
        if self.profile_batches is not None:
            window = tuple(self.profile_batches)
            if (len(window) != 2 or any(isinstance(v, bool) or not isinstance(v, int)
                                        for v in window) or not 1 <= window[0] <= window[1]):
                raise ValueError(f"profile_batches must be (start, stop) with 1 <= start <= "
                                 f"stop (global training steps, inclusive), got "
                                 f"{self.profile_batches!r}")
            self.profile_batches = window
        for field in ("weight_decay", "label_smoothing", "momentum"):
            positive(field, strict=False)
        if self.bn_momentum is not None and not 0.0 <= self.bn_momentum < 1.0:
            raise ValueError(f"bn_momentum must be in [0, 1), got {self.bn_momentum}")
        if self.ema_momentum is not None and not 0.0 < self.ema_momentum < 1.0:
            raise ValueError(f"ema_momentum must be in (0, 1), got {self.ema_momentum}")
        if self.init is not None:
            from keras_fer.training.warm_start import check_init

            check_init(self.init)
        elif self.init_mode != "model":
            raise ValueError(f"init_mode={self.init_mode!r} needs an init (the weights' source)")
        if not 0 <= self.fold < self.folds:
            raise ValueError(f"fold must be in [0, folds={self.folds}), got {self.fold}")
        if not 0 < self.step_factor < 1 or not 0 < self.plateau_factor < 1:
            raise ValueError("step_factor and plateau_factor must be in (0, 1)")
        if self.input_shape is not None:
            self.input_shape = tuple(self.input_shape)
        if self.label_smoothing and self.loss != "ce":
            raise ValueError("label_smoothing applies to loss='ce' only "
                             "(PDLS/F-PDLS smooth with the label distribution)")

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self, path=None):
        text = json.dumps(self.to_dict(), indent=2)
        if path:
            with open(path, "w") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            import difflib

            hints = [f"{u} (did you mean {close[0]}?)" if close else u
                     for u in unknown for close in [difflib.get_close_matches(u, known, 1)]]
            raise ValueError(f"unknown TrainConfig fields: {', '.join(hints)}")
        return cls(**values)

    @classmethod
    def from_json(cls, path):
        with open(path) as f:
            try:
                values = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(values)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)
