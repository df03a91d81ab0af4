"""The shared real photos the scenario clips are cut from: where they are, crops, background.

The photos come from a shared directory (`resolve_images_dir`): an explicit path, else the
``GUANJIA_TESTDATA_DIR`` environment variable, else where `guanjia.assets` keeps them (a mirror
such as ``../shared/testdata/images`` beside the checkout). Crops (see SOURCE.txt there):

- ``car``: the saloon in 000000423617 (yolox_nano: car 0.81 when pasted here),
- ``moto``: the motorcycle and rider of 000000165518 with its foggy surroundings (the model
  needs that context to see the motorcycle at all),
- ``bicycle``: the bicycle (with the dog) of dog.jpg,
- ``person``: a pedestrian of 000000183709,
- ``van``: drawn, not a photo (a large occluder the model does not track).

Importing this module needs neither OpenCV nor numpy: both are imported when a photo is first
read. Decoded photos are cached per directory.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Image: TypeAlias = npt.NDArray[np.uint8]

ENV_VAR = "GUANJIA_TESTDATA_DIR"
W, H = 640, 480
"""The clips' frame size; the background is resized to it."""
_BACKGROUND = "000000231460.jpg"

_CROPS: dict[str, tuple[str, tuple[int, int, int, int], int, float]] = {
    # name: (file, box x1 y1 x2 y2, margin px, scale)
    "car": ("000000423617.jpg", (127, 295, 268, 400), 4, 1.0),
    "moto": ("000000165518.jpg", (253, 260, 427, 512), 60, 0.8),
    "bicycle": ("dog.jpg", (52, 137, 572, 424), 4, 0.6),
    "person": ("000000183709.jpg", (304, 192, 482, 637), 4, 0.5),
}


class ScenesError(FileNotFoundError):
    """The shared photos are not where we looked; the message says where and why there."""


def needed_photos() -> set[str]:
    """The file names of every photo the clips are cut from."""
    return {_BACKGROUND} | {file for file, *_ in _CROPS.values()}


def resolve_images_dir(explicit: Path | None = None) -> Path:
    """The directory of shared photos the clips are pasted from.

    Order: `explicit` if given (no fallback), else ``$GUANJIA_TESTDATA_DIR``, else where
    `guanjia.assets` keeps them (a mirror such as ``../shared/testdata/images`` beside the
    checkout, or the user cache; never downloads here). Raises `ScenesError` naming the path,
    where the choice came from, and the files that are missing.
    """
    if explicit is not None:
        candidate, how = Path(explicit), "explicit argument"
    elif os.environ.get(ENV_VAR):
        candidate, how = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        from guanjia.assets import AssetError, ensure_photos

        try:
            return ensure_photos(download=False)
        except AssetError as exc:
            raise ScenesError(
                f"scenario photos: {exc} (or run `guanjia model fetch demo-photos`)"
            ) from None
    if not candidate.is_dir():
        raise ScenesError(
            f"scenario photos directory {candidate} (from {how}) does not exist; "
            f"set {ENV_VAR} or pass the directory explicitly"
        )
    missing = sorted(name for name in needed_photos() if not (candidate / name).is_file())
    if missing:
        raise ScenesError(
            f"scenario photos directory {candidate} (from {how}) lacks {', '.join(missing)}"
        )
    return candidate


def read_photo(path: Path) -> Image:
    """A photo of the shared directory as BGR uint8; `ScenesError` if it cannot be decoded."""
    import cv2
    import numpy as np

    image = cv2.imread(str(path))
    if image is None:
        raise ScenesError(f"cannot decode scenario photo {path}")
    return np.asarray(image, dtype=np.uint8)


def resize(image: Image, size: tuple[int, int]) -> Image:
    """`image` resized to `size` (width, height) with area averaging: the clips' one resize."""
    import cv2
    import numpy as np

    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def background(images_dir: Path | None = None) -> Image:
    """The street of 000000231460 at 640x480 (a parked car at its right stays in every frame)."""
    # Resolved on every call (a few stat calls) so a changed $GUANJIA_TESTDATA_DIR is honoured.
    return cached_background(resolve_images_dir(images_dir))


def crop(name: str, images_dir: Path | None = None) -> Image:
    """One object crop (``car``, ``moto``, ``bicycle``, ``person``), scaled for the scene."""
    return cached_crop(name, resolve_images_dir(images_dir))


@cache
def cached_background(images_dir: Path) -> Image:
    """`background` of an already resolved directory (callers drawing many frames)."""
    import cv2
    import numpy as np

    image = read_photo(images_dir / _BACKGROUND)
    return np.ascontiguousarray(cv2.resize(image, (W, H), interpolation=cv2.INTER_AREA))


@cache
def cached_crop(name: str, images_dir: Path) -> Image:
    """`crop` from an already resolved directory (callers drawing many frames)."""
    import cv2
    import numpy as np

    if name == "van":
        return _van()
    file, (x1, y1, x2, y2), m, scale = _CROPS[name]
    image = read_photo(images_dir / file)
    piece = image[max(0, y1 - m) : y2 + m, max(0, x1 - m) : x2 + m]
    return np.ascontiguousarray(cv2.resize(piece, None, fx=scale, fy=scale))


def _van() -> Image:
    """A flat-sided van body seen side-on (drawn, not a photo): a large occluder.

    The model does not take it for a vehicle (it has no wheels or perspective), which is what
    an occlusion test needs: something that hides a parked object without being tracked.
    """
    import cv2
    import numpy as np

    van = np.full((170, 260, 3), (205, 200, 190), dtype=np.uint8)
    for i, x in enumerate(range(14, 246, 58)):
        cv2.rectangle(van, (x, 18), (x + 44, 70), (70 + 9 * i, 60, 50), -1)
    cv2.rectangle(van, (0, 96), (259, 112), (40, 120, 200), -1)  # the company stripe
    cv2.rectangle(van, (0, 0), (259, 169), (90, 90, 90), 3)
    return van
