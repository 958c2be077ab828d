"""Photographs for the zoo's image models, from the sample images inside scikit-image's wheel.

``skimage.data`` ships a handful of real photographs in the package itself (no download): a
tabby cat ("chelsea"), an astronaut portrait, a cup of coffee, a rocket on its launch pad and
the grayscale "cameraman". Each is resized to the model's input with scikit-image's
anti-aliased resize (a Gaussian low-pass before interpolation, so shrinking a 512-pixel photo to
32 pixels does not alias), keeping the whole frame as the VWW dataset was built ("96x96 images
resized with antialias filtering, no aspect ratio preservation"). Grayscale becomes RGB by
repeating the channel.

Input encodings follow each model's training code in its archive: the CIFAR-10 ResNet takes
int8 ``pixel - 128`` (trained on ``(x - 128) / 128`` with input scale 1/128, zero point 0); the
VWW MobileNet takes float32 pixels in 0-255 and quantizes them itself (scale 1, zero point -128).
"""

import numpy as np

from ..errors import ToolchainError

#: (skimage.data function, what the photo shows, CIFAR-10 class or None, has a person)
PHOTOS = [
    ("chelsea", "tabby cat (skimage 'chelsea')", "cat", False),
    ("astronaut", "astronaut portrait (skimage 'astronaut')", None, True),
    ("camera", "man with a camera, grayscale (skimage 'camera')", None, True),
    ("coffee", "cup of coffee (skimage 'coffee')", None, False),
    ("rocket", "rocket on its launch pad (skimage 'rocket')", None, False),
]


def _skimage():
    try:
        import skimage.data  # pylint: disable=import-outside-toplevel
        import skimage.transform  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise ToolchainError(
            "sample images need scikit-image: pip install 'tvm-intermittent[test]'"
        ) from err
    return skimage


def photo(name, size):
    """The named photo as float pixels in [0, 255], shape ``[size, size, 3]``."""
    skimage = _skimage()
    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3].astype(np.float64)
    resized = skimage.transform.resize(
        image, (size, size), order=1, anti_aliasing=True, preserve_range=True
    )
    return np.clip(np.round(resized), 0, 255)


def cifar_input(name):
    """int8 ``[1, 32, 32, 3]`` input of the CIFAR-10 ResNet: ``pixel - 128``."""
    return (photo(name, 32) - 128).astype(np.int8)[None]


def vww_input(name):
    """float32 ``[1, 96, 96, 3]`` input of the person detector: pixels in 0-255."""
    return photo(name, 96).astype(np.float32)[None]
