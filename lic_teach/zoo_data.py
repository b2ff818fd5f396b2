"""The zoo's training photos, offline, and the augmentation that widens them.

**The photos.** Every natural colour photo that ships inside the installed packages
(scikit-image's ``skimage/data``, scikit-learn's ``sklearn/datasets/images``) and that
nothing in the book evaluates on (:data:`TRAINING_PHOTOS`, six photos of five scenes,
about 1.7 megapixels): chelsea, coffee, rocket, both views of the motorcycle stereo
pair, and china. Every other image file of those folders is listed in :data:`LEFT_OUT`
with the reason: the held-out test photos (astronaut, flower), the transfer images (the
evaluating-codecs chapter builds its evaluation set from these two splits), grey images
(they are not colour photos), and graphics or synthetic images (a colour wheel, a logo,
a silhouette, a chessboard). Matplotlib's sample photo (Grace Hopper) is never trained
on either.

``motorcycle_right`` is in: it is the right view of the rectified stereo pair whose
left view was already a training photo, the same scene seen from a camera moved sideways
(parallax, other occlusions, its own sensor noise). It is no evaluation image and no
near-duplicate of one, so it cannot leak into a measurement; since it adds little new
content, crops are drawn per *scene* (:attr:`Photo.scene`): the pair shares the weight
of one scene instead of doubling the motorcycle's share.

**The augmentation** (:class:`AugmentedCrops`). Each crop comes from a scene chosen
uniformly, one of its photos, at a scale drawn log-uniformly in ``[min_scale, 1]``: a
window of side ``patch_size / scale`` resized to ``patch_size`` with antialiasing
(:func:`lic_teach.data.downscaled`), which is a crop of the downscaled photo without
resizing the whole photo. A photo shrunk this way has more detail per pixel, as large
training sets such as CLIC are often downscaled for. The crop is then flipped left-right
with probability 1/2 and rotated by a uniformly drawn multiple of 90 degrees (the
dihedral group of the square: 8 orientations). Optionally (``swap_channels``), its
colour channels are permuted: with that probability, one of the five orders of R, G, B
other than the photo's own, drawn uniformly. Five scenes hold few hues; a swap turns a
green leaf magenta and keeps every edge and texture, and issue 34 found a mean-scale
hyperprior trained without it whose hyper-synthesis predicted means of 2,000 to 7,000
on its own training photos with two channels swapped (at most 40 unswapped), and 1,992
on the held-out flower photo. Item ``i`` depends on ``(seed, i)``
alone, so a training run that stops and resumes at step ``t`` sees exactly the crops it
would have seen.

**The split is checked by content** (:func:`resemblances`): a training photo must not
equal, nor be a crop or a downscale of, any image the book evaluates on
(:func:`excluded_paths`), found by normalized cross-correlation over a ladder of scales.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from . import data

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".bmp", ".webp")
PHOTO_FOLDERS = (("skimage", "data"), ("sklearn", "datasets/images"))


@dataclass(frozen=True)
class Photo:
    """A photo bundled in an installed ``package`` at ``path`` inside it; photos of
    one ``scene`` (the two views of a stereo pair) share one scene's share of crops."""

    name: str
    package: str
    path: str
    scene: str


TRAINING_PHOTOS = (
    Photo("chelsea", "skimage", "data/chelsea.png", "chelsea"),
    Photo("coffee", "skimage", "data/coffee.png", "coffee"),
    Photo("rocket", "skimage", "data/rocket.jpg", "rocket"),
    Photo("motorcycle_left", "skimage", "data/motorcycle_left.png", "motorcycle"),
    Photo("motorcycle_right", "skimage", "data/motorcycle_right.png", "motorcycle"),
    Photo("china", "sklearn", "datasets/images/china.jpg", "china"),
)

