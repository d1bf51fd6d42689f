"""Dataset readers, splits and input pipelines (keras_fer.datasets).

``load(name, root, split=None, **options)`` reads any registered dataset into a
``FERDataset`` (records in the canonical label order of ``keras_fer.labels``);
``keras_fer.datasets.splits`` makes official, subject-independent and random splits;
``keras_fer.datasets.stats`` tabulates and plots class counts. Readers, splits and stats
use NumPy and Pillow only; ``FERDataset.to_tf_dataset`` builds the ``tf.data`` pipeline.
"""

from keras_fer.datasets.image_io import ImageReadError, read_image
from keras_fer.datasets.readers import DatasetError
from keras_fer.datasets.records import FERDataset, Record
from keras_fer.datasets.registry import list_datasets, load, register_dataset
from keras_fer.datasets import splits  # noqa: E402
from keras_fer.datasets import stats  # noqa: E402
from keras_fer.datasets.pipeline import make_dataset  # noqa: E402
from keras_fer.datasets.balance import balance, merge  # noqa: E402
