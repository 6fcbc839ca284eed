"""Turning whatever a user hands us (paths, PIL images, numpy arrays) into normalized tensors.

Every failure names the input and says what is wrong: a missing file, a file that is not an
image, a truncated file, an array of the wrong shape. Odd modes (RGBA, palette, 16-bit, CMYK,
grayscale) are converted; transparency is flattened onto white. Files and PIL images are turned
upright by their EXIF orientation, as every photo viewer shows them (phone photos are often stored
sideways with an orientation tag).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]

MAX_PIXELS = 20_000 * 20_000  # refuse larger (decompression bombs); 10000x10000 works


class ImageInputError(ValueError):
    """An image input is unusable; the message names which one and why."""


def _describe(item: Any, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return f"image #{index} ({os.fspath(item)!r})"
    return f"image #{index} ({type(item).__name__})"


def open_image(item: ImageInput, index: int = 0) -> Image.Image:
    """Return a fully decoded RGB PIL image, or raise ImageInputError naming the input."""
    where = _describe(item, index)
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.exists():
            raise ImageInputError(f"{where}: file does not exist")
        if path.is_dir():
            raise ImageInputError(f"{where}: is a folder, not an image file")
        try:
            with warnings.catch_warnings():  # our own MAX_PIXELS check below replaces PIL's bomb warning
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(path)
            if img.width * img.height > MAX_PIXELS:
                raise ImageInputError(f"{where}: {img.width}x{img.height} is over the {MAX_PIXELS:,} pixel limit")
            img.draft("RGB", (1024, 1024))  # JPEG: decode at reduced scale, much faster for huge photos
            img.load()
        except UnidentifiedImageError:
            raise ImageInputError(f"{where}: not a readable image file") from None
        except Image.DecompressionBombError as err:  # PIL refuses before we can read the size ourselves
            raise ImageInputError(f"{where}: too many pixels to decode safely ({err})") from None
        except (OSError, SyntaxError) as err:
            raise ImageInputError(f"{where}: damaged or truncated image ({err})") from None
    elif isinstance(item, Image.Image):
        img = item
        try:
            img.load()
        except OSError as err:
            raise ImageInputError(f"{where}: damaged or truncated image ({err})") from None
    elif isinstance(item, np.ndarray):
        img = _from_array(item, where)
    elif item is None:
        raise ImageInputError(f"{where}: got None instead of an image")
    else:
        raise ImageInputError(f"{where}: expected a path, PIL.Image or numpy array, got {type(item).__name__}")
    if img.width < 1 or img.height < 1:
        raise ImageInputError(f"{where}: has no pixels ({img.width}x{img.height})")
    try:
        return to_rgb(upright(img))
    except ImageInputError as err:
        raise ImageInputError(f"{where}: {err}") from None
    except ValueError as err:  # a mode PIL cannot convert
        raise ImageInputError(f"{where}: PIL image mode {img.mode!r} cannot be converted to RGB ({err})") from None


EXIF_ORIENTATION = 0x0112  # 1 = upright; 2-8 = mirrored and/or rotated by 90/180/270 degrees


def upright(img: Image.Image) -> Image.Image:
    """The image as viewers display it: its EXIF orientation applied (a no-op without a tag).

    Damaged EXIF data is metadata, not pixels: the image is kept as stored rather than refused.
    """
    try:
        orientation = img.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # PIL raises many types on malformed EXIF blocks
        return img
    if not isinstance(orientation, int) or not 2 <= orientation <= 8:  # 1 (upright), missing or junk
        return img
    return ImageOps.exif_transpose(img)


def _from_array(arr: np.ndarray, where: str) -> Image.Image:
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageInputError(f"{where}: array shape {arr.shape} is not (h, w), (h, w, 3) or (h, w, 4)")
    if arr.size == 0:
        raise ImageInputError(f"{where}: array is empty {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageInputError(f"{where}: float array contains NaN or inf")
        try:
            arr = float_to_uint8(arr)
        except ImageInputError as err:
            raise ImageInputError(f"{where}: {err}") from None
    elif arr.dtype == np.uint16:
        arr = sixteen_bit_to_uint8(arr)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        raise ImageInputError(f"{where}: unsupported array dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    return Image.fromarray(np.ascontiguousarray(arr))  # uint8 (h, w) / (h, w, 3) / (h, w, 4): L / RGB / RGBA


FLOAT_SLACK = 1e-3  # float pixels this far outside a range (rounding in a resize) still count as in it


def float_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Float pixels -> uint8. Values within [0, 1] are taken as [0, 1]; values up to 255 as [0, 255] (PIL's mode
    "F", or uint8 data cast to float). Anything else is refused, not clipped: clipping 0..255 data to [0, 1]
    would turn the picture into black and white without a word."""
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -FLOAT_SLACK or hi > 255.0 + FLOAT_SLACK:
        raise ImageInputError(f"float pixel values span [{lo:.4g}, {hi:.4g}]; expected [0, 1] or [0, 255]")
    scale = 255.0 if hi <= 1.0 + FLOAT_SLACK else 1.0
    return (np.clip(arr * scale, 0.0, 255.0) + 0.5).astype(np.uint8)


