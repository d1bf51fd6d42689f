"""Every layer inside a model, nested models and keras-hub backbones included."""


def iter_layers(model):
    """Yields ``model`` and every layer below it once (depth-first)."""
    seen, stack = set(), [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        stack.extend(getattr(layer, "layers", None) or [])
        stack.extend(getattr(layer, "_layers", None) or [])


def weighted_leaves(model):
    """``{path: layer}`` for every layer below ``model`` that holds weights of its own (no
    sub-layers), the path being the names from below ``model`` down to it joined by "/":
    sub-layers are named only within their parent (every attention module has a
    "pointwise"), so the path is what identifies a layer across two builds of a network."""
    found, stack = {}, [(model, "")]
    while stack:
        layer, path = stack.pop()
        children = list(getattr(layer, "layers", None) or getattr(layer, "_layers", None) or [])
        if not children:
            if layer.weights:
                found.setdefault(path, layer)
            continue
        for child in children:
            stack.append((child, f"{path}/{child.name}" if path else child.name))
    return found
