"""The SavedModel for TF Serving (keras_fer.zoo.serving): signatures on encoded images,
saved_model_cli, and the REST request/response helpers."""

import base64
import io
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_fer.zoo import serving

LUMA = np.float32([0.299, 0.587, 0.114])  # Rec. 601, as the pipeline documents
GREY_CLASSES = ["angry", "happy", "neutral"]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "serving.md"


def _encode(array, fmt, **kwargs):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _images():
    """Face-like test images of several sizes, grey, colour and RGBA, as PNG and JPEG."""
    from keras_fer.app.demo import draw_faces

    faces = draw_faces(4, seed=5)[0]  # (4, 48, 48) uint8 grey cartoon faces
    rng = np.random.default_rng(0)
    colour = np.stack([faces[1], np.flipud(faces[2]), 255 - faces[3]], axis=-1)
    odd = np.asarray(Image.fromarray(colour).resize((53, 37), Image.BILINEAR))
    rgba = np.concatenate([odd[:16, :16], rng.integers(0, 256, (16, 16, 1), np.uint8)], -1)
    png = {"grey_48": _encode(faces[0], "PNG"), "grey_24": _encode(faces[1][12:36, 12:36], "PNG"),
           "rgb_37x53": _encode(odd, "PNG"), "rgba_16": _encode(rgba, "PNG")}
    jpeg = {"jpeg_grey_48": _encode(faces[2], "JPEG", quality=95),
            "jpeg_rgb_37x53": _encode(odd, "JPEG", quality=95)}
    return png, jpeg


def reference_pixels(data, size, channels):
    """Independent of the package: PIL decode, NumPy channel conversion, the documented
    resize (tf.image.resize, bilinear, antialias, only when the size differs), rounding."""
    import tensorflow as tf

    with Image.open(io.BytesIO(data)) as img:
        array = np.asarray(img)
    array = array[..., None] if array.ndim == 2 else array
    array = (array[..., :3] if array.shape[-1] >= 3 else array[..., :1]).astype(np.float32)
    if channels == 1 and array.shape[-1] == 3:
        array = (array * LUMA).sum(-1, keepdims=True)
    elif channels == 3 and array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.shape[:2] != tuple(size):
        array = tf.image.resize(array, size, method="bilinear", antialias=True).numpy()
    return np.clip(np.round(array), 0, 255).astype(np.float32)


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _tiny(input_shape, seed, **options):
    from keras_fer.models import create_model

    model = create_model("mini_xception", num_classes=3, input_shape=input_shape, **options)
    rng = np.random.default_rng(seed)
    for v in model.trainable_weights:  # away from init, so probabilities are not uniform
        v.assign(v.numpy() + rng.normal(0, 0.1, v.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)  # module fixtures run before the per-test seeding
    root = tmp_path_factory.mktemp("serving")
    grey = _tiny((24, 24, 1), seed=0)
    grey.class_names = list(GREY_CLASSES)
    rgb = _tiny((20, 20, 3), seed=1, width=0.5)
    paths = {"grey": serving.export_serving(grey, root / "grey", version=1),
             "rgb": serving.export_serving(rgb, root / "rgb", version=2)}
    png, jpeg = _images()
    return types.SimpleNamespace(
        models={"grey": grey, "rgb": rgb}, paths=paths, png=png, jpeg=jpeg,
        loaded={k: tf.saved_model.load(str(p)) for k, p in paths.items()})


def _keras_probabilities(model, pixels):
    return _softmax(model(pixels, training=False).numpy().astype(np.float64))


def test_layout_and_signatures(exported):
    import tensorflow as tf

    assert exported.paths["grey"].name == "1" and exported.paths["rgb"].name == "2"
    assert (exported.paths["grey"] / "saved_model.pb").is_file()
    assert (exported.paths["grey"] / "variables" / "variables.index").is_file()
    sig = exported.loaded["grey"].signatures
    assert {"serving_default", "serve_preprocessed", "class_names"} <= set(sig)
    inputs = sig["serving_default"].structured_input_signature[1]
    assert inputs == {"images": tf.TensorSpec([None], tf.string, name="images")}
    outputs = sig["serving_default"].structured_outputs
    assert outputs["probabilities"].shape.as_list() == [None, 3]
    assert outputs["label"].dtype == tf.string and outputs["class_id"].dtype == tf.int32
    pixels = sig["serve_preprocessed"].structured_input_signature[1]["pixels"]
    assert pixels.shape.as_list() == [None, 24, 24, 1] and pixels.dtype == tf.float32
    names = [n.decode() for n in sig["class_names"]()["class_names"].numpy()]
    assert names == GREY_CLASSES
    rgb_names = exported.loaded["rgb"].signatures["class_names"]()["class_names"].numpy()
    assert [n.decode() for n in rgb_names] == ["0", "1", "2"]


@pytest.mark.parametrize("kind", ["grey", "rgb"])
def test_decode_matches_reference_pixels(exported, kind):
    model = exported.models[kind]
    size, channels = tuple(model.input_shape[1:3]), model.input_shape[3]
    for name, data in exported.png.items():
        got = serving.decode_images([data], size, channels).numpy()[0]
        np.testing.assert_array_equal(got, reference_pixels(data, size, channels), err_msg=name)
    for name, data in exported.jpeg.items():
        # JPEG decoders differ (IDCT, chroma upsampling): PIL's and TensorFlow's agree to a
        # few grey levels on average (measured: mean 1.7, max 9 on the colour image).
        diff = np.abs(serving.decode_images([data], size, channels).numpy()[0]
                      - reference_pixels(data, size, channels))
        assert diff.mean() < 3 and diff.max() <= 16, (name, diff.mean(), diff.max())


@pytest.mark.parametrize("kind", ["grey", "rgb"])
def test_serving_default_matches_keras_on_mixed_batch(exported, kind):
    import tensorflow as tf

    model = exported.models[kind]
    size, channels = tuple(model.input_shape[1:3]), model.input_shape[3]
    names = list(exported.png) + list(exported.jpeg)
    data = list(exported.png.values()) + list(exported.jpeg.values())
    out = exported.loaded[kind].signatures["serving_default"](images=tf.constant(data))
    expected = _keras_probabilities(
        model, np.stack([reference_pixels(d, size, channels) for d in data]))
    got = out["probabilities"].numpy()
    n_png = len(exported.png)
    np.testing.assert_allclose(got[:n_png], expected[:n_png], atol=1e-5, rtol=0,
                               err_msg=str(names[:n_png]))
    np.testing.assert_allclose(got[n_png:], expected[n_png:], atol=2e-2, rtol=0,
                               err_msg=str(names[n_png:]))
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-6)
    class_id = out["class_id"].numpy()
    np.testing.assert_array_equal(class_id, got.argmax(-1))
    np.testing.assert_array_equal(class_id[:n_png], expected[:n_png].argmax(-1))
    labels = [label.decode() for label in out["label"].numpy()]
    assert labels == [model.class_names[i] for i in class_id]


