"""``lic-teach``: the book's zoo models as a real image codec.

    lic-teach compress photo.png photo.lic [--model mean-scale] [--quality 3] [--force]
    lic-teach decompress photo.lic photo.png [--force] lic-teach info photo.lic
    lic-teach eval folder/ [--model mean-scale] [--quality 3] [--jpeg] [--classical all]
    [--out results.csv] lic-teach zoo

A ``.lic`` file is a model's bitstream (``lic_teach.bitstream``). Its header names the
model's class, hyper-parameters and coding tables, so ``decompress`` and ``info`` find
the zoo model that wrote it without flags. Bad input (a missing or unreadable image, a
damaged or foreign ``.lic``, an output that exists, a folder that cannot be written)
ends in one line on stderr and exit status 2, never a traceback; outputs are written to
a temporary file and renamed, so nothing half-written is left behind.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import torch

from . import baselines, bitstream, cache, data, evaluate, metrics, zoo

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


class UsageError(Exception):
    """A problem with the user's input, reported as one line and exit status 2."""


# ---------------------------------------------------------------------------- helpers


def _check_output(path: Path, force: bool) -> None:
    """Refuse an output before any work: one that exists (without ``force``), or one
    whose folder does not exist."""
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: {path.parent} is not a folder")
    if path.exists() and not force:
        raise UsageError(f"{path} exists; pass --force to replace it")


def _write_atomically(path: Path, content: bytes, force: bool) -> None:
    """Write ``content`` to ``path`` whole or not at all (``cache.atomic_write``)."""
    path = Path(path)
    _check_output(path, force)
    try:
        cache.atomic_write(path, content)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from error


def _read_image(path: Path) -> torch.Tensor:
    try:
        return data.load_image(path)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from error


def _read_bitstream(path: Path) -> tuple[bytes, bitstream.Header]:
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        return content, bitstream.unpack(content)[0]
    except ValueError as error:
        raise UsageError(f"{path}: {error}") from error


