"""One pixel convention end to end: the README's data path trains a model on [0, 255] and the
app (``keras_fer.app``, ``standardize_image``) feeds the same model the same values."""

import numpy as np

import keras

import keras_fer.datasets as kd
from keras_fer.datasets import synthetic


def test_readme_data_path_and_the_app_feed_the_same_pixels(tmp_path):
    from keras_fer.models import create_model
    from keras_fer.app import Predictor

    root = synthetic.write_fer2013(str(tmp_path), per_class_train=4, per_class_test=2)
    # The README's Data snippet, verbatim but for the path.
    train = kd.load("fer2013", f"{root}/fer2013.csv.gz", split="Training")
    ds = train.to_tf_dataset(image_size=(48, 48), batch_size=64, augment="basic")
    x, _ = next(iter(ds))
    assert float(np.max(x)) > 2.0, "the pipeline must yield [0, 255], the models' input range"

    model = create_model("mini_xception", num_classes=7, input_shape=(48, 48, 1))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ds, epochs=1, verbose=0)

    # The same images through the app's preprocessing give the same model inputs and outputs.
    test = kd.load("fer2013", root, split="PublicTest")
    plain = test.to_tf_dataset(image_size=(48, 48), batch_size=64, shuffle=False)
    x_pipe = np.concatenate([np.asarray(b) for b, _ in plain])
    predictor = Predictor(model=model, backend="keras")
    x_app = predictor.preprocess([r.image for r in test])
    np.testing.assert_array_equal(x_app.astype(np.float32), x_pipe)
    probs_app = predictor.probabilities(x_app)
    probs_pipe = keras.ops.convert_to_numpy(keras.ops.softmax(model(x_pipe, training=False)))
    np.testing.assert_allclose(probs_app, probs_pipe, atol=1e-5)
