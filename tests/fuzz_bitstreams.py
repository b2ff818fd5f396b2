"""Untrusted bitstreams, fuzzed: ``python tests/fuzz_bitstreams.py [cases per stream]
[kind ...]``.

For every model kind and both coders, a valid bitstream of a 48 x 70 image is mutated
(bits flipped, bytes overwritten, strings cut, lengthened, dropped, swapped or
replaced), and its header is crafted (sizes huge, zero or off by a few, string counts at
their limits, the other coder named), each time packed again with a valid CRC so the
payload reaches the entropy decoder. Each case must end in a picture of the header's
size or in a ``ValueError``; this script prints one JSON line per case as it starts and
ends (so that a crash names its case) and a summary.
``tests/test_untrusted_bitstreams.py`` runs it in a child process.
"""

import json
import random
import resource
import sys
import time
from collections import Counter

import torch

from lic_teach import bitstream, trellis
from lic_teach.data import pad_to
from lic_teach.models import (
    CheckerboardContext,
    FactorizedPrior,
    JointAutoregressive,
    MeanScaleHyperprior,
    ScaleHyperprior,
)

KINDS = {
    "FactorizedPrior": FactorizedPrior,
    "ScaleHyperprior": ScaleHyperprior,
    "MeanScaleHyperprior": MeanScaleHyperprior,
    "JointAutoregressive": JointAutoregressive,
    "CheckerboardContext": CheckerboardContext,
}
SIZES = [
    (0, 70),
    (48, 0),
    (1, 1),
    (16, 16),
    (47, 70),
    (48, 71),
    (64, 96),
    (480, 700),
    (100_000, 100_000),
    (2**32 - 1, 2**32 - 1),
]
LARGE = (1600, 1600)  # decoded in full by parallel models; a serial one is too slow


def make_model(kind: str, seed: int):
    """A small model whose weights are moved off their start, so its strings vary."""
    torch.manual_seed(seed)
    model = KINDS[kind](16, 24).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not name.endswith("quantiles"):
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.update(force=True)
    return model


def mutate(strings: list, rng: random.Random) -> tuple[str, list]:
    """One random change to the strings: ``(what, new strings)``."""
    strings = [bytearray(s) for s in strings]
    i = rng.randrange(len(strings))
    s = strings[i]
    what = rng.choice(
        [
            "flip",
            "overwrite",
            "cut",
            "lengthen",
            "insert",
            "delete",
            "replace",
            "empty",
            "drop",
            "duplicate",
            "swap",
        ]
    )
    if what == "flip" and s:
        for _ in range(rng.randint(1, 4)):
            s[rng.randrange(len(s))] ^= 1 << rng.randrange(8)
    elif what == "overwrite" and s:
        s[rng.randrange(len(s))] = rng.randrange(256)
    elif what == "cut":
        del s[len(s) - rng.randint(1, max(1, len(s))) :]
    elif what == "lengthen":
        s += bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 8, 64])))
    elif what == "insert":
        s.insert(rng.randrange(len(s) + 1), rng.randrange(256))
    elif what == "delete" and s:
        del s[rng.randrange(len(s))]
    elif what == "replace":
        strings[i] = bytearray(
            rng.getrandbits(8) for _ in range(rng.choice([4, 8, 12, 64, 1000]))
        )
    elif what == "empty":
        strings[i] = bytearray()
    elif what == "drop":
        del strings[i]
    elif what == "duplicate":
        strings.insert(i, bytearray(s))
    elif what == "swap" and len(strings) > 1:
        strings[0], strings[-1] = strings[-1], strings[0]
    return what, [bytes(s) for s in strings]


