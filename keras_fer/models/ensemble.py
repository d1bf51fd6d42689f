"""``EnsembleClassifier``: test-time augmentation and ensembles as one Keras model.

    from keras_fer.models import EnsembleClassifier
    tta = EnsembleClassifier([model], flip=True)          # horizontal-flip TTA of one model
    ens = EnsembleClassifier([resnet, mini_xception], flip=True)

Each member (a trained ``FERClassifier``) runs on the batch and, with ``flip``, on its
horizontal mirror too: image and mirror go through a member as ONE batch of 2N (faster on a
CPU than two calls). The softmax probabilities are averaged over members and views, and the
model returns ``log(mean probability)``: logits like every keras-fer model's (their softmax is
the averaged probabilities, their argmax the averaged prediction), computed as a log-sum-exp
of log-softmaxes so that no probability underflows to ``log(0)``.

Because TTA and the ensemble are the model itself, everything downstream computes exactly
what was measured: ``.keras`` files, ``zoo.publish`` / ``zoo.load``, the TF Serving export
(``keras_fer.zoo.serving``), the TFLite copy and the app (``keras_fer.app``). Inputs are
[0, 255] pixels as for every keras-fer model (each member normalises inside).

An ensemble is for inference: ``fit``, ``train_step``, ``keras_fer.training.train`` and
``zoo.with_new_head`` refuse it (fine-tune a member, then build the ensemble again), and it has
no single feature map for Grad-CAM (``feature_model`` raises; run Grad-CAM on a member).
"""

import math

import keras

from keras_fer.models.classifier import FERClassifier

#: The ``arch`` of every ensemble (zoo entries, model cards).
ARCH = "ensemble"
INFERENCE_ONLY = ("an ensemble is for inference; fine-tune a member (model.members[i]) and "
                  "build the ensemble again")


def is_ensemble(model):
    """True for an ``EnsembleClassifier`` (or anything that says it is one)."""
    return getattr(model, "arch", None) == ARCH


def refuse_ensemble(model, action):
    """Raises ``ValueError`` ("<action>: an ensemble is for inference; ...") if ``model`` is an
    ensemble: training and new heads are a member's business."""
    if is_ensemble(model):
        raise ValueError(f"{action}: {INFERENCE_ONLY}")


@keras.saving.register_keras_serializable(package="keras_fer")
class HorizontalFlipViews(keras.layers.Layer):
    """``(N, H, W, C)`` images -> ``(2N, H, W, C)``: the images, then their mirrors."""

    def call(self, images):
        return keras.ops.concatenate([images, keras.ops.flip(images, axis=2)], axis=0)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        return (None if batch is None else 2 * batch,) + tuple(input_shape[1:])


