"""Batch Transformer emotion generators (paper 000): re-render a face with another expression.

- :func:`create_generator` (``kind="simple"``: Figure 1; ``"patchy"``: Figure 2) builds a
  functional encoder-decoder from the BPC/CPE attention layers and learnable ReLUs of
  ``keras_fer.layers``, conditioned on one-hot metadata (emotion; optionally subject, ...).
- :func:`train_generator` trains it to reconstruct every image under its own label;
  :func:`generate` re-renders images under other labels.
- :func:`mutation_table` draws the paper's figure (every input under every condition) as a
  PNG; :class:`MutationTableCallback` writes it to TensorBoard during training.
"""

from keras_fer.generators.common import (
    ImageDestandardization,
    ImageStandardization,
    condition_groups,
    parse_condition_groups,
    uses_batch_axis,
)
from keras_fer.generators.generate import create_generator, encode_conditions, generate
from keras_fer.generators.mutation import (
    MutationTableCallback,
    grid_size,
    mutation_grid,
    mutation_table,
    png_bytes,
)
from keras_fer.generators.patchy import build_patchy_generator
from keras_fer.generators.simple import build_simple_generator
from keras_fer.generators.train import dataset_arrays, train_generator
