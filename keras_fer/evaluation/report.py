"""The evaluation report: metrics as JSON + a Markdown table, and the pictures beside them."""

import json
import os

import numpy as np

import keras

from keras_fer.evaluation import plots
from keras_fer.evaluation.complexity import count_flops, count_params
from keras_fer.evaluation.metrics import classification_metrics, restricted_accuracy


def predict_with_features(model, dataset):
    """(logits, penultimate features, labels as indices, images) over a tf.data dataset of
    (images, labels) batches; labels may be indices, one-hot or vote distributions."""
    head = model.get_layer("predictions") if _has_layer(model, "predictions") else None
    fmodel = keras.Model(model.inputs, [model.outputs[0], head.input]) if head else None
    logits, feats, labels, images = [], [], [], []
    for x, y in dataset:
        if fmodel is not None:
            lo, fe = fmodel(x, training=False)
            feats.append(keras.ops.convert_to_numpy(fe))
        else:
            lo = model(x, training=False)
        logits.append(keras.ops.convert_to_numpy(lo))
        y = keras.ops.convert_to_numpy(y)
        labels.append(np.argmax(y, axis=-1) if y.ndim == 2 else y.astype(np.int64))
        if sum(len(i) for i in images) < 64:
            images.append(keras.ops.convert_to_numpy(x))
    return (np.concatenate(logits), np.concatenate(feats) if feats else None,
            np.concatenate(labels), np.concatenate(images)[:64])


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)


def evaluate_model(model, dataset, class_names, out_dir, train_seconds=None, extra=None,
                   tsne_samples=1500, gradcam_images=16, seed=0):
    """Evaluates ``model`` on ``dataset`` and writes into ``out_dir``:
    ``report.json``, ``report.md``, ``confusion_matrix.png/.csv``, ``tsne_2d.png``,
    ``tsne_3d.png`` and ``gradcam.png``. Returns the report dict.

    ``tsne_samples=0`` leaves the t-SNE pictures out and ``gradcam_images=0`` the Grad-CAM one
    (a sweep of many small runs, where t-SNE can cost more than the training).
    """
    from keras_fer.evaluation.gradcam import grad_cam, overlay

    os.makedirs(out_dir, exist_ok=True)
    class_names = list(class_names)
    logits, feats, labels, images = predict_with_features(model, dataset)
    pred = np.argmax(logits, axis=-1)
    report = classification_metrics(labels, pred, class_names)
    if len(class_names) == 8:
        report["accuracy_7class"] = restricted_accuracy(logits, labels, range(7))
    report["params"] = count_params(model)
    report["flops"] = count_flops(model)
    report["train_seconds"] = train_seconds
    report["model"] = model.name
    report.update(extra or {})

    plots.write_confusion_matrix(report["confusion_matrix"], class_names,
                                 os.path.join(out_dir, "confusion_matrix.png"),
                                 os.path.join(out_dir, "confusion_matrix.csv"),
                                 title=f"{model.name}: accuracy {report['accuracy']:.3f}")
    pictures = ["confusion_matrix.png"]
    if tsne_samples and feats is not None and len(feats) >= 10:
        idx = np.random.default_rng(seed).permutation(len(feats))[:tsne_samples]
        for dims in (2, 3):
            fig, _ = plots.tsne_figure(feats[idx], labels[idx], class_names, dims=dims, seed=seed,
                                       title=f"{dims}-D t-SNE of penultimate features")
            name = f"tsne_{dims}d.png"
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(plots.figure_to_png(fig))
            pictures.append(name)
    try:
        if gradcam_images:
            cams, cam_pred = grad_cam(model, images[:gradcam_images])
            shown = [overlay(img, cam) for img, cam in zip(images, cams)]
            titles = [f"{class_names[t]} -> {class_names[p]}"
                      for t, p in zip(labels[:len(shown)], cam_pred)]
            with open(os.path.join(out_dir, "gradcam.png"), "wb") as f:
                f.write(plots.figure_to_png(plots.image_grid(shown, titles)))
            pictures.append("gradcam.png")
    except ValueError as err:  # a backbone without a spatial map: say so in the report
        report["gradcam"] = f"not available: {err}"
    report["pictures"] = pictures
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(markdown_report(report, class_names))
    return report


def evaluate_split(model, dataset, root, out_dir, split=None, batch_size=64):
    """``evaluate_model`` of ``model`` on ``split`` of dataset ``dataset`` (a reader name of
    ``keras_fer.datasets.load``) at ``root``: what ``keras-fer evaluate`` runs. Labels are
    matched to the model's classes by name (a model's class i and the dataset's class i need
    not be the same emotion: CK+48 has contempt where FER2013 has neutral); images of classes
    the model does not have are left out, with a note on stderr. Returns the report."""
    import sys

    from keras_fer import datasets
    from keras_fer.datasets.pipeline import make_dataset

    data = datasets.load(dataset, root, split=split)
    names = list(getattr(model, "class_names", None) or data.classes)
    if len(names) != int(model.output_shape[-1]):
        raise ValueError(f"the model has {model.output_shape[-1]} outputs but {len(names)} "
                         f"class names")
    if tuple(names) != tuple(data.classes):
        from keras_fer.datasets.balance import merge

        aligned = merge([data], classes=names, name=data.name)
        left_out = len(data) - len(aligned)
        if not len(aligned):
            raise ValueError(f"{dataset} has none of the model's classes ({names})")
        if left_out:
            print(f"note: {left_out} images of classes the model does not have are left out: "
                  f"{aligned.info.get('excluded')}", file=sys.stderr)
        data = aligned
    image_size, channels = tuple(model.input_shape[1:3]), int(model.input_shape[3])
    ds = make_dataset(data, image_size=image_size, channels=channels, batch_size=batch_size,
                      shuffle=False, label_mode="int")
    return evaluate_model(model, ds, names, out_dir)


def markdown_report(report, class_names):
    lines = [f"# Evaluation of `{report.get('model', 'model')}`", ""]
    lines.append(f"- accuracy: **{report['accuracy']:.4f}** on {report['num_samples']} images")
    if "accuracy_7class" in report:
        lines.append(f"- 7-class accuracy (contempt excluded): {report['accuracy_7class']:.4f}")
    w = report["weighted"]
    lines.append(f"- weighted precision / recall / F1: {w['precision']:.4f} / {w['recall']:.4f}"
                 f" / {w['f1']:.4f}")
    p = report.get("params", {})
    lines.append(f"- parameters: {p.get('total', 'n/a'):,}" if p else "- parameters: n/a")
    flops = report.get("flops")
    lines.append(f"- FLOPs per image: {flops / 1e6:.1f} M" if flops else "- FLOPs: n/a")
    if report.get("train_seconds") is not None:
        lines.append(f"- training time: {report['train_seconds']:.0f} s")
    lines += ["", "| class | precision | recall (= class accuracy) | F1 | support |",
              "|---|---|---|---|---|"]
    for name in class_names:
        c = report["per_class"][name]
        lines.append(f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | "
                     f"{c['support']} |")
    lines.append(f"| **weighted** | {w['precision']:.3f} | {w['recall']:.3f} | {w['f1']:.3f} | "
                 f"{report['num_samples']} |")
    lines.append("")
    for pic in report.get("pictures", []):
        lines.append(f"![{pic}]({pic})")
    return "\n".join(lines) + "\n"
