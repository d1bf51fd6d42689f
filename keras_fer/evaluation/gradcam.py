"""Grad-CAM (Selvaraju et al. 2017) for FERClassifier models, CNN and transformer backbones."""

import numpy as np


def _feature_model(model):
    """image -> (backbone output, logits)."""
    if not hasattr(model, "feature_model"):
        raise ValueError("Grad-CAM needs a FERClassifier (a model with .feature_model())")
    return model.feature_model()


def _as_grid(feats):
    """(B, h, w, C) stays; (B, N, D) tokens become a grid, dropping leading class tokens."""
    if feats.ndim == 4:
        return feats
    if feats.ndim != 3:
        raise ValueError(f"cannot make a spatial map from features of shape {feats.shape}")
    n = feats.shape[1]
    for extra in (0, 1, 2):
        side = int(round(np.sqrt(n - extra)))
        if side * side == n - extra:
            return feats[:, extra:].reshape(feats.shape[0], side, side, feats.shape[2])
    raise ValueError(f"{n} tokens do not form a square grid")


def grad_cam(model, images, class_index=None):
    """Heat maps in [0, 1] at the input resolution, one per image, for ``class_index``
    (default: the predicted class). Returns (maps (B, H, W), predicted classes)."""
    import tensorflow as tf

    fmodel = _feature_model(model)
    images = tf.convert_to_tensor(np.asarray(images, np.float32))
    with tf.GradientTape() as tape:
        feats, logits = fmodel(images, training=False)
        tape.watch(feats)
        pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
        target = pred if class_index is None else tf.fill(tf.shape(pred), class_index)
        score = tf.reduce_sum(tf.gather(logits, target, axis=1, batch_dims=1))
    grads = tape.gradient(score, feats)
    feats, grads = _as_grid(feats.numpy()), _as_grid(grads.numpy())
    weights = grads.mean(axis=(1, 2), keepdims=True)
    cam = np.maximum((feats * weights).sum(axis=-1), 0)
    cam = cam / np.maximum(cam.max(axis=(1, 2), keepdims=True), 1e-12)
    size = images.shape[1:3]
    cam = tf.image.resize(cam[..., None], size, method="bilinear").numpy()[..., 0]
    return cam, pred.numpy()


def overlay(image, cam, alpha=0.45):
    """An RGB uint8 picture of ``image`` (H, W[, C], values 0-255) with ``cam`` on top."""
    import matplotlib

    img = np.asarray(image, np.float32)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    heat = matplotlib.colormaps["jet"](cam)[..., :3] * 255.0
    return np.clip((1 - alpha) * img + alpha * heat, 0, 255).astype(np.uint8)
