"""The canonical label vocabulary (SPEC "Label vocabulary"): one order for every dataset."""

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")
EMOTIONS_7 = EMOTIONS[:7]
EMOTIONS_8 = EMOTIONS


def class_names(num_classes):
    """The first ``num_classes`` canonical names (7 or 8)."""
    if num_classes not in (7, 8):
        raise ValueError(f"num_classes must be 7 or 8 for the canonical vocabulary, got {num_classes}")
    return EMOTIONS[:num_classes]


def label_index(name, vocabulary=EMOTIONS):
    """Index of a canonical name; a clear error for anything else."""
    try:
        return vocabulary.index(name)
    except ValueError:
        raise ValueError(f"unknown label {name!r}; known labels: {', '.join(vocabulary)}") from None
