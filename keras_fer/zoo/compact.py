"""Half-size ``.keras`` files: float32 weights stored as float16, checked against the original.

A ``.keras`` file is a zip of ``config.json``, ``metadata.json`` and ``model.weights.h5``.
``store_float16`` rewrites the HDF5 member so that every float32 array is stored as float16
(other dtypes, the config and the metadata are copied unchanged): half the bytes of the
weights. Loading needs nothing special: Keras assigns each stored array to its variable with
``Variable.assign``, which converts the value to the variable's own dtype, so
``keras.saving.load_model`` / ``keras_fer.models.load_model`` of the rewritten file give the
same float32 model with its weights rounded to float16 (11 significant bits; relative error
at most 2**-11 ~ 0.05 %).

The rewrite refuses what it would change beyond rounding, with a ``ValueError`` naming the
weight's path in the file and its layer: a finite value above float16's maximum (65504: it
would become infinite), or a non-zero value that would become 0 (below ~3e-8) and is not
negligible in its array, that is larger than the rounding error of the array's largest value
(2**-11 of it). Negligible ones (weight decay leaves a few ~1e-9 specks in a kernel whose
values are ~1e-2) become 0 and are counted in the record (``flushed_to_zero``,
``largest_flushed``); an array of only tiny values is refused.

Verification is part of the conversion: the rewritten file is loaded, every variable must come
back with the dtype of the model it was made from, and its outputs on a seeded probe batch
(``probe_images``) must match the float32 model's: no softmax probability may move by more
than ``MAX_SOFTMAX_DIFF``, and every probe image keeps its top-1 class unless the float32
model's two best classes are within ``TIE_MARGIN`` of each other (a tie that rounding may
break either way). The measured numbers are returned as the entry's ``weights_storage``.

``keras_fer.zoo.publish.compact_release`` converts a published release in place (the package's bundled models by
default): the ``.keras`` file, the model card and the entry's sha256, size and
``weights_storage``, swapped in together as ``publish`` does.
"""

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from keras_fer.zoo import store
from keras_fer.zoo.entry import ZooEntry

WEIGHTS_MEMBER = "model.weights.h5"
# The tolerance. Models that compute in float32 move by at most ~0.005 (the bundled
# mini-Xceptions; a ResNet18 computed in float32). Those that keep their mixed_bfloat16 training
# policy (the bundled ResNet18s) move by ~0.02: bfloat16's own rounding, which moves them as
# much between float32 and bfloat16 computation of the same float32 weights (docs/zoo.md).
MAX_SOFTMAX_DIFF = 0.05
TIE_MARGIN = 0.05
PROBE_SEED = 0
PROBE_IMAGES = 64
FLOAT16_MAX = float(np.finfo(np.float16).max)
ROUNDING = 2.0 ** -11  # float16's unit roundoff: rounding moves a normal w by <= ROUNDING*|w|


def probe_images(input_shape, n=PROBE_IMAGES, seed=PROBE_SEED):
    """``n`` seeded float32 images of ``input_shape`` in [0, 255]: half uniform noise, half
    smooth random fields (6x6 noise resized bilinearly, closer to a photograph's
    statistics)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    height, width, channels = (int(v) for v in input_shape)
    noise = rng.uniform(0, 255, (n - n // 2, height, width, channels))
    coarse = rng.uniform(0, 255, (n // 2, 6, 6, channels)).astype("float32")
    smooth = tf.image.resize(coarse, (height, width), method="bilinear").numpy()
    return np.concatenate([noise, smooth]).astype("float32")


def describe_probe(n=PROBE_IMAGES, seed=PROBE_SEED):
    return (f"{n} images from seed {seed}: {n - n // 2} of uniform noise in [0, 255], "
            f"{n // 2} of 6x6 noise resized bilinearly")


# -- the HDF5 rewrite -------------------------------------------------------------------

def _layer_of(dataset):
    """The layer name Keras records on a weight's group (``.../vars`` has attr ``name``)."""
    name = dataset.parent.attrs.get("name")
    return name.decode() if isinstance(name, bytes) else name


