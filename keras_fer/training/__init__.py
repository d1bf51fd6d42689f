"""The training engine (keras_fer.training): one loop for every strategy, resumable."""

from keras_fer.training.config import TrainConfig
from keras_fer.training.engine import TrainResult, load_splits, train
from keras_fer.training.loop import Trainer
from keras_fer.training.strategy import is_chief, make_strategy, split_cpu
