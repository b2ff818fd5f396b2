"""Images in, tensors out: loading files, offline sample photos, patches, and Kodak.

Everything returns float32 RGB tensors of shape ``[3, H, W]`` with values in [0, 1],
whatever the file held (8- or 16-bit, grayscale, palette, with or without alpha).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np
import png
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from .cache import atomic_write

# ----------------------------------------------------------------------------- loading


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """Convert any Pillow image to a float RGB tensor ``[3, H, W]`` in [0, 1].

    Grayscale is repeated over three channels; an alpha channel is composited onto a
    white background (what a viewer shows), then dropped; palette images are expanded;
    16-bit and 32-bit integer images are scaled by their full range, not clipped.
    """
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        array = np.asarray(image, dtype=np.float64) / 65535.0
    elif mode == "I":
        array = np.asarray(image, dtype=np.float64)
        array = array / (65535.0 if array.max() <= 65535 else 2.0**31 - 1)
    elif mode == "F":
        array = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    else:
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image.convert("RGBA"))
        array = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float()


def _is_16_bit_color_png(path: Path) -> bool:
    """True for a PNG with 16 bits per sample and colour (RGB or RGBA), from its
    header."""
    with open(path, "rb") as handle:
        header = handle.read(26)
    return (
        len(header) == 26  # a shorter file is no PNG Pillow can read either
        and header[:8] == b"\x89PNG\r\n\x1a\n"
        and header[24] == 16
        and header[25] in (2, 6)
    )


def _load_16_bit_png(path: Path) -> torch.Tensor:
    """Full-precision 16-bit RGB(A) PNG (Pillow would reduce it to 8 bits)."""
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    array = np.vstack([np.asarray(row, dtype=np.float64) for row in rows])
    array = array.reshape(height, width, planes) / 65535.0
    if planes == 4:  # composite onto white, as for 8-bit images
        alpha = array[..., 3:]
        array = array[..., :3] * alpha + (1.0 - alpha)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float()


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a float RGB tensor ``[3, H, W]`` in [0, 1].

    JPEG orientation tags are applied; 16-bit colour PNGs keep their full precision.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that
    is not an image that can be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    try:
        if _is_16_bit_color_png(path):
            return _load_16_bit_png(path)
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as error:  # Pillow's guard against huge files
        raise ValueError(f"{path} is too large an image to read: {error}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, png.Error) as error:
        raise ValueError(
            f"{path} is not an image that Pillow can read: {error}"
        ) from error
    return pil_to_tensor(image)


def to_pil(x: torch.Tensor) -> Image.Image:
    """A ``[3, H, W]`` (or ``[1, 3, H, W]``) tensor in [0, 1] as an 8-bit RGB Pillow
    image.

    Values are clamped to [0, 1] and rounded to the nearest 8-bit level.
    """
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(
            f"expected an RGB image tensor [3, H, W], got shape {tuple(x.shape)}"
        )
    array = (
        (x.detach().float().clamp(0, 1) * 255)
        .round()
        .byte()
        .permute(1, 2, 0)
        .cpu()
        .numpy()
    )
    return Image.fromarray(array, mode="RGB")


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Round an image to the 8-bit levels a PNG of it would hold (values stay in [0,
    1])."""
    return (x.clamp(0, 1) * 255).round() / 255


# ----------------------------------------------------------------------- sample images

# Natural colour photographs that ship inside PyPI packages, so the book runs offline.
# The test split is fixed and held out: nothing in the book trains on it. The transfer
# split is other content (textures, a microscope slide, a retina, a galaxy field; three
# of them grey, loaded as RGB): images a model never trained on, for distillation.
_SAMPLES = {
    "train": [
        ("chelsea", "skimage", "data/chelsea.png"),
        ("coffee", "skimage", "data/coffee.png"),
        ("rocket", "skimage", "data/rocket.jpg"),
        ("motorcycle", "skimage", "data/motorcycle_left.png"),
        ("china", "sklearn", "datasets/images/china.jpg"),
    ],
    "test": [
        ("astronaut", "skimage", "data/astronaut.png"),
        ("flower", "sklearn", "datasets/images/flower.jpg"),
    ],
    "transfer": [
        ("retina", "skimage", "data/retina.jpg"),
        ("hubble", "skimage", "data/hubble_deep_field.jpg"),
        ("ihc", "skimage", "data/ihc.png"),
        ("brick", "skimage", "data/brick.png"),
        ("grass", "skimage", "data/grass.png"),
        ("gravel", "skimage", "data/gravel.png"),
    ],
}
SPLITS = tuple(_SAMPLES)


