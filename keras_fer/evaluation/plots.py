"""Pictures people look at: confusion matrices, feature t-SNE, Grad-CAM overlays, image grids."""

import csv
import io

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_to_png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def confusion_matrix_figure(cm, class_names, normalize=True, title="Confusion matrix"):
    """A matplotlib figure of ``cm``: row-normalised colours, counts and percentages written."""
    plt = _pyplot()
    cm = np.asarray(cm, np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    shown = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0) if normalize else cm
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * k, 0.8 + 0.7 * k))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(k):
        for j in range(k):
            text = f"{int(cm[i, j])}\n{shown[i, j]:.0%}" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if shown[i, j] > 0.5 * (shown.max() or 1) else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def write_confusion_matrix(cm, class_names, png_path, csv_path=None, title="Confusion matrix"):
    with open(png_path, "wb") as f:
        f.write(figure_to_png(confusion_matrix_figure(cm, class_names, title=title)))
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["true \\ predicted", *class_names])
            for name, row in zip(class_names, np.asarray(cm).astype(int)):
                writer.writerow([name, *row.tolist()])


def tsne_figure(features, labels, class_names, dims=2, seed=0, title="t-SNE of features"):
    """2-D or 3-D t-SNE (scikit-learn) of ``features`` coloured by label."""
    from sklearn.manifold import TSNE

    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    features = np.asarray(features, np.float64).reshape(len(features), -1)
    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    emb = TSNE(n_components=dims, perplexity=perplexity, init="pca", random_state=seed
               ).fit_transform(features)
    plt = _pyplot()
    fig = plt.figure(figsize=(6, 5))
    ax = fig.add_subplot(projection="3d" if dims == 3 else None)
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(class_names):
        pts = emb[np.asarray(labels) == i]
        if len(pts):
            ax.scatter(*pts.T, s=8, color=cmap(i % 10), label=name)
    ax.legend(fontsize=7, markerscale=2)
    ax.set_title(title)
    return fig, emb


def image_grid(images, titles=None, cols=8, cmap="gray"):
    """Images (N, H, W[, C]) in a grid figure with optional per-image titles."""
    plt = _pyplot()
    images = np.asarray(images)
    n = len(images)
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in enumerate(axes.ravel()[:n]):
        img = images[i]
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    return fig
