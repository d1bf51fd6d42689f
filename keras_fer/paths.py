"""Where keras-fer keeps files on the user's machine.

``home()`` is ``$KERAS_FER_HOME`` or ``~/.keras_fer``, read on every call (tests and users can
point it elsewhere at any time). The zoo keeps its cache and entries there (``models/``,
``entries/``; ``keras_fer.zoo.store``), the app its converted TFLite models (``tflite/``;
``keras_fer.app.tflite.cache_dir``).
"""

import os
from pathlib import Path

DEFAULT_HOME = "~/.keras_fer"


def home():
    """``$KERAS_FER_HOME`` or ``~/.keras_fer``, read on every call."""
    return Path(os.path.expanduser(os.environ.get("KERAS_FER_HOME") or DEFAULT_HOME))