def crafted(header, strings, kind: str):
    """Headers and string lists at their limits: ``(name, header, strings)``."""

    def with_size(h, w):
        return bitstream.Header(
            header.model, header.params, header.fingerprint, h, w, header.coder
        )

    sizes = SIZES + (
        [LARGE]
        if kind in ("FactorizedPrior", "ScaleHyperprior", "MeanScaleHyperprior")
        else []
    )
    for h, w in sizes:
        yield f"size {h}x{w}", with_size(h, w), strings
    other = "readable" if header.coder == "ans" else "ans"
    yield (
        "other coder",
        bitstream.Header(
            header.model,
            header.params,
            header.fingerprint,
            header.height,
            header.width,
            other,
        ),
        strings,
    )
    yield "no strings", header, []
    yield "255 empty strings", header, [b""] * 255
    yield "each string 8 zero bytes", header, [bytes(8)] * len(strings)
    yield "each string 0xFF", header, [b"\xff" * 64] * len(strings)
    yield (
        "each string a valid state",
        header,
        [(1 << 31).to_bytes(8, "little")] * len(strings),
    )


def cases(per_stream: int, kinds=tuple(KINDS), seed: int = 0):
    """``(kind, coder, name, decode, data, (height, width) in its header)`` for every
    case."""
    rng = random.Random(seed)
    image = torch.rand(3, 48, 70, generator=torch.Generator().manual_seed(seed))
    for kind in kinds:
        model = make_model(kind, seed)
        streams = {
            coder: (model.decompress, model.compress(image, coder))
            for coder in ("ans", "readable")
        }
        if kind == "FactorizedPrior":
            y = model.g_a(pad_to(image[None], model.downsampling))
            weights = torch.ones(1, 24, 1, 1)
            for coder in ("ans", "readable"):
                data = trellis.compress_trellis(model, y, weights, 48, 70, coder)
                streams["trellis " + coder] = (
                    lambda d, m=model: trellis.decompress_trellis(m, d),
                    data,
                )
        for coder, (decode, data) in streams.items():
            header, strings = bitstream.unpack(data)
            size = (header.height, header.width)
            yield kind, coder, "valid", decode, data, size
            for name, new_header, new_strings in crafted(header, strings, kind):
                yield (
                    kind,
                    coder,
                    name,
                    decode,
                    bitstream.pack(new_header, new_strings),
                    (new_header.height, new_header.width),
                )
            for _ in range(per_stream):
                what, new_strings = mutate(strings, rng)
                yield (
                    kind,
                    coder,
                    what,
                    decode,
                    bitstream.pack(header, new_strings),
                    size,
                )


def peak_resident_mib() -> float:
    """This process's peak resident memory since it started, in MiB: ``VmHWM``, which
    starts afresh at ``exec``. (``ru_maxrss`` carries the parent's peak across ``fork``
    and ``exec``: started from a large pytest process, a child would report pytest's
    size.)"""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(per_stream: int, kinds=tuple(KINDS), out=sys.stdout) -> Counter:
    outcomes = Counter()
    for number, (kind, coder, name, decode, data, size) in enumerate(
        cases(per_stream, kinds)
    ):
        print(
            json.dumps({"start": number, "kind": kind, "coder": coder, "case": name}),
            file=out,
            flush=True,
        )
        started = time.perf_counter()
        try:
            picture = decode(data)
            outcome = (
                "decoded"
                if tuple(picture.shape) == (3, *size)
                else f"wrong size {tuple(picture.shape)}"
            )
        except ValueError:
            outcome = "ValueError"
        except Exception as error:  # noqa: BLE001 - what the test reports
            outcome = f"{type(error).__name__}: {str(error)[:120]}"
        seconds = time.perf_counter() - started
        outcomes[(kind, outcome)] += 1
        print(
            json.dumps(
                {"end": number, "outcome": outcome, "seconds": round(seconds, 3)}
            ),
            file=out,
            flush=True,
        )
    peak_mib = peak_resident_mib()
    print(
        json.dumps(
            {
                "summary": [[k, o, n] for (k, o), n in sorted(outcomes.items())],
                "peak_mib": round(peak_mib),
            }
        ),
        file=out,
        flush=True,
    )
    return outcomes


if __name__ == "__main__":
    torch.set_num_threads(1)
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 50, sys.argv[2:] or tuple(KINDS))
