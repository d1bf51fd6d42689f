"""Copying timm (PyTorch) checkpoints into keras-fer models, without torch.

A checkpoint is a safetensors file (``timm.models.save_for_hf(model, dir,
safe_serialization=True)`` writes ``dir/model.safetensors``; ``safetensors.torch.save_file(
model.state_dict(), path)`` writes a plain one). It is read with the ``safetensors`` package in
NumPy mode, so users need neither torch nor timm to load ImageNet weights.

Layouts: PyTorch convolutions are (out, in, kh, kw) ("OIHW"), Keras ones (kh, kw, in, out);
depthwise convolutions are (channels * multiplier, 1, kh, kw) vs Keras (kh, kw, channels,
multiplier); linear layers are (out, in) vs Keras (in, out). BatchNorm maps weight/bias/
running_mean/running_var onto gamma/beta/moving_mean/moving_variance (the Keras layer must use
torch's epsilon, 1e-5, for equal outputs).

Every copy checks the shape and raises ``ValueError`` naming the checkpoint, the tensor and
the Keras layer, so a wrong file fails at the first mismatched tensor, not with NaN logits.
"""

import os
import warnings
from collections.abc import Mapping

import numpy as np

import keras

# Buffers that timm saves but Keras has no use for.
IGNORED_SUFFIXES = ("num_batches_tracked",)
# Wrappers that prefix every key (DataParallel, some fine-tuning scripts).
_STRIPPED_PREFIXES = ("module.", "model.")


class StateDict(Mapping):
    """A read-only name -> numpy array mapping that remembers which tensors were used.

    ``source`` (the file name, or a description) goes into every error message.
    """

    def __init__(self, tensors, source="<state dict>"):
        self._tensors = {k: np.asarray(v) for k, v in tensors.items()}
        self.source = str(source)
        self.used = set()

    def __getitem__(self, name):
        return self._tensors[name]

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self):
        return len(self._tensors)

    def take(self, name, layer_name):
        """The tensor ``name`` (marked as used); a clear error if the checkpoint lacks it."""
        if name not in self._tensors:
            raise ValueError(
                f"{self.source}: tensor {name!r} is missing (needed by Keras layer "
                f"{layer_name!r}); is this a checkpoint of the same architecture?")
        self.used.add(name)
        return self._tensors[name]

    def unused(self, ignore_prefixes=()):
        """Tensors never taken, minus bookkeeping buffers and ``ignore_prefixes``."""
        return sorted(
            k for k in self._tensors
            if k not in self.used and not k.endswith(IGNORED_SUFFIXES)
            and not any(k.startswith(p) for p in ignore_prefixes))


def load_state_dict(source):
    """A :class:`StateDict` from a safetensors file, a folder holding ``model.safetensors``
    (what ``timm.models.save_for_hf`` writes), or an in-memory mapping of arrays.

    A common wrapper prefix (``module.``, ``model.``) shared by every key is stripped.
    """
    if isinstance(source, StateDict):
        return source
    if isinstance(source, Mapping):
        return StateDict(_strip_prefix(dict(source)), "<state dict>")
    path = os.fspath(source)
    if os.path.isdir(path):
        path = os.path.join(path, "model.safetensors")
    if not os.path.exists(path):
        raise ValueError(f"weights file {path!r} does not exist")
    if not path.endswith(".safetensors"):
        raise ValueError(
            f"weights file {path!r} is not a .safetensors file; convert a torch checkpoint "
            "once with safetensors.torch.save_file(torch.load(path), 'model.safetensors')")
    from safetensors.numpy import load_file

    try:
        tensors = load_file(path)
    except Exception as err:  # corrupt file, bfloat16 tensors numpy cannot hold, ...
        raise ValueError(f"cannot read weights file {path!r}: {err}") from err
    return StateDict(_strip_prefix(tensors), path)


