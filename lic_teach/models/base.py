"""What every image model shares: checking the input, padding to the downsampling
factor, latents to bytes, and a verified container around the strings
(``lic_teach.bitstream``).

Latents to bytes is one step of the contract, as CompressAI's latent codecs
(``compressai.latent_codecs``: ``compress(y) -> strings``, ``decompress(strings,
shape)``): ``compress`` is the analysis transform followed by that step, so an encoder
that chooses other latents (RDOQ, SGA) writes the model's own bitstream through
:meth:`ImageCodec.compress_latents`, and the unchanged decoder reads it.
"""

from __future__ import annotations

import zlib

import torch
from torch import nn

from .. import bitstream, coding
from ..data import as_batch, pad_to
from ..entropy_models import _CodingTables

LATENT_LIMIT = 2.0**24
"""The largest magnitude a latent may have to be coded: far above any value a trained
transform gives, and exact in float32."""


class ImageCodec(nn.Module):
    """The model contract. A subclass has the transforms ``g_a`` (image -> ``y``) and
    ``g_s`` (``y_hat`` -> image) and defines:

    - ``hyperparameters() -> tuple``: what its constructor takes (``(N, M)``);
    - ``entropy(y) -> (y_hat, {"y": likelihoods, ...})``: its entropy model alone, noise
      in training and the coder's rounding in eval (one likelihood tensor per latent);
    - ``latents_to_strings(latents, coder) -> strings``: the latents of one padded
      image, ``{name: [1, C, h, w]}`` as :meth:`analysis` gives them (or as an encoder
      chose them), rounded as its coder rounds them and coded;
    - ``strings_to_latents(strings, latent_size, coder) -> y_hat``: back, where
      ``latent_size`` is that of the coarsest latent (:meth:`latent_size`); there are
      as many strings as ``string_names`` (checked before).

    The base class gives :meth:`analysis` (``{"y": g_a(x)}``; a hyperprior adds ``z``),
    ``forward`` (CompressAI's output dict), :meth:`compress` and :meth:`decompress` (a
    verified, self-contained bitstream), :meth:`compress_latents` (that bitstream for
    latents an encoder chose), :meth:`write_bitstream` and :meth:`read_bitstream` (the
    container alone, for a technique with strings of its own), ``update`` and
    ``aux_loss``.
    """

    downsampling = 16  # of the coarsest latent: images are padded to multiples of it
    y_stride = 16  # of g_a: one latent of y stands for 16 x 16 pixels
    string_names = ("y",)  # the strings of its bitstream, in order

    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` of the coarsest latent of a ``height x width`` image, once
        padded."""
        return -(-height // self.downsampling), -(-width // self.downsampling)

    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """``{name: (channels, h, w)}`` of the latents that code a ``height x width``
        image (padded): ``y``, ``M`` channels, one per ``y_stride`` pixels."""
        h, w = self.latent_size(height, width)
        scale = self.downsampling // self.y_stride
        return {"y": (self.M, h * scale, w * scale)}

    def hyperparameters(self) -> tuple[int, ...]:
        raise NotImplementedError

    def analysis(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The amortized encoder's latents of padded images ``x``: ``{"y": g_a(x)}``."""
        return {"y": self.g_a(x)}

    def forward(self, x: torch.Tensor) -> dict:
        """``{"x_hat", "likelihoods"}``: noisy latents in training, rounded in eval."""
        y_hat, likelihoods = self.entropy(self.g_a(x))
        return {"x_hat": self.g_s(y_hat), "likelihoods": likelihoods}

    def image_to_strings(self, x: torch.Tensor, coder: str) -> list[bytes]:
        """The strings of a padded image ``[1, 3, H, W]``: its :meth:`analysis` coded by
        ``latents_to_strings``; ``x`` is moved to the model's device."""
        x = x.to(next(self.parameters()).device)
        return self.latents_to_strings(self.analysis(x), coder)

    def strings_to_image(self, strings, latent_size, coder: str) -> torch.Tensor:
        """The padded image ``[1, 3, H, W]`` that ``g_s`` makes of the decoded
        latents."""
        return self.g_s(self.strings_to_latents(strings, latent_size, coder))

    def entropy_models(self) -> list[_CodingTables]:
        return [m for m in self.modules() if isinstance(m, _CodingTables)]

    def aux_loss(self) -> torch.Tensor:
        """Sum of the auxiliary (quantile) losses of the factorized densities."""
        losses = [m.aux_loss() for m in self.entropy_models() if hasattr(m, "aux_loss")]
        return sum(losses) if losses else torch.zeros(())

    def update(self, force: bool = False) -> bool:
        """Build every entropy model's coding tables (call after training)."""
        results = [m.update(force=force) for m in self.entropy_models()]
        return any(results)

    def table_fingerprint(self) -> int:
        checksum = 0
        for module in self.entropy_models():
            for table in (module.quantized_cdf, module.cdf_length, module.cdf_offset):
                checksum = zlib.crc32(table.cpu().numpy().tobytes(), checksum)
        return checksum

    @torch.no_grad()
    def compress(self, x: torch.Tensor, coder: str = "ans") -> bytes:
        """Code one image ``[3, H, W]`` (any H, W) into a self-contained bitstream: the
        latents of :meth:`analysis`, by :meth:`compress_latents`.

        ``coder="ans"`` uses CompressAI's C++ rANS, ``"readable"`` the Python coder of
        ``lic_teach.coding``; both decode to the same image.
        """
        coding.get_coder(coder)  # a clear error for an unknown name, before any work
        x = as_batch(x).to(next(self.parameters()).device)
        latents = self.analysis(pad_to(x, self.downsampling))
        return self.compress_latents(latents, x.shape[-2], x.shape[-1], coder)

    def check_latents(self, latents: dict, height: int, width: int) -> None:
        """``ValueError`` unless ``latents`` are ``{name: [1, C, h, w]}`` of the names
        and shapes of :meth:`latent_shapes` for a ``height x width`` image."""
        expected = self.latent_shapes(height, width)
        if not isinstance(latents, dict) or set(latents) != set(expected):
            found = sorted(latents) if isinstance(latents, dict) else type(latents)
            raise ValueError(
                f"a {type(self).__name__} codes the latents {sorted(expected)}, "
                f"got {found}"
            )
        for name, shape in expected.items():
            latent = latents[name]
            if not torch.is_tensor(latent) or not latent.is_floating_point():
                raise ValueError(f"latent {name} must be a floating-point tensor")
            if not torch.isfinite(latent).all() or latent.abs().max() > LATENT_LIMIT:
                raise ValueError(
                    f"latent {name} has values that are not finite or exceed "
                    f"{LATENT_LIMIT:g} in magnitude: no coder codes them"
                )
            found = tuple(latent.shape)
            if found != (1, *shape):
                raise ValueError(
                    f"latent {name} of shape {list(found)} does not belong to a "
                    f"{height}x{width} image (expected {[1, *shape]})"
                )

    @torch.no_grad()
    def compress_latents(
        self, latents: dict, height: int, width: int, coder: str = "ans"
    ) -> bytes:
        """The bitstream of latents ``{name: [1, C, h, w]}`` (:meth:`analysis`'s, or
        chosen by an encoder: RDOQ, SGA) of a ``height x width`` image, rounded as the
        coder rounds them: the bytes ``compress`` writes had ``g_a`` given these
        latents, and :meth:`decompress` decodes them. ``ValueError`` for latents of
        other names or shapes (:meth:`check_latents`)."""
        coding.get_coder(coder)
        self.check_latents(latents, height, width)
        device = next(self.parameters()).device
        latents = {name: latent.to(device) for name, latent in latents.items()}
        self.update()
        with bitstream.index_digest("encode") as digest:
            strings = self.latents_to_strings(latents, coder)
        return self.write_bitstream(strings, height, width, coder, digest=digest[0])

    def write_bitstream(
        self,
        strings: list[bytes],
        height: int,
        width: int,
        coder: str,
        layout: str = "",
        digest: int = 0,
    ) -> bytes:
        """The container of this model's ``strings`` of a ``height x width`` image: a
        header (class, hyper-parameters, coding tables' fingerprint, size, coder), the
        strings, a CRC-32. ``layout`` names another arrangement of the latents (e.g.
        ``"+DQ"``) that only a matching decoder reads; ``digest``: the
        ``bitstream.index_digest`` of the coding, which the decoder checks."""
        self.update()
        header = bitstream.Header(
            type(self).__name__ + layout,
            self.hyperparameters(),
            self.table_fingerprint(),
            height,
            width,
            coder,
            digest,
        )
        return bitstream.pack(header, strings)

    def read_bitstream(
        self, data: bytes, layout: str = ""
    ) -> tuple[bitstream.Header, list, tuple[int, int]]:
        """``(header, strings, latent_size)`` of bytes written by
        :meth:`write_bitstream` of this model and ``layout``; ``ValueError`` for bytes
        that are truncated, altered, not a bitstream, or written by another model
        (class, hyper-parameters or weights)."""
        header, strings = bitstream.unpack(data)
        expected = (type(self).__name__ + layout, self.hyperparameters())
        if (header.model, header.params) != expected:
            raise ValueError(
                f"this bitstream was written by {header.model}{header.params}, "
                f"not by {expected[0]}{expected[1]}"
            )
        if len(strings) != len(self.string_names):
            raise ValueError(
                f"a {expected[0]} bitstream holds {len(self.string_names)} strings "
                f"({', '.join(self.string_names)}), this one {len(strings)}: corrupted"
            )
        self.update()
        if header.fingerprint != self.table_fingerprint():
            raise ValueError(
                "this bitstream was written by a model with other weights "
                "(its coding tables differ); decode it with the model that wrote it"
            )
        return header, strings, self.latent_size(header.height, header.width)

    @torch.no_grad()
    def decompress(self, data: bytes) -> torch.Tensor:
        """The image ``[3, H, W]`` of the original size from :meth:`compress`'s bytes.

        Raises ``ValueError`` for bytes that are truncated, altered, not a bitstream,
        written by another model (class, hyper-parameters or weights), or coded with
        table indexes this model does not compute from them
        (``bitstream.check_index_digest``: written on another kind of device)."""
        header, strings, latent_size = self.read_bitstream(data)
        with bitstream.index_digest("decode") as digest:
            try:
                x_hat = self.strings_to_image(strings, latent_size, header.coder)
            except ValueError as error:  # intact bytes (CRC) the coder cannot read
                raise ValueError(
                    f"{error} (or, if it was written on another kind of device such "
                    f"as a GPU, coded with other table indexes than this decoder "
                    f"computes: decode it on the kind of device that wrote it)"
                ) from error
        bitstream.check_index_digest(header, digest[0])
        return x_hat[0, :, : header.height, : header.width].clamp(0, 1)
