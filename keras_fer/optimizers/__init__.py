"""keras_fer.optimizers"""

from keras_fer.optimizers.sam import SAMModel, sam_perturbation  # noqa: E402