def _zoo_model(args):
    args.model = args.model or zoo.default_family(args.zoo)
    qualities = sorted(
        m["quality"] for m in zoo.manifests(args.zoo) if m["family"] == args.model
    )
    args.quality = args.quality or (qualities[len(qualities) // 2] if qualities else 1)
    try:
        return zoo.load(args.model, args.quality, args.zoo)
    except ValueError as error:
        raise UsageError(str(error)) from error


def writer(header: bitstream.Header, folder: Path) -> dict:
    """The manifest of the zoo model that wrote a bitstream with ``header``: the same
    class, hyper-parameters and coding tables (their fingerprint)."""
    for manifest in zoo.manifests(folder):
        if (
            manifest["class"],
            tuple(manifest["hyperparameters"]),
            manifest["table_fingerprint"],
        ) == (header.model, header.params, header.fingerprint):
            return manifest
    raise UsageError(
        f"this bitstream was written by {header.model}{header.params} with coding "
        f"tables {header.fingerprint:08x}, which is no model of the zoo in {folder}"
    )


# --------------------------------------------------------------------------- commands


def compress_command(args) -> int:
    """Code an image with a zoo model into a ``.lic`` file."""
    _check_output(args.output, args.force)
    x = _read_image(args.image)
    model = _zoo_model(args)
    content = model.compress(x)
    _write_atomically(args.output, content, args.force)
    rate = metrics.bpp(content, x.shape[1] * x.shape[2])
    print(
        f"{args.output}: {len(content)} bytes, {rate:.4f} bpp "
        f"({args.model} q{args.quality}, {x.shape[2]}x{x.shape[1]})"
    )
    return 0


def decompress_command(args) -> int:
    """Decode a ``.lic`` file with the zoo model that wrote it; save the image."""
    _check_output(args.output, args.force)
    content, header = _read_bitstream(args.bitstream)
    manifest = writer(header, args.zoo)
    model = zoo.load(manifest["family"], manifest["quality"], args.zoo)
    try:
        x_hat = model.decompress(content)
    except ValueError as error:
        raise UsageError(f"{args.bitstream}: {error}") from error
    _write_atomically(args.output, _image_bytes(x_hat, args.output), args.force)
    return 0


def _image_bytes(x: torch.Tensor, path: Path) -> bytes:
    """``x`` encoded in the format ``path``'s suffix names (PNG for an unknown
    suffix)."""
    from PIL import Image

    buffer = io.BytesIO()
    try:
        data.to_pil(x).save(
            buffer, format=Image.registered_extensions().get(path.suffix.lower(), "PNG")
        )
    except (KeyError, ValueError, OSError) as error:
        raise UsageError(f"cannot write an image as {path.suffix}: {error}") from error
    return buffer.getvalue()


def info_command(args) -> int:
    """Print the model, image size, bytes and bpp of a ``.lic`` file."""
    content, header = _read_bitstream(args.bitstream)
    manifest = writer(header, args.zoo)
    pixels = header.height * header.width
    print(
        f"{args.bitstream}: {manifest['family']} q{manifest['quality']} "
        f"({header.model}{header.params}, lambda={manifest['lambda']:g}), "
        f"{header.width}x{header.height}, {len(content)} bytes, "
        f"{metrics.bpp(content, pixels):.4f} bpp, coder {header.coder}"
    )
    return 0


def jpeg_row(x: torch.Tensor, image: str, size: int) -> dict:
    """A row for Pillow's JPEG (``CLASSICAL["jpeg"]``) of ``x`` at the quality whose
    size comes closest to ``size`` bytes (the model's file), measured like every other
    row (``evaluate.run_point``)."""
    quality = closest_jpeg_quality(x, size)
    row = evaluate.run_point(
        evaluate.classical(baselines.CLASSICAL["jpeg"]), x, quality
    )
    return {
        "image": image,
        "codec": "jpeg (closest size)",
        "setting": str(quality),
        **row,
    }


def closest_jpeg_quality(x: torch.Tensor, size: int) -> int:
    """The quality (1-95) of Pillow's JPEG (``CLASSICAL["jpeg"]``) whose file size
    comes closest to ``size`` bytes, by bisection (JPEG's size grows with its quality):
    about 8 encodings instead of 95."""

    def jpeg_bytes(quality: int) -> int:
        return len(baselines.CLASSICAL["jpeg"].compress(x, quality))

    low, high = 1, 95  # the first quality at least ``size`` lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if jpeg_bytes(middle) < size else (low, middle)
    return min({max(1, low - 1), low}, key=lambda q: abs(jpeg_bytes(q) - size))


def _classical(names: str | None) -> tuple[list, dict]:
    """The classical codecs named (comma-separated, or ``all``) as evaluation codecs,
    and ``{name: why not}`` for those this machine cannot run."""
    if not names:
        return [], {}
    chosen = (
        list(baselines.CLASSICAL)
        if names == "all"
        else [n.strip() for n in names.split(",")]
    )
    try:
        runnable, missing = baselines.available_codecs(chosen)
    except KeyError as error:
        raise UsageError(error.args[0]) from error
    return [evaluate.classical(codec) for codec in runnable.values()], missing


CSV_FIELDS = ["image", "codec", "setting", *evaluate.ROW_FIELDS]


def eval_command(args) -> int:
    """A CSV of bytes, bpp, PSNR (RGB, luma, YCbCr), MS-SSIM, encode and decode time for
    every image of a folder: the zoo model, and (``--classical``) classical codecs over
    their settings, through ``evaluate.evaluate_codecs`` and its cache."""
    if not args.folder.is_dir():
        raise UsageError(f"{args.folder} is not a folder")
    paths = sorted(
        p for p in args.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        raise UsageError(
            f"{args.folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    if args.out:
        _check_output(args.out, args.force)  # before the sweep, not after it
    model = _zoo_model(args)
    label = f"{args.model} q{args.quality}"
    images = {path.name: data.quantize_8bit(_read_image(path)) for path in paths}
    classical, missing = _classical(args.classical)
    for name, why in missing.items():
        print(f"lic-teach eval: {name} left out: {why}", file=sys.stderr)
    try:
        result = evaluate.evaluate_codecs(
            [evaluate.learned(label, {args.quality: model})] + classical,
            images,
            missing,
            cache_dir=False if args.no_cache else None,
            progress=sys.stderr.isatty(),
        )  # a bar for a person, not for a log
    except ValueError as error:
        raise UsageError(str(error)) from error
    rows = [{key: row[key] for key in CSV_FIELDS} for row in result.rows]
    if args.jpeg:
        rows += [
            jpeg_row(images[row["image"]], row["image"], row["bytes"])
            for row in result.rows
            if row["codec"] == label
        ]
    text = io.StringIO()
    writer_ = csv.DictWriter(text, fieldnames=CSV_FIELDS)
    writer_.writeheader()
    writer_.writerows(rows)
    if args.out:
        _write_atomically(args.out, text.getvalue().encode(), args.force)
    else:
        sys.stdout.write(text.getvalue())
    ours = [
        {key: row[key] for key in ("bpp", "psnr", "encode_s", "decode_s")}
        for row in result.rows
        if row["codec"] == label
    ]
    mean = metrics.mean_point(ours)
    print(
        f"{label} on {len(ours)} images: {mean['bpp']:.4f} bpp, {mean['psnr']:.2f} dB, "
        f"encode {mean['encode_s']:.2f} s, decode {mean['decode_s']:.2f} s per image",
        file=sys.stderr,
    )
    return 0


def zoo_command(args) -> int:
    """The zoo's models, one line each."""
    found = zoo.manifests(args.zoo)
    if not found:
        print(f"the zoo in {args.zoo} is empty; train it with make zoo")
    for manifest in found:
        print(zoo.describe(manifest))
    return 0


# ---------------------------------------------------------------------- command line


def parse_args(argv) -> argparse.Namespace:
    """The subcommands of the module docstring; ``--zoo FOLDER`` reads another zoo."""
    parser = argparse.ArgumentParser(
        prog="lic-teach", description="The book's zoo models as an image codec."
    )
    parser.add_argument(
        "--zoo",
        type=Path,
        default=zoo.FOLDER,
        help="the zoo's folder (default: the shipped one)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def with_model(command):
        command.add_argument(
            "--model",
            help=f"zoo family: {', '.join(zoo.FAMILIES)} (default: the best "
            f"the zoo has)",
        )
        command.add_argument(
            "--quality",
            type=int,
            help="1 (fewest bits) and up (default: the middle one)",
        )

    compress = commands.add_parser("compress", help="image -> .lic")
    compress.add_argument("image", type=Path)
    compress.add_argument("output", type=Path)
    compress.add_argument(
        "--force", action="store_true", help="replace the output if it exists"
    )
    with_model(compress)
    decompress = commands.add_parser(
        "decompress", help=".lic -> image (PNG unless the suffix says otherwise)"
    )
    decompress.add_argument("bitstream", type=Path)
    decompress.add_argument("output", type=Path)
    decompress.add_argument("--force", action="store_true")
    info = commands.add_parser("info", help="model, size, bytes and bpp of a .lic")
    info.add_argument("bitstream", type=Path)
    evaluate = commands.add_parser(
        "eval", help="a CSV of R-D and timings over a folder of images"
    )
    evaluate.add_argument("folder", type=Path)
    evaluate.add_argument(
        "--jpeg", action="store_true", help="add Pillow's JPEG at the closest size"
    )
    evaluate.add_argument(
        "--classical",
        metavar="NAMES",
        help="classical codecs over their settings: 'all' or some of "
        f"{', '.join(baselines.CLASSICAL)} (comma-separated)",
    )
    evaluate.add_argument(
        "--no-cache",
        action="store_true",
        help="measure everything again (rows are cached by content otherwise)",
    )
    evaluate.add_argument(
        "--out", type=Path, help="write the CSV here instead of stdout"
    )
    evaluate.add_argument("--force", action="store_true")
    with_model(evaluate)
    commands.add_parser("zoo", help="the models available")
    return parser.parse_args(argv)


COMMANDS = {
    "compress": compress_command,
    "decompress": decompress_command,
    "info": info_command,
    "eval": eval_command,
    "zoo": zoo_command,
}


def main(argv=None) -> int:
    """``lic-teach``; returns the exit status (2 for bad input, with one line on
    stderr)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as error:
        print(f"lic-teach: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