def package_folder(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (importing
    scikit-learn takes seconds); ``None`` if it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(package: str, relative: str) -> Path:
    """The file ``relative`` inside the installed ``package`` (found without importing
    it); ``RuntimeError`` saying what to do when the package or the file is missing."""
    folder = package_folder(package)
    if folder is None:
        raise RuntimeError(
            f"{relative} ships with the package {package!r}, which is not installed: "
            "pip install -e ."
        )
    path = folder / relative
    if not path.is_file():
        raise RuntimeError(
            f"{relative} is missing from {package} ({path}); reinstall {package}"
        )
    return path


def sample_image_paths(split: str = "train") -> dict[str, Path]:
    """File paths of the bundled images of ``split`` (``"train"``, ``"test"`` or
    ``"transfer"``)."""
    if split not in _SAMPLES:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return {
        name: package_file(package, relative)
        for name, package, relative in _SAMPLES[split]
    }


def sample_images(split: str = "train") -> dict[str, torch.Tensor]:
    """Natural photos bundled with installed packages, as ``{name: [3, H, W] tensor}``.

    ``"train"`` has five photos to fit models on; ``"test"`` has two held-out photos
    (skimage's astronaut and scikit-learn's flower) that no chapter trains on;
    ``"transfer"`` has six images of other content that no model is trained on either
    (a student decoder learns from its teacher's reconstructions of them).
    """
    return {name: load_image(path) for name, path in sample_image_paths(split).items()}


def held_out(
    size: int | None = None, count: int | None = None
) -> dict[str, torch.Tensor]:
    """The test photos, which nothing in the book trains on: their central ``size``
    square if ``size`` is given, and the first ``count`` of them if ``count`` is given.
    """
    images = sample_images("test")
    if size:
        images = {name: center_crop(x, size) for name, x in images.items()}
    return dict(list(images.items())[:count])


def downscaled(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` (``[3, H, W]``) resized by ``scale`` <= 1, bicubic with antialiasing, in
    [0, 1]. A photo shrunk this way has more detail per pixel: a cheap way to widen a
    small training set (large ones such as CLIC are often downscaled for the same
    reason)."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    if scale == 1:
        return x
    size = [max(1, round(n * scale)) for n in x.shape[-2:]]
    return torch.nn.functional.interpolate(
        x[None], size=size, mode="bicubic", antialias=True, align_corners=False
    )[0].clamp(0, 1)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` window of an image ``[..., H, W]``."""
    height, width = x.shape[-2:]
    if size > min(height, width):
        raise ValueError(
            f"crop size {size} is larger than the image ({height}x{width})"
        )
    top, left = (height - size) // 2, (width - size) // 2
    return x[..., top : top + size, left : left + size]


class RandomCropDataset(Dataset):
    """Random square crops of a list of images, for training on patches.

    Each item is a ``[3, patch_size, patch_size]`` crop at a random position of one of
    the images (item ``i`` uses image ``i % len(images)``), flipped left-right with
    probability 1/2. ``length`` sets how many crops one epoch has. Randomness comes
    from torch's global generator, so ``torch.manual_seed`` makes it repeatable.
    """

    def __init__(self, images, patch_size: int, length: int = 1000, flip: bool = True):
        self.images = image_list(images)
        if not self.images:
            raise ValueError("RandomCropDataset needs at least one image")
        if patch_size < 1 or length < 1:
            raise ValueError("patch_size and length must be positive")
        for index, image in enumerate(self.images):
            if image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(
                    f"image {index} has shape {tuple(image.shape)}; expected [3, H, W]"
                )
            if min(image.shape[-2:]) < patch_size:
                raise ValueError(
                    f"image {index} ({image.shape[1]}x{image.shape[2]}) is smaller "
                    f"than the patch size {patch_size}"
                )
        self.patch_size, self.length, self.flip = patch_size, length, flip

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index % len(self.images)]
        height, width = image.shape[-2:]
        top = int(torch.randint(0, height - self.patch_size + 1, ()))
        left = int(torch.randint(0, width - self.patch_size + 1, ()))
        patch = image[:, top : top + self.patch_size, left : left + self.patch_size]
        if self.flip and bool(torch.rand(()) < 0.5):
            patch = patch.flip(-1)
        return patch.contiguous()


# ----------------------------------------------------------------- images as model
# input


def image_list(images) -> list[torch.Tensor]:
    """The images of ``images``, given as ``{name: image}`` or as any sequence of
    images."""
    return list(images.values()) if isinstance(images, dict) else list(images)


def as_batch(x: torch.Tensor) -> torch.Tensor:
    """A single RGB image ``[3, H, W]`` or ``[1, 3, H, W]`` in [0, 1] as ``[1, 3, H,
    W]``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected an image tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[:2] != (1, 3):
        raise ValueError(
            f"expected one RGB image [3, H, W] or [1, 3, H, W], got {tuple(x.shape)}; "
            "load files with lic_teach.data.load_image, which makes any image RGB"
        )
    if x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError("the image is empty")
    if not torch.isfinite(x).all():
        raise ValueError("the image contains NaN or infinite values")
    return x


def pad_to(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Extend ``[B, C, H, W]`` or ``[C, H, W]`` on the right and bottom (repeating the
    last row and column) to multiples of ``factor``: a model's total downsampling, or a
    block transform's block size."""
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % factor, (-width) % factor
    if pad_h == 0 and pad_w == 0:
        return x
    return torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


# ------------------------------------------------------------------------------- Kodak

KODAK_URL = "https://r0k.us/graphics/kodak/kodak/"


def kodak_checksums() -> dict[str, str]:
    """``{file name: SHA-256}`` of the 24 Kodak PNGs, from the package data."""
    text = resources.files("lic_teach").joinpath("reference/kodak.sha256").read_text()
    return {
        name: digest
        for digest, name in (line.split() for line in text.splitlines() if line)
    }


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex (read in blocks: any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, expected_sha256: str, timeout: float) -> None:
    """Fetch ``url`` into ``target``, written (``cache.atomic_write``) only once its
    SHA-256 matched."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError) as error:
        raise ConnectionError(
            f"could not download {url}: {getattr(error, 'reason', error)}. "
            f"Are you offline? Put the 24 Kodak PNGs into {target.parent} by hand, "
            "or retry with network."
        ) from error
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected_sha256:
        raise ValueError(
            f"{url} has SHA-256 {actual}, expected {expected_sha256}: "
            f"the download is corrupted or the file changed; nothing was saved"
        )
    atomic_write(target, payload)


def kodak(
    root: str | os.PathLike = "data/kodak", download: bool = True, timeout: float = 30.0
) -> dict[str, torch.Tensor]:
    """The 24 Kodak images (768x512 or 512x768) as ``{"kodim01": tensor, ...}``.

    Files already in ``root`` are checked against their SHA-256 and reused; missing ones
    are downloaded (``download=True``) into ``root``, each written atomically only after
    its checksum matched, so an interrupted or failed download leaves no partial file.

    Raises:
        FileNotFoundError: files are missing and ``download`` is False.
        ConnectionError: a download failed (for example, no network).
        ValueError: a file (on disk or downloaded) does not match its checksum.
    """
    root = Path(root)
    checksums = kodak_checksums()
    missing = [name for name in checksums if not (root / name).is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"{len(missing)} Kodak file(s) missing from {root} "
            f"(first: {missing[0]}); call kodak(root, download=True)"
        )
    if missing:
        root.mkdir(parents=True, exist_ok=True)
        for name in missing:
            _download(KODAK_URL + name, root / name, checksums[name], timeout)
    for name, expected in checksums.items():
        if sha256(root / name) != expected:
            raise ValueError(
                f"{root / name} does not match its SHA-256 checksum; "
                f"delete it and call kodak() again to re-download"
            )
    return {Path(name).stem: load_image(root / name) for name in checksums}