@keras.saving.register_keras_serializable(package="keras_fer")
class MeanProbabilityLogits(keras.layers.Layer):
    """A list of members' logits, each ``(views * N, C)`` with the views stacked along the
    batch (view 0's N rows, then view 1's...) -> ``(N, C)`` log of the mean softmax
    probability over members and views. Float32 whatever the dtype policy."""

    def __init__(self, views=1, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if isinstance(views, bool) or not isinstance(views, int) or views < 1:
            raise ValueError(f"views must be an integer >= 1, got {views!r}")
        self.views = views

    def call(self, logits):
        ops = keras.ops
        logits = list(logits)
        classes = logits[0].shape[-1]
        log_probs = ops.stack([ops.log_softmax(ops.cast(z, "float32"), axis=-1)
                               for z in logits])  # (M, V*N, C)
        # (M, V*N, C) -> (M*V, N, C): row v*N + n of member m is view (m, v) of image n.
        log_probs = ops.reshape(log_probs, (len(logits) * self.views, -1, classes))
        peak = ops.max(log_probs, axis=0)  # log-sum-exp, written out (finite: log p <= 0)
        total = ops.sum(ops.exp(log_probs - peak[None]), axis=0)
        return peak + ops.log(total) - math.log(len(logits) * self.views)

    def compute_output_shape(self, input_shape):
        first = input_shape[0]
        batch = first[0] if self.views == 1 else None
        return (batch, first[-1])

    def get_config(self):
        return {**super().get_config(), "views": self.views}


@keras.saving.register_keras_serializable(package="keras_fer")
class EnsembleClassifier(keras.Model):
    """The mean softmax of ``members`` (``FERClassifier`` models) over the image and, with
    ``flip``, its horizontal mirror; returns ``log(mean probability)`` (see the module
    docstring). One member with ``flip=True`` is flip test-time augmentation.

    Members must take the same input shape and have the same class names, in the same order
    (``ValueError`` naming the member otherwise). A member whose name another member already
    has is renamed ``<name>_<index>`` (layer names must be unique inside a model).

    Carries what the zoo and the app read from a ``FERClassifier``: ``class_names``,
    ``image_shape``, ``num_classes``, ``arch`` (``"ensemble"``), ``arch_options`` (``flip`` and
    each member's arch, options and normalisation), ``mean``/``std`` (the members' when they
    agree; otherwise 0 and 1: this model does not normalise, each member does its own).
    """

    def __init__(self, members, flip=False, **kwargs):
        members = _checked_members(members)
        if not isinstance(flip, bool):
            raise ValueError(f"flip must be True or False, got {flip!r}")
        first = members[0]
        shape = tuple(int(v) for v in first.input_shape[1:])
        inputs = keras.Input(shape, name="images")
        views = HorizontalFlipViews(name="flip_views")(inputs) if flip else inputs
        outputs = MeanProbabilityLogits(views=2 if flip else 1, name="mean_probability")(
            [member(views) for member in members])
        kwargs.setdefault("name", "ensemble")
        super().__init__(inputs, outputs, **kwargs)
        self.members = members
        self.flip = flip
        self.image_shape = shape
        self.num_classes = int(first.output_shape[-1])
        self.class_names = list(first.class_names)
        self.arch = ARCH
        from keras_fer.layers.onednn_safe import make_onednn_safe

        make_onednn_safe(self)  # members from keras.saving.load_model hold stock convolutions

    def call(self, inputs, training=None, mask=None, **kwargs):
        # Inference only (batch norm in inference mode whatever ``training`` says). A batch
        # known to be empty is answered without running the members (see FERClassifier.call).
        shape = getattr(inputs, "shape", None)
        if shape is not None and len(shape) > 0 and shape[0] == 0:
            return keras.ops.zeros((0, self.num_classes), dtype="float32")
        return super().call(inputs, training=False, mask=mask, **kwargs)

    @property
    def arch_options(self):
        """JSON-ready description: ``{"flip": ..., "members": [{"name", "arch",
        "arch_options", "mean", "std"}, ...]}``."""
        return {"flip": self.flip,
                "members": [{"name": m.name, "arch": m.arch, "arch_options": m.arch_options,
                             "mean": list(m.mean), "std": list(m.std)} for m in self.members]}

    @property
    def mean(self):
        return self._shared_normalization("mean", 0.0)

    @property
    def std(self):
        return self._shared_normalization("std", 1.0)

    def _shared_normalization(self, field, neutral):
        values = {tuple(getattr(m, field)) for m in self.members}
        return values.pop() if len(values) == 1 else (neutral,) * self.image_shape[-1]

    @property
    def preprocessing(self):
        """What a data pipeline must know to feed this model, as plain data."""
        return {"input_shape": list(self.image_shape), "scale": 255.0,
                "normalization": "inside each member: feed pixel values in [0, 255]",
                "members": [m.preprocessing for m in self.members]}

    def feature_model(self):
        raise ValueError("an ensemble has no single feature map (each member has its own); "
                         "run Grad-CAM or feature extraction on a member: model.members[i]")

    def fit(self, *args, **kwargs):
        raise ValueError(f"fit: {INFERENCE_ONLY}")

    def train_step(self, *args, **kwargs):
        raise ValueError(f"train_step: {INFERENCE_ONLY}")

    def train_on_batch(self, *args, **kwargs):
        raise ValueError(f"train_on_batch: {INFERENCE_ONLY}")

    def get_config(self):
        return {"members": [keras.saving.serialize_keras_object(m) for m in self.members],
                "flip": self.flip, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["members"] = [keras.saving.deserialize_keras_object(m)
                             for m in config["members"]]
        return cls(**config)


def flip_tta(model):
    """``model`` with horizontal-flip test-time augmentation: ``EnsembleClassifier([model],
    flip=True)``."""
    return EnsembleClassifier([model], flip=True)


def _checked_members(members):
    if isinstance(members, keras.Model):
        members = [members]
    members = list(members)
    if not members:
        raise ValueError("an ensemble needs at least one member")
    first = None
    for i, member in enumerate(members):
        who = f"members[{i}] ({getattr(member, 'name', type(member).__name__)!r})"
        if is_ensemble(member):
            raise ValueError(f"{who} is itself an ensemble: pass its members (.members) "
                             f"instead")
        if not isinstance(member, FERClassifier):
            raise ValueError(f"{who} must be a keras-fer FERClassifier (create_model, "
                             f"keras_fer.models.load_model or zoo.load), got "
                             f"{type(member).__name__}")
        if any(member is other for other in members[:i]):
            raise ValueError(f"{who} is the same model object as an earlier member")
        if first is None:
            first = member
            continue
        shape, first_shape = tuple(member.input_shape[1:]), tuple(first.input_shape[1:])
        if shape != first_shape:
            raise ValueError(f"{who} takes input {shape}, but members[0] ({first.name!r}) "
                             f"takes {first_shape}: members must share the input shape")
        if list(member.class_names) != list(first.class_names):
            raise ValueError(f"{who} has {len(member.class_names)} classes "
                             f"{list(member.class_names)}, but members[0] ({first.name!r}) has "
                             f"{len(first.class_names)} {list(first.class_names)}: members "
                             f"must have the same class names in the same order")
    taken = set()
    for i, member in enumerate(members):
        while member.name in taken:
            member.name = f"{member.name}_{i}"
        taken.add(member.name)
    return members