def _strip_prefix(tensors):
    for prefix in _STRIPPED_PREFIXES:
        if tensors and all(k.startswith(prefix) for k in tensors):
            return {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


# --- layout conversions ---------------------------------------------------------------------

def conv_kernel(weight):
    """(out, in, kh, kw) -> (kh, kw, in, out)."""
    return np.transpose(weight, (2, 3, 1, 0))


def depthwise_kernel(weight, channels):
    """(channels * multiplier, 1, kh, kw) -> (kh, kw, channels, multiplier)."""
    out, _, kh, kw = weight.shape
    return np.transpose(weight.reshape(channels, out // channels, kh, kw), (2, 3, 0, 1))


def linear_kernel(weight):
    """(out, in) -> (in, out)."""
    return np.transpose(weight)


def adapt_input_channels(kernel, in_channels):
    """A Keras conv kernel (kh, kw, 3, out) for ``in_channels`` input channels, as timm's
    ``adapt_input_conv`` does: summed over RGB for grey input (a grey image replicated to
    three channels gives the same response), tiled and rescaled for more channels."""
    have = kernel.shape[2]
    if have == in_channels:
        return kernel
    if in_channels == 1:
        return kernel.sum(axis=2, keepdims=True)
    reps = -(-in_channels // have)
    return np.tile(kernel, (1, 1, reps, 1))[:, :, :in_channels] * (have / in_channels)


def _assign(variable, value, sd, name, layer_name):
    value = np.asarray(value)
    expected = tuple(variable.shape)
    if tuple(value.shape) != expected:
        raise ValueError(
            f"{sd.source}: tensor {name!r} converts to shape {tuple(value.shape)}, but Keras "
            f"layer {layer_name!r} expects {expected}")
    variable.assign(value.astype(keras.backend.standardize_dtype(variable.dtype)))


# --- per-layer copies -----------------------------------------------------------------------

def copy_conv2d(layer, sd, prefix, adapt_input=False):
    """Conv2D <- ``prefix.weight`` (+ ``prefix.bias``). ``adapt_input`` lets a stem conv take
    RGB weights for a grey (or other) input, see :func:`adapt_input_channels`."""
    kernel = conv_kernel(sd.take(f"{prefix}.weight", layer.name))
    if adapt_input:
        kernel = adapt_input_channels(kernel, layer.kernel.shape[2])
    _assign(layer.kernel, kernel, sd, f"{prefix}.weight", layer.name)
    if layer.use_bias:
        _assign(layer.bias, sd.take(f"{prefix}.bias", layer.name), sd, f"{prefix}.bias",
                layer.name)


def copy_depthwise_conv2d(layer, sd, prefix):
    """DepthwiseConv2D <- a grouped torch conv with groups == channels."""
    name = f"{prefix}.weight"
    weight = sd.take(name, layer.name)
    channels = layer.kernel.shape[2]
    if weight.ndim != 4 or weight.shape[1] != 1 or weight.shape[0] % channels:
        raise ValueError(
            f"{sd.source}: tensor {name!r} of shape {weight.shape} is not a depthwise kernel "
            f"for Keras layer {layer.name!r} with {channels} channels")
    _assign(layer.kernel, depthwise_kernel(weight, channels), sd, name, layer.name)
    if layer.use_bias:
        _assign(layer.bias, sd.take(f"{prefix}.bias", layer.name), sd, f"{prefix}.bias",
                layer.name)


def copy_batch_norm(layer, sd, prefix):
    """BatchNormalization <- BatchNorm2d/1d (affine parameters and running statistics)."""
    pairs = [("running_mean", layer.moving_mean), ("running_var", layer.moving_variance)]
    if layer.scale:
        pairs.append(("weight", layer.gamma))
    if layer.center:
        pairs.append(("bias", layer.beta))
    for suffix, variable in pairs:
        name = f"{prefix}.{suffix}"
        _assign(variable, sd.take(name, layer.name), sd, name, layer.name)


def copy_dense(layer, sd, prefix):
    """Dense <- Linear."""
    _assign(layer.kernel, linear_kernel(sd.take(f"{prefix}.weight", layer.name)), sd,
            f"{prefix}.weight", layer.name)
    if layer.use_bias:
        _assign(layer.bias, sd.take(f"{prefix}.bias", layer.name), sd, f"{prefix}.bias",
                layer.name)


def copy_layer_norm(layer, sd, prefix):
    """LayerNormalization <- LayerNorm."""
    if layer.scale:
        _assign(layer.gamma, sd.take(f"{prefix}.weight", layer.name), sd, f"{prefix}.weight",
                layer.name)
    if layer.center:
        _assign(layer.beta, sd.take(f"{prefix}.bias", layer.name), sd, f"{prefix}.bias",
                layer.name)


# DepthwiseConv2D first, in case a Keras version makes it a Conv2D subclass.
_COPIERS = (
    (keras.layers.DepthwiseConv2D, copy_depthwise_conv2d),
    (keras.layers.Conv2D, copy_conv2d),
    (keras.layers.BatchNormalization, copy_batch_norm),
    (keras.layers.Dense, copy_dense),
    (keras.layers.LayerNormalization, copy_layer_norm),
)


def copy_layer(layer, sd, prefix):
    """Dispatches on the layer type; ``ValueError`` for a type with no known copy."""
    for cls, copier in _COPIERS:
        if isinstance(layer, cls):
            return copier(layer, sd, prefix)
    raise ValueError(f"no timm conversion for Keras layer {layer.name!r} of type "
                     f"{type(layer).__name__}")


def copy_by_name(model, sd, skip=(), input_convs=(), ignore_prefixes=(), strict=True):
    """Copies every weighted layer of ``model`` from the tensor prefix equal to its name.

    For models whose layer names are timm module paths (keras-fer's own CNNs name their layers
    ``layer1.0.conv1``, ``blocks.2.1.conv_dw``, ...), so conversion needs no table.

    Args:
        skip: predicate or collection of layer names with no timm counterpart (e.g. inserted
            attention modules); they keep their own initial weights.
        input_convs: names of convolutions that see the image (their input channels are
            adapted, e.g. summed over RGB for grey input).
        ignore_prefixes: checkpoint tensors allowed to stay unused (e.g. a classifier head
            that is loaded separately).
        strict: raise if the checkpoint holds tensors no layer took (a deeper model's
            checkpoint would otherwise load "successfully" into a shallower one).
    """
    skip_fn = skip if callable(skip) else (lambda name, names=frozenset(skip): name in names)
    for layer in model.layers:
        if not layer.weights or skip_fn(layer.name):
            continue
        if layer.name in input_convs:
            copy_conv2d(layer, sd, layer.name, adapt_input=True)
        else:
            copy_layer(layer, sd, layer.name)
    if strict:
        left = sd.unused(ignore_prefixes)
        if left:
            more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
            raise ValueError(
                f"{sd.source}: tensor {left[0]!r}{more} matches no layer of "
                f"{model.name!r}; is this a checkpoint of a different architecture?")


def copy_classifier_head(dense, sd, prefix, mode="auto"):
    """Copies ``prefix.weight``/``prefix.bias`` into the classifier's output Dense.

    ``mode``: "auto" copies when the checkpoint has a head of the same number of classes and
    leaves the fresh head otherwise (an ImageNet checkpoint's 1000-way head is useless for 7
    expressions); True requires it; False never copies. Returns whether it was copied.
    """
    if mode not in ("auto", True, False):
        raise ValueError(f"head must be 'auto', True or False, got {mode!r}")
    if mode is False:
        return False
    name = f"{prefix}.weight"
    present = name in sd
    matches = present and tuple(sd[name].shape[::-1]) == tuple(dense.kernel.shape)
    if mode == "auto" and not matches:
        return False
    copy_dense(dense, sd, prefix)
    return True


def warn_skipped(what, weights):
    """A warning about layers a checkpoint does not fill, naming the checkpoint."""
    source = weights.source if isinstance(weights, StateDict) else (
        "<state dict>" if isinstance(weights, Mapping) else os.fspath(weights))
    warnings.warn(f"{source}: {what}", stacklevel=3)


def load_named_checkpoint(model, weights, head_prefix, input_convs=(), skip=(),
                          ignore_prefixes=(), load_head="auto"):
    """Loads a timm checkpoint into ``model`` whose backbone layers carry timm's names.

    ``model`` is a ``FERClassifier`` (its ``backbone`` is loaded by name and its
    ``predictions`` Dense from ``head_prefix``, see :func:`copy_classifier_head`) or a bare
    backbone. All or nothing: if any tensor is missing or mismatched, the model's weights are
    restored and the ``ValueError`` propagates. Returns whether the head was loaded.
    """

    def copy_backbone(backbone, sd):
        copy_by_name(backbone, sd, skip=skip, input_convs=input_convs, strict=False)

    return load_checkpoint(model, weights, copy_backbone, head_prefix=head_prefix,
                           load_head=load_head, ignore_prefixes=ignore_prefixes)


# --- keras-fer transformer blocks (keras_fer.models.transformer_blocks) ----------------------

def copy_variable(variable, sd, name, layer_name, transform=None):
    """One raw variable (a class token, a position table...) <- tensor ``name``, optionally
    passed through ``transform`` (e.g. a reshape) first; shape-checked like every copy."""
    value = sd.take(name, layer_name)
    if transform is not None:
        try:
            value = transform(value)
        except Exception as err:  # a reshape that cannot fit: name the tensor, not numpy
            raise ValueError(f"{sd.source}: tensor {name!r} of shape {np.shape(value)} does "
                             f"not fit Keras layer {layer_name!r}: {err}") from err
    _assign(variable, value, sd, name, layer_name)


def copy_group_norm(layer, sd, prefix):
    """GroupNormalization <- GroupNorm (same groups; the Keras layer must use torch's eps)."""
    copy_layer_norm(layer, sd, prefix)


def copy_transformer_block(block, sd, prefix):
    """``TransformerBlock`` (norm1, attn.qkv/proj, norm2, mlp.fc1/fc2) <- timm ``Block``."""
    copy_layer_norm(block.norm1, sd, f"{prefix}.norm1")
    copy_dense(block.attn.qkv, sd, f"{prefix}.attn.qkv")
    copy_dense(block.attn.proj, sd, f"{prefix}.attn.proj")
    copy_layer_norm(block.norm2, sd, f"{prefix}.norm2")
    copy_dense(block.mlp.fc1, sd, f"{prefix}.mlp.fc1")
    copy_dense(block.mlp.fc2, sd, f"{prefix}.mlp.fc2")


def resample_position_embedding(table, old_grid, new_grid):
    """A (old_h * old_w, D) position table resampled to ``new_grid`` the way timm's
    ``resample_abs_pos_embed`` does when a checkpoint meets another input size: 2-D bicubic
    with antialiasing (``F.interpolate(..., antialias=True)``), computed here with NumPy."""
    from keras_fer.models.transformer_blocks import bicubic_resize_matrix

    (oh, ow), (nh, nw) = tuple(old_grid), tuple(new_grid)
    if (oh, ow) == (nh, nw):
        return table
    grid = np.asarray(table, dtype=np.float64).reshape(oh, ow, -1)
    rows = bicubic_resize_matrix(oh, nh, antialias=True)
    cols = bicubic_resize_matrix(ow, nw, antialias=True)
    out = np.einsum("ih,jw,hwd->ijd", rows, cols, grid)
    return out.reshape(nh * nw, -1).astype(np.asarray(table).dtype)


def load_checkpoint(model, weights, copy_backbone, head_prefix="head", load_head="auto",
                    ignore_prefixes=()):
    """All-or-nothing loading with a family's own ``copy_backbone(backbone, sd)`` function.

    For models whose layers do not carry timm's names (keras-hub backbones, composite
    transformer blocks). ``model`` is a ``FERClassifier`` or a bare backbone; the head is
    handled by :func:`copy_classifier_head`. Any checkpoint tensor left unused (outside the
    head and ``ignore_prefixes``) is an error, and on any error the weights are restored.
    Returns whether the head was loaded.
    """
    sd = load_state_dict(weights)
    backbone = getattr(model, "backbone", model)
    backup = [v.numpy() for v in model.weights]
    try:
        head_loaded = False
        if backbone is not model:
            head_loaded = copy_classifier_head(model.get_layer("predictions"), sd,
                                               head_prefix, load_head)
        copy_backbone(backbone, sd)
        left = sd.unused(tuple(ignore_prefixes) + (f"{head_prefix}.",))
        if left:
            more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
            raise ValueError(
                f"{sd.source}: tensor {left[0]!r}{more} matches no layer of "
                f"{backbone.name!r}; is this a checkpoint of a different architecture?")
    except Exception:
        for variable, value in zip(model.weights, backup):
            variable.assign(value)
        raise
    return head_loaded


def fit_position_embedding(value, grid, num_prefix_tokens=1):
    """A timm position table (1, prefix + N, D) for a ``grid`` of patches: unchanged when N
    already matches, else the (square) checkpoint grid is resampled with
    :func:`resample_position_embedding`; class-token positions are kept as they are."""
    value = np.asarray(value)
    flat = value.reshape(-1, value.shape[-1])
    prefix, patches = flat[:num_prefix_tokens], flat[num_prefix_tokens:]
    old = int(round(len(patches) ** 0.5))
    if old * old != len(patches) or (old, old) == tuple(grid):
        return flat[None]
    resampled = resample_position_embedding(patches, (old, old), grid)
    return np.concatenate([prefix, resampled], axis=0)[None]
