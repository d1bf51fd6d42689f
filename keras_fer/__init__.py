"""keras-fer: a TensorFlow/Keras 3 model zoo for facial expression recognition."""

import importlib
import os as _os

# Keras 3 picks its backend at import time; the zoo's SavedModel export needs TensorFlow.
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Whether the user chose TensorFlow's log level (the command line quietens it further if not).
_TF_LOG_LEVEL_FROM_USER = "TF_CPP_MIN_LOG_LEVEL" in _os.environ
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0.dev0"

# Submodules load on first use, so `keras-fer --help` and `import keras_fer` do not pay for
# TensorFlow's start-up. Each submodule imports what it registers with Keras.
_SUBMODULES = ("datasets", "evaluation", "faces", "generators", "labels", "layers", "losses",
               "models", "optimizers", "predict", "recipes", "testing", "tflite", "training",
               "zoo")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_fer.{name}")
    raise AttributeError(f"module 'keras_fer' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
