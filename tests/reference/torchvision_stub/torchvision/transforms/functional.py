from torchvision.transforms import InterpolationMode  # noqa: F401


def __getattr__(name):
    def _unavailable(*args, **kwargs):
        raise NotImplementedError(f"torchvision stub: transforms.functional.{name}")

    return _unavailable