def sixteen_bit_to_uint8(arr: np.ndarray) -> np.ndarray:
    """16-bit (or 32-bit integer) pixels -> uint8, stretched by the image's maximum when it exceeds 255, so 12-bit
    sensor data is not crushed to near black; data within 0..255 is kept as is. Arrays and PIL images (I;16, I)
    go through this one rule, so both give the same embedding."""
    arr = np.asarray(arr, dtype=np.float64)
    hi = float(arr.max()) if arr.size and arr.max() > 255 else 255.0
    return (np.clip(arr, 0, None) / hi * 255.0 + 0.5).astype(np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited onto white (emoji, clip art)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = Image.fromarray(sixteen_bit_to_uint8(np.asarray(img)))
    elif img.mode == "F":
        arr = np.asarray(img)
        if not np.isfinite(arr).all():
            raise ImageInputError("mode F image contains NaN or inf")
        img = Image.fromarray(float_to_uint8(arr))
    if img.mode in ("La", "RGBa"):  # premultiplied alpha: PIL converts these only to their straight-alpha twins
        img = img.convert("LA" if img.mode == "La" else "RGBA")
    if img.mode == "P" or img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def letterbox(img: Image.Image, size: int) -> Image.Image:
    """Fit the longest side to `size` and pad to a square with mid-gray (0 after normalization)."""
    scale = size / max(img.width, img.height)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    resized = img.resize((w, h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    canvas = Image.new("RGB", (size, size), (128, 128, 128))
    canvas.paste(resized, ((size - w) // 2, (size - h) // 2))
    return canvas


_DECODE_POOL = None  # created on first use (no import-time side effects)


def _decode_pool():
    """Threads for decoding: PIL releases the GIL while it decodes and resizes."""
    global _DECODE_POOL
    if _DECODE_POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _DECODE_POOL = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="mmembed-decode")
    return _DECODE_POOL


def images_to_tensor(
    images: Sequence[ImageInput],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    start_index: int = 0,
    indices: Optional[Sequence[int]] = None,
) -> torch.Tensor:
    """Load, letterbox and normalize -> (b, 3, size, size) float32, decoding in parallel threads.

    Errors name each input by `indices[i]` (its position in the caller's list) or `start_index + i`;
    with several bad inputs, the first one in order is reported."""
    where = list(indices) if indices is not None else [start_index + i for i in range(len(images))]
    if len(where) != len(images):
        raise ValueError(f"indices has {len(where)} entries for {len(images)} images")

    def load(i: int) -> np.ndarray:
        return np.asarray(letterbox(open_image(images[i], where[i]), size), dtype=np.float32)

    if len(images) < 4:  # not worth a thread hand-off
        arrays = [load(i) for i in range(len(images))]
    else:
        arrays = list(_decode_pool().map(load, range(len(images))))  # in order; re-raises the first error in order
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).div_(255.0)  # (b, 3, h, w)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (batch - m) / s

