"""What every image model shares: checking the input, padding to the downsampling
factor, and wrapping its strings in a verified bitstream (``lic_teach.bitstream``)."""
from __future__ import annotations

import zlib

import torch
from torch import nn

from .. import bitstream, coding
from ..data import as_batch, pad_to
from ..entropy_models import _CodingTables


class ImageCodec(nn.Module):
    """The model contract. A subclass has the transforms ``g_a`` (image -> ``y``) and
    ``g_s`` (``y_hat`` -> image) and defines:

    - ``hyperparameters() -> tuple``: what its constructor takes (``(N, M)``);
    - ``entropy(y) -> (y_hat, {"y": likelihoods, ...})``: its entropy model alone, noise
      in training and the coder's rounding in eval (one likelihood tensor per latent);
    - ``image_to_strings(x, coder) -> strings``: a padded image ``[1, 3, H, W]`` to the
      coded strings of its latents;
    - ``strings_to_image(strings, latent_size, coder) -> [1, 3, H, W]``: back, where
      ``latent_size`` is that of the coarsest latent (:meth:`latent_size`); there are
      as many strings as ``string_names`` (checked before).

    The base class gives ``forward`` (CompressAI's output dict), ``compress`` and
    ``decompress`` (a verified, self-contained bitstream), ``update`` and ``aux_loss``."""

    downsampling = 16        # of the coarsest latent: images are padded to multiples of it
    y_stride = 16            # of g_a: one latent of y stands for 16 x 16 pixels
    string_names = ("y",)    # the strings of its bitstream, in order

    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` of the coarsest latent of a ``height x width`` image, once padded."""
        return -(-height // self.downsampling), -(-width // self.downsampling)

    def hyperparameters(self) -> tuple[int, ...]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict:
        """``{"x_hat", "likelihoods"}``: noisy latents in training, rounded in eval."""
        y_hat, likelihoods = self.entropy(self.g_a(x))
        return {"x_hat": self.g_s(y_hat), "likelihoods": likelihoods}

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
        """Code one image ``[3, H, W]`` (any H, W) into a self-contained bitstream.

        ``coder="ans"`` uses CompressAI's C++ rANS, ``"readable"`` the Python coder of
        ``lic_teach.coding``; both decode to the same image.
        """
        coding.get_coder(coder)             # a clear error for an unknown name, before any work
        x = as_batch(x).to(next(self.parameters()).device)
        self.update()
        strings = self.image_to_strings(pad_to(x, self.downsampling), coder)
        return bitstream.pack(self.bitstream_header(x.shape[-2], x.shape[-1], coder), strings)

    def bitstream_header(self, height: int, width: int, coder: str, layout: str = "") -> bitstream.Header:
        """The header of this model's bitstream of a ``height x width`` image; ``layout``
        names another arrangement of its latents (e.g. ``"+DQ"``) that only a matching
        decoder reads. Call after :meth:`update`: it carries the tables' fingerprint."""
        return bitstream.Header(type(self).__name__ + layout, self.hyperparameters(), self.table_fingerprint(),
                                height, width, coder)

    def read_bitstream(self, data: bytes, layout: str = "") -> tuple[bitstream.Header, list, tuple[int, int]]:
        """``(header, strings, latent_size)`` of bytes written by :meth:`bitstream_header`'s
        model and ``layout``; ``ValueError`` for bytes that are truncated, altered, not a
        bitstream, or written by another model (class, hyper-parameters or weights)."""
        header, strings = bitstream.unpack(data)
        expected = (type(self).__name__ + layout, self.hyperparameters())
        if (header.model, header.params) != expected:
            raise ValueError(f"this bitstream was written by {header.model}{header.params}, "
                             f"not by {expected[0]}{expected[1]}")
        if len(strings) != len(self.string_names):
            raise ValueError(f"a {expected[0]} bitstream holds {len(self.string_names)} strings "
                             f"({', '.join(self.string_names)}), this one {len(strings)}: corrupted")
        self.update()
        if header.fingerprint != self.table_fingerprint():
            raise ValueError("this bitstream was written by a model with other weights "
                             "(its coding tables differ); decode it with the model that wrote it")
        return header, strings, self.latent_size(header.height, header.width)

    @torch.no_grad()
    def decompress(self, data: bytes) -> torch.Tensor:
        """The image ``[3, H, W]`` of the original size from :meth:`compress`'s bytes.

        Raises ``ValueError`` for bytes that are truncated, altered, not a bitstream, or
        written by another model (class, hyper-parameters or weights)."""
        header, strings, latent_size = self.read_bitstream(data)
        x_hat = self.strings_to_image(strings, latent_size, header.coder)
        return x_hat[0, :, :header.height, :header.width].clamp(0, 1)