def test_serve_preprocessed_equals_model(exported):
    import tensorflow as tf

    for kind, model in exported.models.items():
        x = np.random.default_rng(3).uniform(0, 255, (5, *model.input_shape[1:]))
        x = x.astype(np.float32)
        out = exported.loaded[kind].signatures["serve_preprocessed"](pixels=tf.constant(x))
        np.testing.assert_allclose(out["probabilities"].numpy(), _keras_probabilities(model, x),
                                   atol=1e-6, rtol=0)
        # A batch of one gives the same row.
        one = exported.loaded[kind].signatures["serve_preprocessed"](pixels=tf.constant(x[:1]))
        np.testing.assert_allclose(one["probabilities"].numpy(), out["probabilities"][:1],
                                   atol=1e-6)


def test_bad_images_name_the_problem(exported):
    import tensorflow as tf

    fn = exported.loaded["grey"].signatures["serving_default"]
    good = exported.png["grey_48"]
    for bad, message in ((b"", r"images\[1\]: empty input \(0 bytes\)"),
                         (b"GIF7 not an image", r"images\[1\]: not a JPEG, PNG, GIF, BMP or WebP "
                                                r"image \(17 bytes"),
                         (b"BX", r"images\[1\]: not a JPEG, PNG.* \(2 bytes"),
                         (good[:60], "PNG")):  # truncated: the decoder's own message
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            fn(images=tf.constant([good, bad]))
    with pytest.raises(ValueError, match="1-D batch of encoded images"):
        serving.decode_images(tf.constant([[good]]), (24, 24), 1)
    with pytest.raises(ValueError, match="channels must be 1 or 3, got 2"):
        serving.decode_images([good], (24, 24), 2)


def test_export_argument_errors(exported, tmp_path):
    model = exported.models["grey"]
    with pytest.raises(ValueError, match="version must be an integer >= 1, got 0"):
        serving.export_serving(model, tmp_path, version=0)
    with pytest.raises(ValueError, match="class_names has 2 names but the model has 3 outputs"):
        serving.export_serving(model, tmp_path, class_names=["a", "b"])
    with pytest.raises(FileExistsError, match="already exists"):
        serving.export_serving(model, exported.paths["grey"].parent, version=1)


