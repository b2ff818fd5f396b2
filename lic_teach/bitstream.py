"""The container around a model's entropy-coded strings: a self-contained ``bytes``.

Layout (all integers big-endian)::

    magic "LICT" | format version (1 byte) | model name (1 length byte + ASCII)
    | hyper-parameters (1 count byte + 4 bytes each) | table fingerprint (4 bytes)
    | index digest (4 bytes) | image height, width (4 bytes each) | coder (1 byte)
    | string count (1 byte) | string lengths (4 bytes each) | strings
    | CRC-32 of everything before (4 bytes)

The fingerprint is a CRC-32 of the model's coding tables, so a decoder with other
weights refuses the stream instead of decoding noise. The *index digest* is a CRC-32 of
every table index the entropy coder was driven by, in coding order
(:func:`index_digest`): a hyperprior's indexes come from ``h_s``'s floating-point
output, which a GPU and a CPU compute differently in the last bits, so a latent whose
scale lies near a table boundary can get another table on the decoder's device, and
the decoder would then read every later symbol wrongly. The decoder computes the same
digest and refuses a stream whose digest differs, rather than return a wrong image. The
final CRC-32 catches
truncated or altered bytes before they reach the entropy decoder. A CRC is no defence
against bytes written on purpose, so a header must also describe an image of at least
one and at most :data:`MAX_IMAGE_PIXELS` pixels (like Pillow's decompression-bomb
check); the coders check the strings themselves (``lic_teach.native_rans``).
"""

from __future__ import annotations

import contextlib
import contextvars
import struct
import zlib
from array import array
from dataclasses import dataclass

from .coding import CODERS

MAGIC = b"LICT"
FORMAT_VERSION = 2  # 2: the index digest
CODER_IDS = {name: coder.bitstream_id for name, coder in CODERS.items()}

# The largest image a bitstream may describe; set to None to lift the limit (at your own
# risk: a header of a few bytes could then ask a decoder for gigabytes).
MAX_IMAGE_PIXELS = 8192 * 8192


@dataclass
class Header:
    """What a decoder must know before the strings: the writing model's class name (plus
    a layout suffix), its hyper-parameters, its tables' fingerprint, the image size,
    the coder's name, and the digest of the indexes it coded with (checked after
    decoding)."""

    model: str
    params: tuple[int, ...]
    fingerprint: int
    height: int
    width: int
    coder: str
    index_digest: int = 0


_DIGEST: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "index_digest", default=None
)


@contextlib.contextmanager
def index_digest(side: str):
    """Within the block, every table index given to :func:`note_indexes` for ``side``
    (``"encode"`` or ``"decode"``; the entropy models note what they code and what
    they decode) is folded into one CRC-32, in order; yields a one-item list that holds
    it. An encoder and a decoder that drive the entropy coder with the same indexes in
    the same order get the same digest (an encoder that also decodes, as a hyperprior's
    does to get the decoder's ``z_hat``, counts only what it codes)."""
    if side not in ("encode", "decode"):
        raise ValueError(f"side must be 'encode' or 'decode', got {side!r}")
    holder = [0, side]
    token = _DIGEST.set(holder)
    try:
        yield holder
    finally:
        _DIGEST.reset(token)


def note_indexes(indexes: list[int], side: str) -> None:
    """Fold ``indexes`` (table indexes as coded, in coding order) into the digest of the
    enclosing :func:`index_digest` of ``side``, if any."""
    holder = _DIGEST.get()
    if holder is not None and holder[1] == side:
        holder[0] = zlib.crc32(array("i", indexes).tobytes(), holder[0])


def check_index_digest(header: Header, digest: int) -> None:
    """``ValueError`` unless the decoder's index ``digest`` is the one ``header``
    carries."""
    if digest != header.index_digest:
        raise ValueError(
            "this bitstream was entropy-coded with other table indexes than this "
            "decoder computes from it (index digest "
            f"{header.index_digest:08x}, here {digest:08x}): it was written where the "
            "model's arithmetic differs (another kind of device, such as a GPU, or "
            "another torch build), and would decode to a wrong image; decode it on "
            "the kind of device that wrote it"
        )


def pack(header: Header, strings: list[bytes]) -> bytes:
    """``header`` and ``strings`` in the layout above, closed by a CRC-32."""
    name = header.model.encode("ascii")
    parts = [
        MAGIC,
        struct.pack(">BB", FORMAT_VERSION, len(name)),
        name,
        struct.pack(f">B{len(header.params)}I", len(header.params), *header.params),
        struct.pack(
            ">IIIIBB",
            header.fingerprint,
            header.index_digest,
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
    fingerprint, digest, height, width, coder_id, num_strings = reader.unpack(">IIIIBB")
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
        model, tuple(params), fingerprint, height, width, coders[coder_id], digest
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
