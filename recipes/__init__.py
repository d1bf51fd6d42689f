"""The papers' experiments as one command each: ``python -m recipes.<name> --help``.

``vit_vs_cnn`` (seed 001), ``hfc_attention`` (seed 002), ``vit_sam_avfer`` (seed 003),
``neural_resizer`` (seed 004). Every recipe trains through ``keras_fer.training.train``
(resumable: re-run the same command to continue), has ``--smoke`` (tiny data it writes
itself in the real formats, one epoch, tiny models), CPU-sized defaults and ``--paper`` for
the papers' own settings (224x224 inputs, the papers' optimisers and epochs: a GPU job).
``recipes._common`` holds what they share (the generator recipes, ``generator_mnist``,
``generator_faces`` and ``synthetic_augmentation``, use it too). See ``docs/recipes.md``.
"""