def _saved_model_cli():
    path = Path(sys.executable).parent / "saved_model_cli"
    if not path.exists():
        pytest.skip(f"saved_model_cli not found next to {sys.executable}")
    return str(path)


def _bytes_literal(data):
    # Every byte escaped: --input_exprs splits on ';' and evaluates with ast.literal_eval.
    return "b'" + "".join(f"\\x{b:02x}" for b in data) + "'"


def test_saved_model_cli_run_matches(exported, tmp_path):
    import tensorflow as tf

    data = [exported.png["grey_48"], exported.jpeg["jpeg_rgb_37x53"], exported.png["rgba_16"]]
    literal = "[" + ", ".join(_bytes_literal(d) for d in data) + "]"
    out_dir = tmp_path / "cli_out"
    result = subprocess.run(
        [_saved_model_cli(), "run", "--dir", str(exported.paths["grey"]), "--tag_set", "serve",
         "--signature_def", "serving_default", "--input_exprs", f"images={literal}",
         "--outdir", str(out_dir)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    probabilities = np.load(out_dir / "probabilities.npy")
    in_process = exported.loaded["grey"].signatures["serving_default"](images=tf.constant(data))
    np.testing.assert_allclose(probabilities, in_process["probabilities"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(np.load(out_dir / "class_id.npy"),
                                  in_process["class_id"].numpy())
    model = exported.models["grey"]
    expected = _keras_probabilities(model, np.stack([reference_pixels(d, (24, 24), 1)
                                                     for d in data]))
    np.testing.assert_allclose(probabilities[[0, 2]], expected[[0, 2]], atol=1e-5, rtol=0)


def test_rest_request_body(tmp_path):
    a, b = b"\x89PNG\r\n\x1a\n first", b"\xff\xd8\xff second;with=odd\"chars"
    (tmp_path / "b.jpg").write_bytes(b)
    body = json.loads(serving.rest_request_body([a, tmp_path / "b.jpg"]))
    assert list(body) == ["instances"]
    assert [base64.b64decode(i["b64"]) for i in body["instances"]] == [a, b]
    named = json.loads(serving.rest_request_body(a, signature_name="serving_default"))
    assert named == {"signature_name": "serving_default",
                     "instances": [{"b64": base64.b64encode(a).decode()}]}
    with pytest.raises(ValueError, match="images must hold at least one image"):
        serving.rest_request_body([])
    with pytest.raises(ValueError, match="encoded image bytes or file paths, got int"):
        serving.rest_request_body([3])
    with pytest.raises(ValueError, match="signature_name must be a non-empty string"):
        serving.rest_request_body(a, signature_name="")


def test_predict_response_row_format():
    outputs = {"probabilities": np.float32([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]),
               "label": np.array([b"neutral", b"angry"], dtype=object),
               "class_id": np.int32([2, 0])}
    response = serving.predict_response(outputs)
    assert response == {"predictions": [
        {"class_id": 2, "label": "neutral", "probabilities": [0.1, 0.2, 0.7]},
        {"class_id": 0, "label": "angry", "probabilities": [0.6, 0.3, 0.1]}]}
    json.dumps(response)  # plain JSON types only
    with pytest.raises(ValueError, match="share their batch size"):
        serving.predict_response({"a": np.zeros(2), "b": np.zeros(3)})


def _doc_block(marker):
    text = DOCS.read_text()
    match = re.search(re.escape(f"<!-- {marker} -->") + r"\s*```json\n(.*?)\n```", text, re.S)
    assert match, f"docs/serving.md has no json block after <!-- {marker} -->"
    return match.group(1)


def test_docs_request_body_is_what_the_helper_makes(exported):
    import tensorflow as tf

    block = _doc_block("rest-request")
    body = json.loads(block)
    images = [base64.b64decode(i["b64"]) for i in body["instances"]]
    assert block == serving.rest_request_body(images, body.get("signature_name"), indent=2)
    # The documented image is a real face crop the served model accepts.
    out = exported.loaded["grey"].signatures["serving_default"](images=tf.constant(images))
    assert out["probabilities"].shape == (len(images), 3)
    response = json.loads(_doc_block("rest-response"))
    assert len(response["predictions"]) == len(images)
    for row in response["predictions"]:
        assert set(row) == {"probabilities", "label", "class_id"}
        assert abs(sum(row["probabilities"]) - 1) < 1e-5
        assert row["label"] == GREY_CLASSES[int(np.argmax(row["probabilities"]))]
        assert row["class_id"] == GREY_CLASSES.index(row["label"])


# -- issue 15 item 10: decoded size cap, empty batches -------------------------------------

def _bomb_png(width, height):
    """A valid PNG signature and IHDR claiming ``width`` x ``height`` grey pixels, with a
    tiny IDAT: a few hundred bytes standing for gigabytes once decoded."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 4)  # four rows of zeros, then nothing
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def test_decoded_size_is_capped_from_the_header_for_every_format():
    """The cap reads width and height from each format's header (checked on a 40 x 30 image
    against caps just below and at 1200 pixels), before any decoding."""
    import tensorflow as tf

    array = np.random.default_rng(3).integers(0, 256, (30, 40, 3), np.uint8)
    rgba = np.concatenate([array, array[..., :1]], -1)  # real alpha: WebP's VP8X layout
    encoded = {"png": _encode(array, "PNG"), "png_grey": _encode(array[..., 0], "PNG"),
               "jpeg": _encode(array, "JPEG", quality=90),
               "jpeg_progressive": _encode(array, "JPEG", quality=90, progressive=True),
               "gif": _encode(array[..., 0], "GIF"), "bmp": _encode(array, "BMP"),
               "webp_lossless": _encode(array, "WEBP", lossless=True),
               "webp_lossy": _encode(array, "WEBP", quality=90),
               "webp_extended": _encode(rgba, "WEBP", quality=90)}
    assert encoded["webp_extended"][12:16] == b"VP8X"
    for kind, data in encoded.items():
        pixels = serving.decode_images([data], (24, 24), 1, max_pixels=1200)
        assert pixels.shape == (1, 24, 24, 1), kind
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"images\[0\]: 40x30 pixels \(1200 in all\), more than the "
                                 r"1199 this model accepts"):
            serving.decode_images([data], (24, 24), 1, max_pixels=1199)
    with pytest.raises(ValueError, match="max_pixels must be an integer >= 1, got 0"):
        serving.decode_images([encoded["png"]], (24, 24), 1, max_pixels=0)


def test_decompression_bomb_is_refused_by_the_signature(exported):
    import tensorflow as tf

    fn = exported.loaded["grey"].signatures["serving_default"]
    good = exported.png["grey_48"]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"images\[1\]: 30000x30000 pixels \(900000000 in all\), more than "
                             rf"the {serving.DEFAULT_MAX_PIXELS} this model accepts"):
        fn(images=tf.constant([good, _bomb_png(30000, 30000)]))
    # Under the cap the same header is decoded as usual (and here fails as truncated).
    with pytest.raises(tf.errors.InvalidArgumentError, match="PNG"):
        fn(images=tf.constant([_bomb_png(64, 64)]))


def test_empty_batch_gives_empty_outputs(exported):
    import tensorflow as tf

    for kind, loaded in exported.loaded.items():
        model = exported.models[kind]
        out = loaded.signatures["serving_default"](images=tf.constant([], tf.string))
        assert out["probabilities"].shape == (0, 3) and out["label"].shape == (0,)
        assert out["class_id"].shape == (0,)
        empty = tf.zeros((0, *model.input_shape[1:]), tf.float32)
        out = loaded.signatures["serve_preprocessed"](pixels=empty)
        assert out["probabilities"].shape == (0, 3)
        # A non-empty batch still goes through the model.
        one = loaded.signatures["serving_default"](images=tf.constant([exported.png["grey_48"]]))
        assert one["probabilities"].shape == (1, 3)


def test_serve_preprocessed_refuses_nan_and_the_wrong_size(exported):
    """NaN pixels used to come out as NaN probabilities labelled with the first class, and
    pixels of another size were accepted (the signature's declared shape is not enforced)."""
    import tensorflow as tf

    fn = exported.loaded["grey"].signatures["serve_preprocessed"]
    x = np.full((3, 24, 24, 1), 128.0, np.float32)
    x[1, 5, 5, 0] = np.nan
    x[2, 0, 0, 0] = np.inf
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"pixels: NaN or infinite values in the images at batch index "
                             r"\[1 2\]"):
        fn(pixels=tf.constant(x))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"this model takes images of shape \(N, 24, 24, 1\).*got a batch "
                             r"of shape \[2 32 32 1\]"):
        fn(pixels=tf.constant(np.full((2, 32, 32, 1), 128.0, np.float32)))
    out = fn(pixels=tf.constant(x[:1]))  # finite pixels at the right size still work
    assert np.isfinite(out["probabilities"].numpy()).all()
