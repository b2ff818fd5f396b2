"""The container around a model's entropy-coded strings: a self-contained ``bytes``.

Layout (all integers big-endian)::

    magic "LICT" | format version (1 byte) | model name (1 length byte + ASCII)
    | hyper-parameters (1 count byte + 4 bytes each) | table fingerprint (4 bytes)
    | image height, width (4 bytes each) | coder (1 byte) | string count (1 byte)
    | string lengths (4 bytes each) | strings | CRC-32 of everything before (4 bytes)

The fingerprint is a CRC-32 of the model's coding tables, so a decoder with other
weights refuses the stream instead of decoding noise; the final CRC-32 catches
truncated or altered bytes before they reach the entropy decoder. A CRC is no defence
against bytes written on purpose, so a header must also describe an image of at least
one and at most :data:`MAX_IMAGE_PIXELS` pixels (like Pillow's decompression-bomb
check); the coders check the strings themselves (``lic_teach.native_rans``).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .coding import CODERS

MAGIC = b"LICT"
FORMAT_VERSION = 1
CODER_IDS = {name: coder.bitstream_id for name, coder in CODERS.items()}

# The largest image a bitstream may describe; set to None to lift the limit (at your own
# risk: a header of a few bytes could then ask a decoder for gigabytes).
MAX_IMAGE_PIXELS = 8192 * 8192


@dataclass
class Header:
    """What a decoder must know before the strings: the writing model's class name (plus
    a layout suffix), its hyper-parameters, its tables' fingerprint, the image size and
    the coder's name."""

    model: str
    params: tuple[int, ...]
    fingerprint: int
    height: int
    width: int
    coder: str


def pack(header: Header, strings: list[bytes]) -> bytes:
    """``header`` and ``strings`` in the layout above, closed by a CRC-32."""
    name = header.model.encode("ascii")
    parts = [
        MAGIC,
        struct.pack(">BB", FORMAT_VERSION, len(name)),
        name,
        struct.pack(f">B{len(header.params)}I", len(header.params), *header.params),
        struct.pack(
            ">IIIBB",
            header.fingerprint,
            header.height,
            header.width,
            CODER_IDS[header.coder],
            len(strings),
        ),
        struct.pack(f">{len(strings)}I", *(len(s) for s in strings)),
        *strings,
    ]
    body = b"".join(parts)
    return body + struct.pack(">I", zlib.crc32(body))


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.position = data, 0

    def take(self, size: int) -> bytes:
        if self.position + size > len(self.data):
            raise ValueError(
                f"truncated bitstream: {len(self.data)} bytes, needs more than "
                f"{self.position + size}"
            )
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def unpack(data) -> tuple[Header, list[bytes]]:
    """Parse and verify a bitstream; ``ValueError`` with a clear message if it is not
    one this version wrote, or if it is truncated or corrupted."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"expected bytes from compress(), got {type(data).__name__}")
    data = bytes(data)
    if data[:4] != MAGIC:
        raise ValueError("not a lic_teach bitstream (wrong magic bytes)")
    reader = _Reader(data)
    reader.take(4)
    version, name_length = reader.unpack(">BB")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"bitstream format version {version}; this lic_teach reads {FORMAT_VERSION}"
        )
    model = reader.take(name_length).decode("ascii", errors="replace")
    (count,) = reader.unpack(">B")
    params = reader.unpack(f">{count}I")
    fingerprint, height, width, coder_id, num_strings = reader.unpack(">IIIBB")
    lengths = reader.unpack(f">{num_strings}I")
    strings = [reader.take(length) for length in lengths]
    (checksum,) = reader.unpack(">I")
    if reader.position != len(data):
        raise ValueError(
            f"{len(data) - reader.position} unexpected bytes after the bitstream"
        )
    if zlib.crc32(data[:-4]) != checksum:
        raise ValueError("corrupted bitstream: its CRC-32 checksum does not match")
    _check_size(height, width)
    coders = {v: k for k, v in CODER_IDS.items()}
    if coder_id not in coders:
        raise ValueError(f"unknown coder id {coder_id} in bitstream")
    return Header(
        model, tuple(params), fingerprint, height, width, coders[coder_id]
    ), strings


def _check_size(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"the header describes a {height} x {width} image: corrupted")
    if MAX_IMAGE_PIXELS is not None and height * width > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"the header describes a {height} x {width} image, more than "
            f"lic_teach.bitstream.MAX_IMAGE_PIXELS = {MAX_IMAGE_PIXELS} pixels; raise "
            f"that limit only for bitstreams you trust"
        )
