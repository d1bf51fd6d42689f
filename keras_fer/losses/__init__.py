"""keras_fer.losses"""

from keras_fer.losses.pdls import FPDLS, PDLS  # noqa: E402
