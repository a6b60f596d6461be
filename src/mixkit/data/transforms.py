"""ImageNet-style transforms for streamed image files, done in the decode step.

* **Training: RandomResizedCrop** (Szegedy et al. 2015; He et al. 2015's and timm's default):
  a box of ``scale`` ∈ [0.08, 1] of the image area and aspect ``ratio`` ∈ [3/4, 4/3]
  (log-uniform) at a uniform position, resized to ``size`` × ``size``; after 10 failed draws,
  the central box of the clamped ratio (torchvision's ``RandomResizedCrop.get_params``, the same
  algorithm). The flip stays on the device with the batch (:mod:`mixkit.data.augment`).
* **Evaluation**: the shorter side resized to ``floor(size / crop_pct)``, then the central
  ``size`` × ``size`` crop (timm's eval transform, ``crop_pct`` 0.875 by default), aspect kept.

The crop parameters of sample ``i`` in epoch ``e`` come from a generator seeded with
``(seed, e, i)`` alone: whichever worker decodes it, on whichever rank, before or after a
``--resume``, it gets the same crop, and no full-size image is ever kept (the box is cut while
decoding). JPEGs are decoded with PIL's draft mode when the box is at least twice the output
size: the DCT is scaled by 1/2, 1/4 or 1/8 inside libjpeg, so a 2,000 px photo cropped to 224
never exists at full size (``docs/data.md`` has the measurements).
"""

from __future__ import annotations

import io
import math
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np

SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)
MAX_IMAGE_PIXELS = 64_000_000     # 8000 x 8000: far above any training image
MAX_FILE_BYTES = 256 << 20        # a training JPEG is well under 10 MB
# PIL modes mixkit decodes: 8-bit (CMYK JPEGs, which ImageNet has, are converted); 16-bit and
# float images are refused rather than silently clipped to 255
MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "La"}


def parse_pair(value: Any) -> tuple[float, float] | None:
    """``"a,b"`` (or a pair) -> (a, b) as finite floats, or None (the form of ``--scale`` and
    ``--ratio``)."""
    try:
        lo, hi = (float(x) for x in (value.split(",") if isinstance(value, str) else value))
    except (ValueError, TypeError):
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def rrc_box(width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float],
            rng: np.random.Generator) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params``: ``(top, left, h, w)`` in pixels."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height               # fallback: the central crop of the clamped ratio
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    w, h = max(w, 1), max(h, 1)             # a box of at least one pixel (torchvision's rule
    return (height - h) // 2, (width - w) // 2, h, w    # rounds a 3-px side at 1:10 to 0)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The crop stream of one sample in one epoch (independent of worker, rank and resume)."""
    return np.random.default_rng([seed & 0xFFFFFFFFFFFF, epoch, index, 0x52524331])


def eval_size(size: int, crop_pct: float) -> int:
    """timm's ``scale_size = floor(img_size / crop_pct)``."""
    return int(math.floor(size / crop_pct))


def decode_squash(path: Path, size: int | None = None) -> np.ndarray:
    """The whole image as uint8 ``[3, H, W]``, resized to ``size`` x ``size`` if given (aspect
    not kept: the CIFAR-style ``--train-transform crop`` path and TinyImageNet's 64 px files)."""
    from PIL import Image

    with _open(path) as img:
        rgb = img.convert("RGB")
        if size is not None and rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.BILINEAR)
        return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))


def read_bounded(path: Path, limit: int | None = None) -> bytes:
    """A file's bytes, read only if it is a regular file of at most ``limit`` bytes.

    Decided on the opened descriptor (``fstat``), so nothing is read before the type is known:
    ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a writer, and a
    character device (a link to ``/dev/zero``, whose size reads 0) is refused rather than read
    until memory runs out. Raises ``ValueError`` naming what the path is."""
    limit = MAX_FILE_BYTES if limit is None else limit
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"it is not a regular file ({_file_kind(st.st_mode)}); mixkit "
                             "reads regular files only")
        if st.st_size > limit:
            raise ValueError(f"it is {st.st_size:,} bytes, more than the {limit:,} mixkit "
                             "reads for one image")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"it grew past {limit:,} bytes while being read")
        return data
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def _open(source: Path | bytes):
    """Open an image (a path, read bounded, or its bytes), checking its header before anything
    is decoded."""
    from PIL import Image

    data = source if isinstance(source, bytes) else read_bounded(source)
    img = Image.open(io.BytesIO(data))
    if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:
        img.close()
        raise ValueError(f"it declares {img.size[0]}x{img.size[1]} pixels, more than the "
                         f"{MAX_IMAGE_PIXELS:,} mixkit decodes")
    if img.mode not in MODES:
        img.close()
        raise ValueError(f"its pixels are {img.mode} (16-bit or floating point); mixkit trains "
                         "on 8-bit images — convert it, e.g. PIL `im.convert('RGB')` after "
                         "scaling to 0..255")
    return img


