"""One small reader per dataset format; each returns a ``FERDataset``."""

from keras_fer.datasets.readers.base import DatasetError, validate_image_file
from keras_fer.datasets.readers.ckplus import read_ckplus48
from keras_fer.datasets.readers.fer2013 import parse_fer2013_csv, read_fer2013
from keras_fer.datasets.readers.ferplus import process_votes, read_ferplus
from keras_fer.datasets.readers.image_folder import LABEL_MAP_PRESETS, read_image_folder
from keras_fer.datasets.readers.jaffe import read_jaffe
from keras_fer.datasets.readers.mnist import read_mnist

__all__ = ["DatasetError", "LABEL_MAP_PRESETS", "parse_fer2013_csv", "process_votes",
           "read_ckplus48", "read_fer2013", "read_ferplus", "read_image_folder", "read_jaffe",
           "read_mnist", "validate_image_file"]
