"""TensorBoard for FER: step and epoch scalars, per-class recall / precision / F1, confusion
matrix, predictions, hparams, model graph, weight histograms, profiler window, projector."""

import os

import numpy as np

import keras

from keras_fer.evaluation import plots
from keras_fer.evaluation.metrics import classification_metrics
from keras_fer.evaluation.report import predict_with_features
from keras_fer.training.strategy import is_chief


class FERTensorBoard(keras.callbacks.Callback):
    """Writes under ``log_dir``:

    - ``val/``, every epoch: the logs as scalars (``epoch/<key>``: losses, accuracies,
      learning rate), per-class validation recall (``class_accuracy/<class>``), precision
      (``class_precision/<class>``) and F1 (``class_f1/<class>``), ``epoch/val_weighted_f1``
      and ``epoch/val_mean_class_accuracy``, the confusion matrix and a grid of sample
      predictions as images (everything from the validation set: nothing but the epoch
      scalars without one);
    - ``train/``: every ``step_every`` steps (None: never) the running means of the epoch so
      far (``step/loss``, ``step/accuracy``, ... at the global step), the model graph at the
      start (``graph=True``), weight histograms (``weights/<variable path>``) every
      ``histogram_every`` epochs (None: never), and a profiler trace of global steps
      ``profile_batches=(start, stop)`` (1-based, inclusive; ``train/plugins/profile/``);
    - ``hparams/``: the run's ``hparams`` (``tensorboard.plugins.hparams``: the config,
      flattened) at the start and its final metrics (``final/<key>``: the last epoch's logs,
      ``final/val_weighted_f1``, ``final/val_mean_class_accuracy``) at the end, so that
      ``tensorboard --logdir runs/`` compares runs in one HParams table;
    - ``projector/``, at the end: the penultimate features of up to ``embedding_samples``
      validation images for the embedding projector (labels and predictions as metadata).

    ``model`` is the classifier itself (inside a SAM wrapper the callback's own ``self.model``
    is the wrapper). ``hparams``: a dict (a ``TrainConfig.to_dict()``), or None for none.
    Only the chief writes.
    """

    def __init__(self, log_dir, model, val_data, class_names, sample_images=16,
                 embedding_samples=500, step_every=None, graph=False, histogram_every=None,
                 profile_batches=None, hparams=None):
        super().__init__()
        import tensorflow as tf

        for name, value in (("step_every", step_every), ("histogram_every", histogram_every)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or None, got {value!r}")
        self.log_dir = log_dir
        self.classifier = model
        self.val_data = val_data
        self.class_names = list(class_names)
        self.sample_images = sample_images
        self.embedding_samples = embedding_samples
        self.step_every = step_every
        self.graph = graph
        self.histogram_every = histogram_every
        self.profile_batches = check_profile_batches(profile_batches)
        self.hparams = hparams
        self._writer = None
        self._writers = {}
        self._tf = tf
        self._epoch = 0
        self._profiling = False
        self._final = {}

    def _chief(self):
        return is_chief(self.classifier.distribute_strategy)

    def _get_writer(self, name="val"):
        if name not in self._writers:
            self._writers[name] = self._tf.summary.create_file_writer(
                os.path.join(self.log_dir, name))
        if name == "val":
            self._writer = self._writers[name]
        return self._writers[name]

    def _global_step(self, batch):
        steps = (self.params or {}).get("steps") or 0
        return self._epoch * steps + batch + 1

    def on_train_begin(self, logs=None):
        if not self._chief():
            return
        tf = self._tf
        if self.hparams is not None:
            from tensorboard.plugins.hparams import api as hp

            with self._get_writer("hparams").as_default():
                hp.hparams(flat_hparams(self.hparams),
                           trial_id=str(self.hparams.get("out_dir") or self.log_dir))
            self._get_writer("hparams").flush()
        if self.graph:
            shape = [None, *self.classifier.input_shape[1:]]
            fn = tf.function(lambda x: self.classifier(x, training=False))
            graph = fn.get_concrete_function(tf.TensorSpec(shape, tf.float32)).graph
            with self._get_writer("train").as_default():
                tf.summary.graph(graph)
            self._get_writer("train").flush()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.profile_batches and not self._profiling and self._chief() \
                and self._global_step(batch) == self.profile_batches[0]:
            self._tf.profiler.experimental.start(os.path.join(self.log_dir, "train"))
            self._profiling = True

    def on_train_batch_end(self, batch, logs=None):
        if not self._chief():
            return
        step = self._global_step(batch)
        if self._profiling and step >= self.profile_batches[1]:
            self._stop_profiler()
        if self.step_every and step % self.step_every == 0 and logs:
            with self._get_writer("train").as_default(step=step):
                for key, value in logs.items():
                    self._tf.summary.scalar(f"step/{key}", value)

    def _stop_profiler(self):
        self._tf.profiler.experimental.stop()
        self._profiling = False

    def on_epoch_end(self, epoch, logs=None):
        if not self._chief():
            return
        tf = self._tf
        if self.histogram_every and (epoch + 1) % self.histogram_every == 0:
            with self._get_writer("train").as_default(step=epoch + 1):
                for variable in self.classifier.weights:
                    tf.summary.histogram(f"weights/{variable.path}", variable)
            self._get_writer("train").flush()
        if "train" in self._writers:
            self._writers["train"].flush()
        self._final = _numbers(logs)
        if self.val_data is None:
            with self._get_writer().as_default(step=epoch + 1):
                for key, value in (logs or {}).items():
                    tf.summary.scalar(f"epoch/{key}", value)
            self._get_writer().flush()
            return
        logits, _, labels, images = predict_with_features(self.classifier, self.val_data)
        pred = np.argmax(logits, -1)
        metrics = classification_metrics(labels, pred, self.class_names)
        # Mean class accuracy: the macro recall over the classes present.
        mean_class_accuracy = metrics["macro"]["recall"]
        self._final["val_weighted_f1"] = float(metrics["weighted"]["f1"])
        self._final["val_mean_class_accuracy"] = float(mean_class_accuracy)
        with self._get_writer().as_default(step=epoch + 1):
            for key, value in (logs or {}).items():
                tf.summary.scalar(f"epoch/{key}", value)
            for name, c in metrics["per_class"].items():
                tf.summary.scalar(f"class_accuracy/{name}", c["recall"])
                tf.summary.scalar(f"class_precision/{name}", c["precision"])
                tf.summary.scalar(f"class_f1/{name}", c["f1"])
            tf.summary.scalar("epoch/val_weighted_f1", metrics["weighted"]["f1"])
            tf.summary.scalar("epoch/val_mean_class_accuracy", mean_class_accuracy)
            cm_png = plots.figure_to_png(plots.confusion_matrix_figure(
                metrics["confusion_matrix"], self.class_names,
                title=f"epoch {epoch + 1}: accuracy {metrics['accuracy']:.3f}"))
            tf.summary.image("confusion_matrix", _png_batch(cm_png), step=epoch + 1)
            n = min(self.sample_images, len(images))
            titles = [f"{self.class_names[t]}>{self.class_names[p]}"
                      for t, p in zip(labels[:n], pred[:n])]
            grid = plots.figure_to_png(plots.image_grid(np.clip(images[:n], 0, 255) / 255.0,
                                                        titles))
            tf.summary.image("sample_predictions", _png_batch(grid), step=epoch + 1)
        self._get_writer().flush()

    def on_train_end(self, logs=None):
        if not self._chief():
            return
        if self._profiling:  # the window ran past the end of training
            self._stop_profiler()
        # A run resumed after its last epoch trains nothing: its logs are the last epoch's.
        final = self._final or _numbers(logs)
        if self.hparams is not None and final:
            epochs = int((logs or {}).get("epoch") or self._epoch + 1)
            with self._get_writer("hparams").as_default(step=epochs):
                for key, value in final.items():
                    self._tf.summary.scalar(f"final/{key}", value)
        if self.val_data is not None:
            logits, feats, labels, _ = predict_with_features(self.classifier, self.val_data)
            if feats is not None:
                write_projector(os.path.join(self.log_dir, "projector"),
                                feats[: self.embedding_samples],
                                labels[: self.embedding_samples],
                                np.argmax(logits, -1)[: self.embedding_samples],
                                self.class_names)
        for writer in self._writers.values():
            writer.close()
        self._writers, self._writer = {}, None


def _numbers(logs):
    return {k: float(v) for k, v in (logs or {}).items()
            if k != "epoch" and isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}


def check_profile_batches(value):
    """``(start, stop)`` global training steps (1-based, inclusive) as a tuple, or None."""
    if value is None:
        return None
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
            or not 1 <= value[0] <= value[1]):
        raise ValueError(f"profile_batches must be (start, stop) with 1 <= start <= stop "
                         f"(global training steps, inclusive), got {value!r}")
    return tuple(value)


