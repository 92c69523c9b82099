"""One rule for turning image files and PIL images into model input: what a viewer shows, as 8-bit RGB.

Every entry point (the ``mask-generation`` pipeline, video frames from folders or lists, the CLI and the
demo) reads images through :func:`load_rgb`, :func:`read_image_file` / :func:`pil_to_rgb`, so:

* the EXIF orientation of phone photos is applied (as ``PIL.ImageOps.exif_transpose``), and prompts,
  masks and sizes all refer to the image as displayed;
* 16-bit images (greyscale PNG/TIFF) are scaled to 8 bits (``value / 257``), not clipped to white;
* palette, greyscale and alpha images become RGB; float images are refused with the fix to apply;
* unreadable files (missing, empty, not an image, truncated) raise ``ValueError`` naming the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

#: PIL modes holding 16-bit samples (``"I"`` is how older Pillow versions open 16-bit greyscale PNGs).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")

#: Strings read by transformers' ``load_image`` (URLs and ``data:`` URIs); any other string is a file path.
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|data:image/)")


def pil_to_rgb(image, where: str = "image") -> np.ndarray:
    """A PIL image as displayed (EXIF orientation applied) -> contiguous ``(H, W, 3)`` uint8 RGB array."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(f"{where} holds 32-bit integer values outside 0..65535; give an 8-bit or 16-bit image")
        grey = np.rint(values / 257.0).astype(np.uint8)
        array = np.repeat(grey[..., None], 3, axis=-1)
    elif image.mode == "F":
        raise ValueError(
            f"{where} holds floating-point pixels (PIL mode 'F'); convert it to 8 bits first, e.g. "
            "Image.fromarray((np.clip(values, 0, 1) * 255).round().astype(np.uint8))"
        )
    else:
        array = np.asarray(image.convert("RGB"))
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{where} is empty (size {array.shape[:2]})")
    return np.ascontiguousarray(array)


def _open_file(path, where: str | None, decode: bool):
    from PIL import Image

    path = Path(os.fspath(path))
    where = where or f"image file {str(path)!r}"
    if not path.is_file():
        raise ValueError(f"{where} does not exist" if not path.exists() else f"{where} is not a file")
    try:
        with Image.open(path) as image:
            if not decode:
                return None
            image.load()
            return pil_to_rgb(image, where)
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        detail = "the file is empty" if path.stat().st_size == 0 else str(error)
        raise ValueError(f"could not read {where}: {detail}. Accepted: image files Pillow can open (JPEG, PNG, ...)") from None


def read_image_file(path, where: str | None = None) -> np.ndarray:
    """Read an image file as displayed: ``(H, W, 3)`` uint8 RGB; ValueError naming the file otherwise."""
    return _open_file(path, where, decode=True)


def check_image_file(path, where: str | None = None) -> None:
    """Check that ``path`` is an image file Pillow can open (its header only: nothing is decoded); ValueError
    naming the file otherwise. Truncated pixel data is found when the image is read."""
    _open_file(path, where, decode=False)


def load_rgb(image, timeout: float | None = None) -> np.ndarray:
    """Load an image (path, URL, PIL image, or ``(H, W)`` / ``(H, W, 3|4)`` uint8 array) as ``(H, W, 3)`` uint8 RGB.

    Files and PIL images follow the rules above; a string is a file path unless it is a URL or a
    ``data:image/...;base64,`` URI (a missing file is reported as such). ``timeout`` bounds the download of
    a URL (seconds), as in transformers' ``load_image``.
    """
    import torch

    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise ValueError(
                f"an image array must be uint8 with shape (H, W), (H, W, 3) or (H, W, 4); got {image.dtype} {image.shape}"
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"the image is empty (size {image.shape[:2]})")
        if image.ndim == 2:
            return np.repeat(image[..., None], 3, axis=-1)
        return np.ascontiguousarray(image[..., :3])
    if isinstance(image, os.PathLike) or (isinstance(image, str) and not _URL.match(image)):
        return read_image_file(image)
    if isinstance(image, str):
        from transformers.image_utils import load_image

        try:
            image = load_image(image, timeout=timeout)
        except (TypeError, ValueError, OSError) as error:
            raise ValueError(f"could not read the image at {image!r} ({error})") from None
    if not hasattr(image, "convert"):
        raise ValueError(
            f"could not read the image: got {type(image).__name__}; accepted: a path, a URL, a PIL image or a uint8 array"
        )
    return pil_to_rgb(image)