def _draft(img, box_w: float, box_h: float, size: int) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the box stays >= ``size`` px after it
    (not a JPEG, or not worth it: nothing changes)."""
    if img.format != "JPEG":
        return
    k = min(box_w, box_h) / size
    if k < 2:
        return
    red = min(8, 2 ** int(math.log2(k)))
    img.draft("RGB", (math.ceil(img.size[0] / red), math.ceil(img.size[1] / red)))



def _jpeg_rrc(data: bytes, size: int, rng: np.random.Generator, scale: tuple[float, float],
              ratio: tuple[float, float], interpolation: str) -> np.ndarray | None:
    """The fast path for JPEGs: libjpeg-turbo through ``simplejpeg``, decoding at the smallest
    DCT scale (n/8) that keeps the box at least ``size`` px, then one antialiased resize of the
    box (torch's, which matches PIL's). None when it does not apply (not a baseline RGB/grey
    JPEG, or simplejpeg missing): the PIL path decodes it instead, with the same box (the
    stream is consumed the same way)."""
    try:
        import simplejpeg
    except ImportError:
        return None
    if data[:2] != b"\xff\xd8":
        return None
    try:
        h, w, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if w * h > MAX_IMAGE_PIXELS:
        raise ValueError(f"it declares {w}x{h} pixels, more than the {MAX_IMAGE_PIXELS:,} "
                         "mixkit decodes")
    state = rng.bit_generator.state
    top, left, bh, bw = rrc_box(w, h, scale, ratio, rng)
    try:
        img = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=math.ceil(h * size / bh),
                                     min_width=math.ceil(w * size / bw))
    except ValueError:
        rng.bit_generator.state = state           # the PIL path draws the same box
        return None
    fy, fx = img.shape[0] / h, img.shape[1] / w
    crop = img[int(top * fy):max(int(math.ceil((top + bh) * fy)), int(top * fy) + 1),
               int(left * fx):max(int(math.ceil((left + bw) * fx)), int(left * fx) + 1)]
    return resize_uint8(crop, size, interpolation)


def resize_uint8(hwc: np.ndarray, size: int, interpolation: str) -> np.ndarray:
    """``[H, W, 3]`` uint8 -> ``[3, size, size]`` uint8, antialiased as PIL resizes."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1)[None]
    if interpolation == "bilinear":                  # torch's uint8 kernel (AVX2)
        out = F.interpolate(t, (size, size), mode="bilinear", antialias=True)
    elif interpolation == "bicubic":
        out = F.interpolate(t.float(), (size, size), mode="bicubic", antialias=True)
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    else:
        out = F.interpolate(t, (size, size), mode="nearest")
    return np.ascontiguousarray(out[0].numpy())


def decode_rrc(path: Path, size: int, rng: np.random.Generator,
               scale: tuple[float, float] = SCALE, ratio: tuple[float, float] = RATIO,
               interpolation: str = "bilinear") -> np.ndarray:
    """RandomResizedCrop while decoding: uint8 ``[3, size, size]`` (JPEGs through libjpeg-turbo
    at a reduced DCT scale where possible, anything else through PIL)."""
    from PIL import Image

    data = read_bounded(path)
    fast = _jpeg_rrc(data, size, rng, scale, ratio, interpolation)
    if fast is not None:
        return fast

    resample = getattr(Image.Resampling, interpolation.upper())
    with _open(data) as img:
        top, left, h, w = rrc_box(img.size[0], img.size[1], scale, ratio, rng)
        full = img.size
        _draft(img, w, h, size)
        fx, fy = img.size[0] / full[0], img.size[1] / full[1]      # 1, or libjpeg's 1/2^k
        box = (left * fx, top * fy, min((left + w) * fx, img.size[0]),
               min((top + h) * fy, img.size[1]))
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        out = rgb.resize((size, size), resample, box=box)
        return np.ascontiguousarray(np.asarray(out, dtype=np.uint8).transpose(2, 0, 1))


def decode_eval(path: Path, size: int, crop_pct: float = 0.875,
                interpolation: str = "bilinear") -> np.ndarray:
    """Shorter side to ``floor(size / crop_pct)``, central ``size`` crop: uint8 [3, size, size]
    (pixel for pixel torchvision's ``Resize`` + ``CenterCrop`` on the same PIL image when no
    draft reduction applies)."""
    from PIL import Image

    resample = getattr(Image.Resampling, interpolation.upper())
    short = eval_size(size, crop_pct)
    with _open(path) as img:
        _draft(img, min(img.size), min(img.size), short)
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        w, h = rgb.size
        if w <= h:                                   # torchvision: the long side truncated
            nw, nh = short, int(short * h / w)
        else:
            nw, nh = int(short * w / h), short
        out = rgb.resize((nw, nh), resample)
        top = int(round((nh - size) / 2.0))
        left = int(round((nw - size) / 2.0))
        arr = np.asarray(out, dtype=np.uint8)
        if nh < size or nw < size:                   # crop_pct > 1: pad as torchvision does
            pad = np.zeros((max(nh, size), max(nw, size), 3), np.uint8)
            py, px = (pad.shape[0] - nh) // 2, (pad.shape[1] - nw) // 2
            pad[py:py + nh, px:px + nw] = arr
            arr, top, left = pad, (pad.shape[0] - size) // 2, (pad.shape[1] - size) // 2
        crop = arr[top:top + size, left:left + size]
        return np.ascontiguousarray(crop.transpose(2, 0, 1))