def flat_hparams(values, prefix=""):
    """A config dict as hparams: nested dicts flattened to ``a.b`` keys; bool, int, float and
    str kept, None as "None", anything else (tuples, lists) as its JSON text."""
    import json

    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif value is None:
            flat[name] = "None"
        else:
            flat[name] = json.dumps(value, default=str)
    return flat


def _png_batch(png_bytes):
    import tensorflow as tf

    return tf.image.decode_png(png_bytes, channels=4)[None]


def write_projector(log_dir, features, labels, preds, class_names):
    """Embedding-projector files: a checkpoint holding the features, metadata.tsv, config."""
    import tensorflow as tf
    from tensorboard.plugins import projector

    os.makedirs(log_dir, exist_ok=True)
    with open(os.path.join(log_dir, "metadata.tsv"), "w") as f:
        f.write("label\tprediction\n")
        for t, p in zip(labels, preds):
            f.write(f"{class_names[t]}\t{class_names[p]}\n")
    embedding = tf.Variable(np.asarray(features, np.float32), name="features")
    tf.train.Checkpoint(embedding=embedding).save(os.path.join(log_dir, "embedding.ckpt"))
    config = projector.ProjectorConfig()
    emb = config.embeddings.add()
    emb.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
    emb.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(log_dir, config)