def to_float16(array, where):
    """``(array as float16, its flushed values)``: ``array`` (float32) rounded to float16, and
    the magnitudes of the non-zero values that became 0. ``ValueError`` naming ``where`` if a
    value would become infinite, or if a value that becomes 0 is not negligible: larger than
    float16's rounding error at the array's largest magnitude (2**-11 of it), a change that
    the array gets anyway."""
    with np.errstate(over="ignore", under="ignore"):
        half = array.astype(np.float16)
    overflow = np.isfinite(array) & ~np.isfinite(half)
    if overflow.any():
        raise ValueError(
            f"{where}: {int(overflow.sum())} value(s) above float16's maximum {FLOAT16_MAX:g} "
            f"(largest |w| = {float(np.abs(array[overflow]).max()):.6g}) would become "
            f"infinite; keep this model's weights in float32 (weights_dtype='float32')")
    flushed = np.abs(array[(array != 0) & (half == 0)])
    scale = float(np.abs(array[np.isfinite(array)]).max(initial=0))
    if flushed.size and flushed.max() > scale * ROUNDING:
        raise ValueError(
            f"{where}: {flushed.size} non-zero value(s) below float16's smallest subnormal "
            f"would become 0 (largest of them |w| = {float(flushed.max()):.6g}, more than "
            f"2**-11 of the array's largest |w| {scale:.6g}); keep this model's weights in "
            f"float32 (weights_dtype='float32')")
    return half, flushed


def float16_weights(h5_bytes):
    """``(bytes, flushed)``: a copy of the HDF5 weights file ``h5_bytes`` with every float32
    dataset stored as float16 (attributes, groups and other datasets copied as they are), and
    the magnitudes of the negligible values that became 0 (``to_float16``)."""
    import h5py

    out, flushed = io.BytesIO(), []
    with h5py.File(io.BytesIO(h5_bytes), "r") as src, h5py.File(out, "w") as dst:
        def copy(group_in, group_out):
            group_out.attrs.update(group_in.attrs)
            for key, item in group_in.items():
                if isinstance(item, h5py.Group):
                    copy(item, group_out.create_group(key))
                elif item.dtype == np.float32:
                    where = f"{WEIGHTS_MEMBER}:{item.name} (layer {_layer_of(item)!r})"
                    half, lost = to_float16(item[()], where)
                    group_out.create_dataset(key, data=half).attrs.update(item.attrs)
                    flushed.append(lost)
                else:
                    group_in.copy(item, group_out, name=key)

        copy(src, dst)
    return out.getvalue(), np.concatenate(flushed) if flushed else np.zeros(0, np.float32)


def rewrite_keras_file(src, dst):
    """Writes ``dst``: the ``.keras`` file ``src`` with float16 weights (``float16_weights``);
    the zip's other members, names, dates and compression are kept. ``dst`` may be ``src``
    (the rewrite is atomic). Returns the magnitudes of the values that became 0."""
    with zipfile.ZipFile(src) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    weights = [data for info, data in members if info.filename == WEIGHTS_MEMBER]
    if not weights:
        raise ValueError(f"{src}: no {WEIGHTS_MEMBER} in the archive (not a .keras file with "
                         f"its weights in one HDF5 file)")
    half, flushed = float16_weights(weights[0])
    with store.atomic_file(dst) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for info, data in members:
            archive.writestr(info, half if info.filename == WEIGHTS_MEMBER else data)
    return flushed


def stored_dtypes(path):
    """``{dtype name: number of values}`` of the weights stored in the ``.keras`` file."""
    import h5py

    counts = {}
    with zipfile.ZipFile(path) as archive, \
            h5py.File(io.BytesIO(archive.read(WEIGHTS_MEMBER)), "r") as h5:
        def count(_, item):
            if isinstance(item, h5py.Dataset):
                counts[str(item.dtype)] = counts.get(str(item.dtype), 0) + int(item.size)

        h5.visititems(count)
    return counts


# -- verification ----------------------------------------------------------------------

def _softmax(model, images, batch_size=256):
    import keras

    logits = np.concatenate([keras.ops.convert_to_numpy(model(images[i:i + batch_size],
                                                              training=False))
                             for i in range(0, len(images), batch_size)])
    return keras.ops.convert_to_numpy(keras.ops.softmax(logits.astype("float32"), axis=-1))


