"""Every registered architecture through the shared harness, at the tiny size its spec carries.

``ArchitectureSpec.test_options`` (set by each family's ``register_family`` call) are the
``create_model`` keywords of a small, quick model of the architecture; each one goes through
``keras_fer.testing.run_model_test`` (output shape, config, ``.keras`` round trip, SavedModel
export, one training step), is rebuilt from its ``arch_options``, and runs a forward pass under
the ``mixed_bfloat16`` policy. Architectures whose spec says ``test_slow`` (the library CNNs,
which have no tiny size, and the variants whose tiny model is their family's first one with
other normalisation constants) run in the slow suite only.
"""

import numpy as np
import pytest

import keras

from keras_fer.models import create_model, get_architecture, list_architectures
from keras_fer.testing import run_model_test


def _params(slow_for):
    return [pytest.param(arch, marks=pytest.mark.slow) if slow_for(get_architecture(arch))
            else arch for arch in list_architectures()
            if get_architecture(arch).family != "test"]  # other modules' throwaway ones


def _plain(value):
    """Tuples as lists, at any depth (``arch_options`` hold what JSON can)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _tiny(arch, batch=2):
    """``arch`` built with its spec's test options, a batch of pixels for it, the options."""
    spec = get_architecture(arch)
    options = dict(spec.test_options)
    shape = tuple(options.pop("input_shape", spec.default_input_shape))
    model = create_model(arch, num_classes=7, input_shape=shape, **options)
    x = np.random.default_rng(0).uniform(0, 255, (batch,) + shape).astype("float32")
    return model, x, options


def test_every_architecture_has_test_options():
    # Family "test": architectures other test modules register for themselves.
    for arch in (a for a in list_architectures() if get_architecture(a).family != "test"):
        options = get_architecture(arch).test_options
        assert len(options.get("input_shape", ())) == 3, arch


@pytest.mark.parametrize("arch", _params(lambda spec: spec.test_slow))
def test_architecture_passes_the_harness(arch):
    model, x, options = _tiny(arch)
    assert model.arch == arch
    assert model.input_shape == (None,) + x.shape[1:] and model.output_shape == (None, 7)
    for key, value in options.items():
        assert _plain(model.arch_options[key]) == _plain(value), key
    single = model(x[:1]).numpy()
    assert single.shape == (1, 7) and np.all(np.isfinite(single))
    np.testing.assert_allclose(single, model(x).numpy()[:1], atol=1e-4)  # batch-independent
    rebuilt = create_model(arch, num_classes=7, input_shape=x.shape[1:], **model.arch_options)
    assert rebuilt.count_params() == model.count_params()
    run_model_test(model, x)


@pytest.fixture
def mixed_bfloat16():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    yield
    keras.config.set_dtype_policy(policy)


@pytest.mark.parametrize("arch", _params(lambda spec: spec.test_slow))
def test_mixed_bfloat16_forward_is_finite(arch, mixed_bfloat16):
    model, x, _ = _tiny(arch)
    logits = keras.ops.convert_to_numpy(keras.ops.cast(model(x), "float32"))
    assert logits.shape == (2, 7) and np.all(np.isfinite(logits))
