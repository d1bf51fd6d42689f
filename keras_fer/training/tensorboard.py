"""TensorBoard for FER: scalars, per-class accuracy, confusion matrix, predictions, projector."""

import os

import numpy as np

import keras

from keras_fer.evaluation import plots
from keras_fer.evaluation.metrics import classification_metrics
from keras_fer.evaluation.report import predict_with_features
from keras_fer.training.strategy import is_chief


class FERTensorBoard(keras.callbacks.Callback):
    """Writes, every epoch: the logs as scalars (losses, accuracies, learning rate), per-class
    validation accuracy, the confusion matrix and a grid of sample predictions as images; at
    the end, the penultimate features of up to ``embedding_samples`` validation images for the
    embedding projector (with labels and predictions as metadata).

    ``model`` is the classifier itself (inside a SAM wrapper the callback's own ``self.model``
    is the wrapper).
    """

    def __init__(self, log_dir, model, val_data, class_names, sample_images=16,
                 embedding_samples=500):
        super().__init__()
        import tensorflow as tf

        self.log_dir = log_dir
        self.classifier = model
        self.val_data = val_data
        self.class_names = list(class_names)
        self.sample_images = sample_images
        self.embedding_samples = embedding_samples
        self._writer = None
        self._tf = tf

    def _chief(self):
        return is_chief(self.classifier.distribute_strategy)

    def _get_writer(self):
        if self._writer is None:
            self._writer = self._tf.summary.create_file_writer(os.path.join(self.log_dir, "val"))
        return self._writer

    def on_epoch_end(self, epoch, logs=None):
        if not self._chief():
            return
        tf = self._tf
        logits, _, labels, images = predict_with_features(self.classifier, self.val_data)
        pred = np.argmax(logits, -1)
        metrics = classification_metrics(labels, pred, self.class_names)
        with self._get_writer().as_default(step=epoch + 1):
            for key, value in (logs or {}).items():
                tf.summary.scalar(f"epoch/{key}", value)
            for name, c in metrics["per_class"].items():
                tf.summary.scalar(f"class_accuracy/{name}", c["recall"])
            tf.summary.scalar("epoch/val_weighted_f1", metrics["weighted"]["f1"])
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
        logits, feats, labels, _ = predict_with_features(self.classifier, self.val_data)
        if feats is not None:
            write_projector(os.path.join(self.log_dir, "projector"),
                            feats[: self.embedding_samples], labels[: self.embedding_samples],
                            np.argmax(logits, -1)[: self.embedding_samples], self.class_names)
        if self._writer is not None:
            self._writer.close()


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
