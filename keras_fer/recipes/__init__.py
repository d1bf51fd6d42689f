"""The papers' experiments and the zoo's trainings as one command each:
``keras-fer train <recipe> --help`` (or ``python -m keras_fer.recipes.<recipe>``).

``vit_vs_cnn`` (seed 001), ``hfc_attention`` (seed 002), ``vit_sam_avfer`` (seed 003),
``neural_resizer`` (seed 004), the Batch Transformer generator's ``generator_mnist``,
``generator_faces`` and ``synthetic_augmentation``, and ``zoo_checkpoints`` (the zoo's
published models). Every recipe trains through ``keras_fer.training.train`` (resumable:
re-run the same command to continue), has ``--smoke`` (tiny data it writes itself in the real
formats, one epoch, tiny models) and CPU-sized defaults; the paper recipes have ``--paper``
for the papers' own settings (224x224 inputs, the papers' optimisers and epochs: a GPU job).
``keras_fer.recipes._common`` holds what they share, one module per job (``arguments``,
``data``, ``runner``, ``tables``, ``smoke``, ``jsonio``). Datasets are read from ``--data-root``
or ``$KERAS_FER_DATA``. See ``docs/recipes.md``.
"""

RECIPES = ("vit_vs_cnn", "hfc_attention", "vit_sam_avfer", "neural_resizer", "generator_mnist",
           "generator_faces", "synthetic_augmentation", "zoo_checkpoints")


def run_recipe(name, argv):
    """Runs recipe ``name`` with command-line arguments ``argv``; returns its exit code."""
    import importlib

    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {list(RECIPES)}, got {name!r}")
    result = importlib.import_module(f"keras_fer.recipes.{name}").main(argv)
    return result if isinstance(result, int) else 0