def compare_outputs(reference, candidate, images, labels=None):
    """How ``candidate``'s softmax outputs on ``images`` differ from ``reference``'s:
    ``max_softmax_diff``, ``changed_top1`` (and those of them that are not near-ties),
    ``top1_agreement``; with ``labels``, the accuracy of each."""
    p_ref, p_new = _softmax(reference, images), _softmax(candidate, images)
    top_ref, top_new = p_ref.argmax(-1), p_new.argmax(-1)
    best_two = np.sort(p_ref, axis=-1)[:, -2:]
    changed = top_ref != top_new
    out = {"images": int(len(images)),
           "max_softmax_diff": float(np.abs(p_ref - p_new).max()),
           "top1_agreement": float(1 - changed.mean()),
           "changed_top1": int(changed.sum()),
           "changed_top1_not_tied": int((changed & (best_two[:, 1] - best_two[:, 0]
                                                    > TIE_MARGIN)).sum())}
    if labels is not None:
        labels = np.asarray(labels)
        out["accuracy_float32"] = float(np.mean(top_ref == labels))
        out["accuracy_float16"] = float(np.mean(top_new == labels))
    return out


def check_close(diff, what):
    """``ValueError`` unless the ``compare_outputs`` result ``diff`` is within tolerance."""
    if diff["max_softmax_diff"] > MAX_SOFTMAX_DIFF or diff["changed_top1_not_tied"]:
        raise ValueError(
            f"{what}: the float16 weights change the outputs beyond tolerance on "
            f"{diff['images']} images: max |softmax difference| {diff['max_softmax_diff']:.4g} "
            f"(allowed {MAX_SOFTMAX_DIFF}), {diff['changed_top1_not_tied']} top-1 "
            f"prediction(s) changed where the float32 model's two best classes were more than "
            f"{TIE_MARGIN} apart; keep this model's weights in float32 "
            f"(weights_dtype='float32')")


def store_float16(src, dst, reference=None, check=None):
    """Rewrites the ``.keras`` file ``src`` as ``dst`` with float16 weights, verified, and
    returns the ``weights_storage`` record (``ValueError``, and no ``dst``, if a weight does
    not fit float16 or the outputs differ beyond tolerance).

    Args:
        reference: the model ``src`` holds, when it is already in memory (else loaded).
        check: optional real data to measure the change on as well, a dict with ``images``
            ([0, 255] pixels), ``data`` (what they are) and optional ``labels`` (then the
            accuracy before and after is recorded too); also held to the tolerance.
    """
    from keras_fer.models import load_model

    src, dst = Path(src), Path(dst)
    reference = reference if reference is not None else load_model(str(src))
    float32_bytes = src.stat().st_size
    # Keras loads only names ending in .keras: the candidate is written into a hidden folder
    # next to dst and renamed onto it once verified.
    folder = store.temporary_dir(dst)
    try:
        candidate = folder / dst.name
        flushed = rewrite_keras_file(src, candidate)
        rewritten = load_model(str(candidate))
        changed = [(v.path, v.dtype, w.dtype) for v, w in zip(reference.weights,
                                                              rewritten.weights)
                   if v.dtype != w.dtype]
        if changed or len(reference.weights) != len(rewritten.weights):
            raise ValueError(f"{src}: the float16 file loads with other variables than the "
                             f"float32 model (path, dtype before, after: {changed})")
        probe = compare_outputs(reference, rewritten,
                                probe_images(reference.input_shape[1:]))
        check_close(probe, f"{src} (probe)")
        storage = {"dtype": "float16", "float32_bytes": float32_bytes,
                   "bytes": candidate.stat().st_size, "probe": describe_probe(),
                   "max_softmax_diff": probe["max_softmax_diff"],
                   "top1_agreement": probe["top1_agreement"],
                   "flushed_to_zero": int(flushed.size),
                   "largest_flushed": float(flushed.max(initial=0)),
                   "tolerance": {"max_softmax_diff": MAX_SOFTMAX_DIFF,
                                 "top1_ties_within": TIE_MARGIN}}
        if check is not None:
            measured = compare_outputs(reference, rewritten, check["images"],
                                       check.get("labels"))
            check_close(measured, f"{src} ({check['data']})")
            storage["data_check"] = {"data": check["data"], **{
                k: v for k, v in measured.items() if k != "changed_top1_not_tied"}}
        os.replace(candidate, dst)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return storage
