"""Reading photos safely: any common mode (16-bit, CMYK, RGBA, palette), EXIF orientation
honoured, and a pixel limit against decompression bombs, each failure a clear ImageError."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .argtypes import MAX_PIXELS
from .userfiles import require_file

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def sample_photo() -> Path:
    """The photo that ships with ferkit (one face; ``samples/README.md`` says where it is from)."""
    from importlib.resources import files

    return Path(str(files("ferkit") / "samples" / "astronaut.jpg"))


class ImageError(ValueError):
    """An input that cannot be used as a photo (unreadable, truncated, too large, ...)."""


def load_image(src, color: str = "rgb", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Any supported input -> RGB uint8 (H, W, 3), upright as the EXIF orientation says.

    ``color`` says how to read a 3-channel numpy array: ``rgb`` or ``bgr`` (OpenCV's order).
    """
    if isinstance(src, np.ndarray):
        return _from_array(src, color)
    from PIL import Image

    if isinstance(src, Image.Image):
        return _from_pil(src, max_pixels)
    if isinstance(src, bytes | bytearray | memoryview):
        fh, name = io.BytesIO(bytes(src)), "<bytes>"
    elif isinstance(src, str | os.PathLike):
        fh, name = require_file(src, error=ImageError), str(src)
    else:
        raise ImageError(f"cannot read an image from a {type(src).__name__}")
    with open_image(fh, name) as im:
        return _from_pil(im, max_pixels)


def load_grey(src, color: str = "rgb", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``to_grey(load_image(src))`` (grey uint8 (H, W)), the same pixels, without the RGB copy
    where PIL converts directly: an 8.8-megapixel JPEG needs 9 MB instead of about 80, which
    is what a server decoding several large uploads at once holds."""
    if isinstance(src, np.ndarray):
        if src.ndim == 2 and src.dtype == np.uint8:
            return src  # grey already: luma of (g, g, g) is g
        return to_grey(_from_array(src, color))
    if isinstance(src, bytes | bytearray | memoryview):
        fh, name = io.BytesIO(bytes(src)), "<bytes>"
    elif isinstance(src, str | os.PathLike):
        fh, name = require_file(src, error=ImageError), str(src)
    else:
        return to_grey(load_image(src, color, max_pixels))
    with open_image(fh, name) as im:
        if im.mode not in ("RGB", "L"):  # alpha, 16-bit, palette, CMYK: the RGB path's rules
            return to_grey(_from_pil(im, max_pixels))
        return np.asarray(_decoded_upright(im, max_pixels).convert("L"))


def image_pixels(data: bytes | bytearray | memoryview) -> int:
    """The pixel count an encoded image states in its header (0 when it cannot be read: the
    decoding that follows says why), without decoding it."""
    try:
        with open_image(io.BytesIO(bytes(data)), "<bytes>") as im:
            w, h = im.size
            return w * h
    except ImageError:
        return 0


@contextlib.contextmanager
def open_image(fh, name: str) -> Iterator:
    """``PIL.Image.open`` with PIL's decompression-bomb guard made an error, and every failure
    inside the block (opening or decoding) an ImageError naming ``name``."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh) as im:
                yield im
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{name}: refused as a decompression bomb ({e})") from None
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a folder") from None
    except Image.UnidentifiedImageError:  # its message holds the repr of our file object
        raise ImageError(f"{name}: unreadable image (not a format PIL recognises)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{name}: unreadable image ({e})") from None


def _decoded_upright(im, max_pixels: int):
    """``im`` checked against ``max_pixels``, decoded (a truncated file fails here) and turned
    upright as its EXIF orientation says; no copy when it already is."""
    from PIL import ImageOps

    w, h = im.size
    if w * h > max_pixels:
        raise ImageError(
            f"image is {w}x{h} = {w * h / 1e6:.1f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.0f} (a decompression-bomb guard)"
        )
    im.load()
    if im.getexif().get(0x0112, 1) in (1, None):  # Orientation: already upright
        return im
    return ImageOps.exif_transpose(im)


def _from_pil(im, max_pixels: int) -> np.ndarray:
    from PIL import Image

    im = _decoded_upright(im, max_pixels)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        a = a / 257.0 if a.max(initial=0) > 255 else a
        return np.repeat(np.clip(a, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = 255 * a if a.max(initial=0) <= 1.0 else a
        return np.repeat(np.clip(a, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _from_array(a: np.ndarray, color: str) -> np.ndarray:
    if color not in ("rgb", "bgr", "grey", "gray"):
        raise ValueError(f"color must be 'rgb', 'bgr' or 'grey', not {color!r}")
    if a.dtype == np.uint16:
        a = (a / 257).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a * (255.0 if a.max(initial=0) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=2)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[..., :3]
        return np.ascontiguousarray(a[..., ::-1] if color == "bgr" else a)
    if a.ndim == 3 and a.shape[2] == 1:
        return np.repeat(a, 3, axis=2)
    raise ImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), not {a.shape}")


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, by PIL's ``convert('L')`` (fixed point: ~6x faster than numpy floats)."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).convert("L"))


def as_grey(image: np.ndarray) -> np.ndarray:
    """A decoded image in grey: a grey one (H, W) as it is, an RGB one through :func:`to_grey`."""
    return image if image.ndim == 2 else to_grey(image)
