"""The training engine (keras_fer.training): one loop for every strategy, resumable."""

from keras_fer.training.loop import Trainer
from keras_fer.training.strategy import is_chief, make_strategy, split_cpu
