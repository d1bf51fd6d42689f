"""Per-class counts per split: a table to print and a grouped bar chart to save.

Input is a ``FERDataset`` (grouped by each record's ``split``; records without one are
grouped under ``"all"``) or a mapping ``{split name: FERDataset}`` (e.g. the two sides of a
fold). The chart is drawn on a bare Agg canvas, so it works without a display and never
changes matplotlib's global backend.
"""

import collections

import numpy as np

from keras_fer.datasets.records import FERDataset


def split_class_counts(data):
    """``(classes, {split: counts array in class order})``."""
    if isinstance(data, FERDataset):
        classes = data.classes
        groups = collections.defaultdict(list)
        for r in data.records:
            groups["all" if r.split is None else r.split].append(r.label)
    elif isinstance(data, dict) and data and all(isinstance(d, FERDataset)
                                                 for d in data.values()):
        classes = next(iter(data.values())).classes
        if any(d.classes != classes for d in data.values()):
            raise ValueError("data: every dataset in the mapping must have the same classes")
        groups = {name: [r.label for r in d.records] for name, d in data.items()}
    else:
        raise ValueError(f"data must be a FERDataset or a non-empty {{name: FERDataset}} dict, "
                         f"got {type(data).__name__}")
    counts = {}
    for name, labels in groups.items():
        labels = np.array([-1 if label is None else label for label in labels], dtype=np.int64)
        counts[str(name)] = np.bincount(labels[labels >= 0], minlength=len(classes))[
            :len(classes)]
    return tuple(classes), counts


def format_counts_table(data):
    """A plain-text table: one row per class, one column per split, plus totals."""
    classes, counts = split_class_counts(data)
    names = list(counts)
    header = ["class"] + names + (["total"] if len(names) > 1 else [])
    rows = []
    for i, c in enumerate(classes):
        values = [int(counts[n][i]) for n in names]
        rows.append([c] + values + ([sum(values)] if len(names) > 1 else []))
    totals = [int(counts[n].sum()) for n in names]
    rows.append(["total"] + totals + ([sum(totals)] if len(names) > 1 else []))
    widths = [max(len(f"{row[j]:,}" if isinstance(row[j], int) else row[j])
                  for row in rows + [header]) for j in range(len(header))]

    def fmt(row):
        cells = [f"{v:,}" if isinstance(v, int) else str(v) for v in row]
        return "  ".join([cells[0].ljust(widths[0])]
                         + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def plot_class_counts(data, path, title=None):
    """Saves a grouped bar chart of class counts per split as a PNG at ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    classes, counts = split_class_counts(data)
    names = list(counts)
    figure = Figure(figsize=(max(6.0, 0.9 * len(classes) + 2), 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    x = np.arange(len(classes))
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        bars = axes.bar(x + (j - (len(names) - 1) / 2) * width, counts[name], width, label=name)
        axes.bar_label(bars, fontsize=7)
    axes.set_xticks(x)
    axes.set_xticklabels(classes, rotation=30, ha="right")
    axes.set_ylabel("images")
    title = title or (data.name if isinstance(data, FERDataset) else None)
    if title:
        axes.set_title(title)
    if len(names) > 1:
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def dataset_stats(data, png=None, title=None):
    """Returns the counts table as text (and writes the chart to ``png`` if given)."""
    table = format_counts_table(data)
    if png is not None:
        plot_class_counts(data, png, title=title)
    return table
