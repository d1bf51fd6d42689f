"""The embedded demo: the package's blocks trained end to end with nothing to download.

It draws a small synthetic "cartoon face" dataset (four expressions distinguished by the mouth
and brows), trains a compact CNN with high-frequency spatial attention under SAM and the F-PDLS
loss, reports held-out accuracy, and exports the model as `.keras` and SavedModel. The point is
to exercise the real code paths in well under a minute on a laptop CPU, not to claim FER
accuracy: real data goes through `keras_fer.datasets`.
"""

import os
import time

import numpy as np

DEMO_CLASSES = ("angry", "happy", "sad", "surprise")


def draw_faces(n, size=48, seed=0):
    """``n`` grey cartoon faces (uint8, (n, size, size)) and their labels into DEMO_CLASSES."""
    import cv2

    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size), np.uint8)
    labels = rng.integers(0, len(DEMO_CLASSES), size=n)
    s = size / 48.0
    for i, label in enumerate(labels):
        img = np.full((size, size), int(rng.integers(20, 70)), np.uint8)
        cx, cy = size / 2 + rng.normal(0, 1.5 * s), size / 2 + rng.normal(0, 1.5 * s)
        scale = s * rng.uniform(0.85, 1.1)
        skin = int(rng.integers(150, 230))

        def pt(dx, dy):
            return int(round(cx + dx * scale)), int(round(cy + dy * scale))

        cv2.ellipse(img, pt(0, 0), (int(17 * scale), int(21 * scale)), 0, 0, 360, skin, -1)
        for side in (-1, 1):
            cv2.circle(img, pt(7 * side, -5), max(1, int(2 * scale)), 30, -1)
            # Brows: slanted down towards the nose for anger, raised for surprise.
            inner_dy = {0: -6, 3: -12}.get(int(label), -10)
            cv2.line(img, pt(3 * side, inner_dy), pt(11 * side, -10), 40, max(1, int(scale)))
        if label == 1:
            cv2.ellipse(img, pt(0, 7), (int(8 * scale), int(5 * scale)), 0, 0, 180, 40, 2)
        elif label == 2:
            cv2.ellipse(img, pt(0, 13), (int(8 * scale), int(5 * scale)), 0, 180, 360, 40, 2)
        elif label == 3:
            cv2.ellipse(img, pt(0, 10), (int(4 * scale), int(6 * scale)), 0, 0, 360, 30, -1)
        else:
            cv2.line(img, pt(-7, 10), pt(7, 10), 40, 2)
        noise = rng.normal(0, 12, img.shape)
        images[i] = np.clip(img + noise, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int32)


def build_demo_model(input_shape=(48, 48, 1), num_classes=len(DEMO_CLASSES)):
    """A compact CNN with a HighFrequencyAttention module after each of its first stages."""
    import keras

    from keras_fer.layers import HighFrequencyAttention

    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        # A short run: the default momentum (0.99) leaves the moving statistics near their
        # initial values after ~150 steps, and inference would use those.
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
        if filters < 64:
            x = HighFrequencyAttention(cutoff=2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="demo_hfc_cnn")


def run_demo(out_dir="keras-fer-demo", epochs=4, num_train=1200, num_test=300, seed=0):
    import keras

    from keras_fer.losses import FPDLS
    from keras_fer.optimizers import SAMModel

    keras.utils.set_random_seed(seed)
    start = time.time()
    x_train, y_train = draw_faces(num_train, seed=seed)
    x_test, y_test = draw_faces(num_test, seed=seed + 1)
    num_classes = len(DEMO_CLASSES)
    prior = np.bincount(y_train, minlength=num_classes) / len(y_train)
    print(f"synthetic faces: {len(x_train)} train / {len(x_test)} test, classes {DEMO_CLASSES}")

    model = build_demo_model()
    trainer = SAMModel(model, rho=0.05)
    trainer.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=FPDLS(prior=prior, alpha=0.9, gamma=1.0),
        metrics=["accuracy"],
    )
    one_hot = keras.ops.one_hot(y_train, num_classes)
    trainer.fit(x_train[..., None], one_hot, epochs=epochs, batch_size=32, verbose=2)
    probs = keras.ops.softmax(model.predict(x_test[..., None], verbose=0))
    acc = float(np.mean(np.argmax(probs, -1) == y_test))
    print(f"held-out accuracy: {acc:.3f} (chance {1 / num_classes:.3f}); "
          f"{model.count_params():,} parameters; {time.time() - start:.1f} s")

    os.makedirs(out_dir, exist_ok=True)
    keras_path = os.path.join(out_dir, "demo_hfc_cnn.keras")
    model.save(keras_path)
    model.export(os.path.join(out_dir, "saved_model", "1"), verbose=False)
    print(f"saved {keras_path} and the SavedModel {os.path.join(out_dir, 'saved_model', '1')}")
    return acc