_TEST, _TRANSFER = (
    "held-out test photo",
    "transfer image; the evaluation chapter codes it",
)
_GREY = "grey, not a colour photo"
LEFT_OUT = {  # image files of PHOTO_FOLDERS not trained on, and why
    "astronaut.png": _TEST,
    "flower.jpg": _TEST,
    "retina.jpg": _TRANSFER,
    "hubble_deep_field.jpg": _TRANSFER,
    "ihc.png": _TRANSFER,
    "brick.png": f"transfer image; {_GREY}",
    "grass.png": f"transfer image; {_GREY}",
    "gravel.png": f"transfer image; {_GREY}",
    "camera.png": _GREY,
    "cell.png": _GREY,
    "clock_motion.png": _GREY,
    "coins.png": _GREY,
    "microaneurysms.png": _GREY,
    "moon.png": _GREY,
    "page.png": _GREY,
    "text.png": _GREY,
    "chessboard_GRAY.png": f"synthetic; {_GREY}",
    "chessboard_RGB.png": "synthetic, and grey though stored as RGB",
    "phantom.png": "synthetic (the Shepp-Logan phantom), grey though stored as RGB",
    "horse.png": "a binary silhouette, grey",
    "color.png": "synthetic: a colour wheel",
    "logo.png": "a graphic: scikit-image's logo",
    "multipage.tif": "a test file of a few pixels, grey",
    "multipage_rgb.tif": "a test file of a few pixels",
    "no_time_for_that_tiny.gif": "an animation of 14x25 pixels",
}


def training_paths() -> dict[str, Path]:
    """``{name: file}`` of :data:`TRAINING_PHOTOS`."""
    return {p.name: data.package_file(p.package, p.path) for p in TRAINING_PHOTOS}


def training_photos() -> dict[str, torch.Tensor]:
    """:data:`TRAINING_PHOTOS` as ``{name: [3, H, W]}`` in [0, 1]."""
    return {name: data.load_image(path) for name, path in training_paths().items()}


def scenes() -> dict[str, str]:
    """``{photo name: scene}`` of :data:`TRAINING_PHOTOS`."""
    return {p.name: p.scene for p in TRAINING_PHOTOS}


