"""``FERClassifier``: image -> normalisation -> backbone -> pooling -> dropout -> logits.

A functional model subclass in the keras-hub ``ImageClassifier`` manner: the backbone is any
Keras model (ours, keras-hub's or keras.applications'), and everything a user needs to feed
the model correctly (input size, channels, mean/std, class names, architecture) is part of its
config, so it survives `.keras` and SavedModel round trips and the zoo can read it back.
"""

import keras

from keras_fer.labels import class_names as canonical_class_names


@keras.saving.register_keras_serializable(package="keras_fer")
class FERClassifier(keras.Model):
    """Classifier head over ``backbone``.

    Inputs are images with pixel values in [0, 255] (grey or RGB as ``input_shape`` says);
    the model scales them to [0, 1] and normalises with ``mean``/``std`` (per channel), so
    callers never repeat the preprocessing. Outputs are logits.

    ``pooling``: "avg" (global average over a (B, h, w, C) feature map), "cls" (token 0 of a
    (B, N, D) sequence), "token_avg" (mean over tokens), or None when the backbone already
    returns a (B, D) vector.
    """

    def __init__(self, backbone, num_classes, input_shape=None, mean=(0.5,), std=(0.5,),
                 pooling="avg", dropout=0.0, class_names=None, arch=None, arch_options=None,
                 **kwargs):
        if pooling not in ("avg", "cls", "token_avg", None):
            raise ValueError(f"pooling must be 'avg', 'cls', 'token_avg' or None, got {pooling!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        input_shape = tuple(input_shape or backbone.input_shape[1:])
        channels = input_shape[-1]
        mean, std = _per_channel(mean, channels, "mean"), _per_channel(std, channels, "std")
        if class_names is None:
            class_names = (canonical_class_names(num_classes) if num_classes in (7, 8)
                           else [str(i) for i in range(num_classes)])
        if len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")

        inputs = keras.Input(input_shape, name="images")
        # Normalization(mean*255, var=(std*255)^2) == ((x / 255) - mean) / std.
        x = keras.layers.Normalization(
            mean=[m * 255.0 for m in mean], variance=[(s * 255.0) ** 2 for s in std],
            name="normalize")(inputs)
        x = backbone(x)
        backbone_output = x
        if pooling == "avg":
            x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        elif pooling == "cls":
            x = ClsToken(name="cls_token")(x)
        elif pooling == "token_avg":
            x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        outputs = keras.layers.Dense(num_classes, name="predictions")(x)
        super().__init__(inputs, outputs, **kwargs)
        # Symbolic tensors of this graph, for Grad-CAM and feature extraction.
        self._taps = {"backbone": backbone_output, "logits": outputs}

        self.backbone = backbone
        self.num_classes = num_classes
        self.image_shape = input_shape
        self.mean, self.std = mean, std
        self.pooling, self.dropout = pooling, dropout
        self.class_names = list(class_names)
        self.arch, self.arch_options = arch, dict(arch_options or {})

    def call(self, inputs, training=None, mask=None, **kwargs):
        # A batch of 0 images: TensorFlow's CPU convolutions return their input unchanged on
        # an empty batch (no error, wrong shape), so the next layer failed with a confusing
        # shape error. When the batch size is known to be 0 (eager calls, or graphs traced
        # with that shape) the answer is an empty (0, classes) batch of logits. A graph with a
        # dynamic batch size cannot branch here cheaply; the serving signatures do their own.
        shape = getattr(inputs, "shape", None)
        if shape is not None and len(shape) > 0 and shape[0] == 0:
            return keras.ops.zeros((0, self.num_classes), dtype=self.outputs[0].dtype)
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def feature_model(self):
        """A model from the same input to (backbone output, logits), sharing weights."""
        return keras.Model(self.inputs, [self._taps["backbone"], self._taps["logits"]])

    @property
    def preprocessing(self):
        """What a data pipeline must know to feed this model, as plain data."""
        return {"input_shape": list(self.image_shape), "scale": 255.0,
                "mean": list(self.mean), "std": list(self.std),
                "normalization": "inside the model: feed pixel values in [0, 255]"}

    def get_config(self):
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "input_shape": list(self.image_shape),
            "mean": list(self.mean),
            "std": list(self.std),
            "pooling": self.pooling,
            "dropout": self.dropout,
            "class_names": self.class_names,
            "arch": self.arch,
            "arch_options": self.arch_options,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_fer")
class ClsToken(keras.layers.Layer):
    """Token 0 of a (batch, tokens, dim) sequence (a layer, so no Lambda needs unpickling)."""

    def call(self, x):
        return x[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def _per_channel(values, channels, name):
    values = tuple(float(v) for v in (values if hasattr(values, "__len__") else [values]))
    if len(values) == channels:
        return values
    if len(values) == 1:
        return values * channels
    if len(values) == 3 and channels == 1:
        # A grey model fed with an RGB-trained statistic: the luminance-neutral average.
        return (sum(values) / 3.0,)
    raise ValueError(f"{name} has {len(values)} values for {channels} input channels")
