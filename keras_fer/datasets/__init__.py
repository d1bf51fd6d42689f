"""Dataset readers, splits and input pipelines (keras_fer.datasets)."""