def bundled_image_files() -> dict[str, Path]:
    """``{file name: path}`` of every image file in :data:`PHOTO_FOLDERS`: what
    :data:`TRAINING_PHOTOS` and :data:`LEFT_OUT` together must account for."""
    found = {}
    for package, folder in PHOTO_FOLDERS:
        installed = data.package_folder(package)
        if installed is None:
            raise RuntimeError(
                f"the package {package!r} is not installed: pip install -e ."
            )
        root = installed / folder
        for path in sorted(root.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                found[path.name] = path
    return found


def matplotlib_sample_paths() -> dict[str, Path]:
    """``{name: file}`` of matplotlib's sample images (Grace Hopper and two graphics),
    or ``{}`` where matplotlib is not installed."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        return {}
    folder = Path(matplotlib.get_data_path()) / "sample_data"
    return {
        f"matplotlib {p.stem}": p
        for p in sorted(folder.rglob("*"))
        if p.suffix.lower() in IMAGE_SUFFIXES
    }


def excluded_paths() -> dict[str, Path]:
    """``{name: file}`` of every image nothing may be trained on: the test split, the
    transfer split (the evaluating-codecs chapter builds its evaluation set from these
    two) and matplotlib's sample images."""
    return {
        **data.sample_image_paths("test"),
        **data.sample_image_paths("transfer"),
        **matplotlib_sample_paths(),
    }


def folder_photos(folder, min_side: int = 0) -> dict[str, torch.Tensor]:
    """A user's own photos to train the zoo on: every image file directly in
    ``folder`` (:data:`IMAGE_SUFFIXES`), by file name, as ``data.load_image`` reads it
    (grey and RGBA made RGB). ``FileNotFoundError`` for a missing folder;
    ``ValueError`` naming the file for a folder without images, a file that does not
    decode, a photo with a side below ``min_side`` (a crop could not be cut from it)
    or a copy of an image the book evaluates on (:func:`excluded_paths`, compared by
    pixels: an identical copy, not a crop or a re-encoding, which
    :func:`resemblances` would find at a cost of seconds a photo)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder of training photos at {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(
            f"{folder} holds no image file ({', '.join(IMAGE_SUFFIXES)}) to train on"
        )
    evaluated = {
        pixels_sha256(data.load_image(path)): name
        for name, path in excluded_paths().items()
    }
    photos = {}
    for path in paths:
        x = data.load_image(path)  # ValueError naming the file
        if min(x.shape[-2:]) < min_side:
            raise ValueError(
                f"{path} is {x.shape[-1]}x{x.shape[-2]} pixels: smaller than the "
                f"{min_side}-pixel crops the zoo trains on"
            )
        if pixels_sha256(x) in evaluated:
            raise ValueError(
                f"{path} is the evaluation image {evaluated[pixels_sha256(x)]!r}: "
                "nothing the book evaluates on may be trained on"
            )
        photos[path.name] = x
    return photos


def pixels_sha256(x: torch.Tensor) -> str:
    """The SHA-256 of an image's shape and 8-bit pixels: the same picture gives the
    same digest whatever lossless file held it."""
    pixels = (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return hashlib.sha256(
        str(tuple(x.shape)).encode() + pixels.numpy().tobytes()
    ).hexdigest()


def photos_sha256(photos: dict[str, torch.Tensor]) -> str:
    """One SHA-256 of a set of photos (their names and pixels), to key a training run
    on what it trained on."""
    digest = hashlib.sha256()
    for name in sorted(photos):
        name_bytes = name.encode("utf-8", "surrogateescape")  # any file name
        digest.update(name_bytes + bytes.fromhex(pixels_sha256(photos[name])))
    return digest.hexdigest()


CEILING_PIXELS = 2**20  # a larger training photo's ceiling is measured on a crop


def bounded(photos: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``photos``, each larger than :data:`CEILING_PIXELS` cut to its central square
    of at most 1024 pixels a side: what the transforms' ceiling on the training photos
    is measured on (a user's 24-megapixel photo would need gigabytes of activations in
    one pass); the bundled photos are all smaller."""
    return {
        name: (
            x
            if x.shape[-2] * x.shape[-1] <= CEILING_PIXELS
            else data.center_crop(x, min(1024, *x.shape[-2:]))
        )
        for name, x in photos.items()
    }


# ---------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class Crop:
    """One augmented crop: the window ``side`` x ``side`` at ``(top, left)`` of the
    photo ``photo`` (in its own pixels), resized to the patch size, flipped left-right
    if ``flip``, turned ``quarter_turns`` times by 90 degrees, then its colour channels
    taken in the order ``channels``."""

    photo: str
    top: int
    left: int
    side: int
    flip: bool
    quarter_turns: int
    channels: tuple[int, int, int] = (0, 1, 2)


CHANNEL_ORDERS = tuple(itertools.permutations(range(3)))  # the identity first


class AugmentedCrops(Dataset):
    """Augmented ``[3, patch_size, patch_size]`` crops of ``photos`` (``{name: [3, H,
    W]}``; default :func:`training_photos`), see the module docstring.
    ``scenes_of`` maps a photo's name to its scene (default: :func:`scenes` for the
    training photos, any other photo its own scene). Item ``index`` is drawn by a
    generator seeded with ``(seed, index)`` (:meth:`draw`) and cut by :meth:`cut`;
    ``length`` is only what ``len`` reports to a ``DataLoader`` (any index is
    valid). :meth:`batch` gives step ``t``'s batch directly. ``swap_channels``: the
    probability that a crop's colour channels are permuted (0: never, and the crops
    are those drawn before the option existed)."""

    def __init__(
        self,
        photos: dict[str, torch.Tensor] | None = None,
        patch_size: int = 256,
        *,
        length: int = 1024,
        seed: int = 0,
        min_scale: float = 0.5,
        flip: bool = True,
        rotate: bool = True,
        swap_channels: float = 0.0,
        scenes_of: dict[str, str] | None = None,
    ):
        photos = training_photos() if photos is None else photos
        if not photos:
            raise ValueError("AugmentedCrops needs at least one photo")
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
        if not 0 <= swap_channels <= 1:
            raise ValueError(f"swap_channels must be in [0, 1], got {swap_channels}")
        for name, photo in photos.items():
            if min(photo.shape[-2:]) < patch_size:
                raise ValueError(
                    f"photo {name!r} ({tuple(photo.shape[-2:])}) is smaller than the "
                    f"patch size {patch_size}"
                )
        self.photos, self.patch_size, self.length = dict(photos), patch_size, length
        self.seed, self.min_scale = seed, min_scale
        self.flip, self.rotate = flip, rotate
        self.swap_channels = swap_channels
        known = scenes() if scenes_of is None else scenes_of
        scenes_of = {name: known.get(name, name) for name in photos}
        self.scenes: dict[str, list[str]] = {}
        for name in photos:
            self.scenes.setdefault(scenes_of[name], []).append(name)

    def __len__(self) -> int:
        return self.length

    def _generator(self, index: int) -> torch.Generator:
        """A generator of its own for crop ``index``, seeded from a hash of ``(seed,
        index)`` (torch's generator keeps 32 bits of a seed)."""
        if index < 0:
            raise IndexError(f"crop index {index} is negative")
        digest = hashlib.sha256(f"{self.seed}/{index}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:4], "little"))

    def draw(self, index: int) -> Crop:
        """Crop ``index``: scene, photo, scale, position, flip, turns and channel
        order (drawn last, and only where ``swap_channels`` > 0)."""
        generator = self._generator(index)
        uniform = lambda: float(torch.rand((), generator=generator))
        integer = lambda n: int(torch.randint(n, (), generator=generator))
        views = list(self.scenes.values())[integer(len(self.scenes))]
        name = views[integer(len(views))]
        height, width = self.photos[name].shape[-2:]
        smallest = max(self.min_scale, self.patch_size / min(height, width))
        scale = math.exp(math.log(smallest) * uniform())  # log-uniform in [smallest, 1]
        side = min(round(self.patch_size / scale), height, width)
        top, left = integer(height - side + 1), integer(width - side + 1)
        flip = self.flip and uniform() < 0.5
        quarter_turns = integer(4) if self.rotate else 0
        channels = CHANNEL_ORDERS[0]
        if self.swap_channels and uniform() < self.swap_channels:
            channels = CHANNEL_ORDERS[1 + integer(len(CHANNEL_ORDERS) - 1)]
        return Crop(name, top, left, side, flip, quarter_turns, channels)

    def cut(self, crop: Crop) -> torch.Tensor:
        """The pixels of ``crop``: ``[3, patch_size, patch_size]`` in [0, 1]."""
        bottom, right = crop.top + crop.side, crop.left + crop.side
        x = self.photos[crop.photo][:, crop.top : bottom, crop.left : right]
        x = data.downscaled(x, self.patch_size / crop.side)
        if crop.flip:
            x = x.flip(-1)
        x = x.rot90(crop.quarter_turns, dims=(-2, -1))
        return x[list(crop.channels)].contiguous()

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.cut(self.draw(index))

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        """Step ``step``'s batch ``[batch_size, 3, patch_size, patch_size]``: items
        ``step * batch_size`` to ``(step + 1) * batch_size - 1``."""
        first = step * batch_size
        return torch.stack([self[i] for i in range(first, first + batch_size)])


# ------------------------------------------------------------------ the split, checked

SCALE_STEP = 0.98  # ratio between neighbouring scales of the search: 1% off at worst
WORKING_SIDE = 128  # the source's shorter side in the search
SMALLEST = 32  # pixels a side below which a candidate is too small to compare
MARGIN = 2  # pixels trimmed off each side of a candidate: rounding and filter borders


def _grid_exponent(side: int) -> int:
    """The smallest ``j >= 0`` with ``side * SCALE_STEP ** j <= WORKING_SIDE``."""
    if side <= WORKING_SIDE:
        return 0
    return math.ceil(math.log(WORKING_SIDE / side) / math.log(SCALE_STEP))


def _best_correlation(image: torch.Tensor, template: torch.Tensor) -> float:
    """The highest normalized cross-correlation of ``template`` ``[3, h, w]`` with the
    windows of ``image`` ``[3, H, W]`` it fits in (computed by FFT; windows with no
    texture, standard deviation below 1/1000, count as 0)."""
    _, height, width = image.shape
    _, h, w = template.shape
    t = template - template.mean(dim=(1, 2), keepdim=True)
    if t.norm() < 1e-3 * math.sqrt(t.numel()):
        return 0.0
    t = t / t.norm()
    spectrum = torch.fft.rfft2(image) * torch.fft.rfft2(t.flip(1, 2), s=(height, width))
    products = torch.fft.irfft2(spectrum, s=(height, width)).sum(0)[h - 1 :, w - 1 :]
    sums = torch.nn.functional.pad(image.cumsum(1).cumsum(2), (1, 0, 1, 0))
    squares = torch.nn.functional.pad((image**2).cumsum(1).cumsum(2), (1, 0, 1, 0))

    def window(c):  # [3, H - h + 1, W - w + 1]: sums over every window
        return c[:, h:, w:] - c[:, :-h, w:] - c[:, h:, :-w] + c[:, :-h, :-w]

    spread = (window(squares) - window(sums) ** 2 / (h * w)).sum(0).clamp_min(0)
    textured = spread > 1e-6 * h * w * 3
    scores = products / spread.sqrt().clamp_min(1e-12)
    return float(torch.where(textured, scores, torch.zeros_like(scores)).max())


def _ladder(image: torch.Tensor, deepest: int, largest: tuple[int, int]):
    """``(k, image downscaled by SCALE_STEP ** k)`` for ``k`` from 0 to ``deepest``,
    :data:`MARGIN` pixels trimmed off each side, leaving out the sizes larger than
    ``largest`` (they fit in no source) and those with a shorter side under
    :data:`SMALLEST` pixels."""
    for k in range(deepest + 1):
        factor = SCALE_STEP**k
        size = [round(n * factor) - 2 * MARGIN for n in image.shape[-2:]]
        if min(size) < SMALLEST:
            return
        if size[0] <= largest[0] and size[1] <= largest[1]:
            level = data.downscaled(image, factor).double()
            yield k, level[:, MARGIN:-MARGIN, MARGIN:-MARGIN]


def resemblances(
    candidates: dict[str, torch.Tensor], sources: dict[str, torch.Tensor]
) -> dict[tuple[str, str], float]:
    """``{(candidate, source): score}``: the highest normalized cross-correlation of
    the whole candidate (less a :data:`MARGIN`) with any window of the source, the
    source brought to about :data:`WORKING_SIDE` pixels a side (by ``g = SCALE_STEP **
    j``) and the candidate to ``g / s`` for each downscale factor ``s = SCALE_STEP **
    k`` in ``[g, 1]``. A
    candidate that is the source, or a crop of it downscaled by any factor in that
    range (re-encoded or not), scores about 1 at the nearest factor of the ladder (1%
    off at worst); unrelated photos score far lower (the tests measure both). 0 where
    the candidate fits in the source at no factor."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of small FFTs: threads only cost here
    try:
        return _resemblances(candidates, sources)
    finally:
        torch.set_num_threads(threads)


def _resemblances(candidates, sources):
    exponents = {n: _grid_exponent(min(x.shape[-2:])) for n, x in sources.items()}
    reduced = {
        n: data.downscaled(x, SCALE_STEP ** exponents[n]).double()
        for n, x in sources.items()
    }
    largest = tuple(max(x.shape[i] for x in reduced.values()) for i in (1, 2))
    found = dict.fromkeys(((c, s) for c in candidates for s in sources), 0.0)
    for name, candidate in candidates.items():
        for k, level in _ladder(candidate, max(exponents.values()), largest):
            for source_name, source in reduced.items():
                fits = all(a <= b for a, b in zip(level.shape, source.shape))
                if k <= exponents[source_name] and fits:
                    score = _best_correlation(source, level)
                    key = (name, source_name)
                    found[key] = max(found[key], score)
    return found
