"""keras-fer: a TensorFlow/Keras 3 model zoo for facial expression recognition."""

import os as _os

# Keras 3 picks its backend at import time; the zoo's SavedModel export needs TensorFlow.
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0.dev0"

from keras_fer import labels  # noqa: E402
from keras_fer import layers  # noqa: E402
from keras_fer import losses  # noqa: E402
from keras_fer import optimizers  # noqa: E402
