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
