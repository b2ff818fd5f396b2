"""Decoding time of the serial autoregressive context model against the checkerboard
one.

Both models get the same weights (the two architectures have the same parameters; only
the mask of the context convolution and the decoding order differ) and decode the same
256x256 held-out photo on the CPU. Runs are interleaved and the medians printed, with
the ratio serial / checkerboard, with and without the synthesis transform that both
run once. For reference, CompressAI's own serial decoder
(``JointAutoregressiveHierarchicalPriors.decompress``) decodes the same latents.

    python benchmarks/context_decoding.py            # N=128, M=192, 256x256, 5 repeats
    python benchmarks/context_decoding.py --quick    # a few seconds, for the tests
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lic_teach import crosscheck, data
from lic_teach.models import CheckerboardContext, JointAutoregressive


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def twin_models(N: int, M: int):
    """A serial and a checkerboard model with the same weights."""
    torch.manual_seed(0)
    serial = JointAutoregressive(N, M).eval()
    checkerboard = CheckerboardContext(N, M).eval()
    checkerboard.load_state_dict(serial.state_dict(), strict=True)
    for model in (serial, checkerboard):
        model.update(force=True)
    return serial, checkerboard


@torch.no_grad()
def benchmark(N: int, M: int, size: int, repeats: int) -> dict:
    serial, checkerboard = twin_models(N, M)
    x = data.center_crop(data.sample_images("test")["astronaut"], size)
    blobs = {"serial": serial.compress(x), "checkerboard": checkerboard.compress(x)}
    models = {"serial": serial, "checkerboard": checkerboard}
    twin = crosscheck.to_compressai(serial).eval()
    coded = twin.compress(x[None])
    y_hat = torch.zeros(1, M, size // 16, size // 16)
    times = {"serial": [], "checkerboard": [], "compressai serial": [], "synthesis": []}
    for repeat in range(repeats):
        order = (
            ["serial", "checkerboard"]
            if repeat % 2 == 0
            else ["checkerboard", "serial"]
        )
        for name in order:
            times[name].append(timed(models[name].decompress, blobs[name])[0])
        times["compressai serial"].append(
            timed(twin.decompress, coded["strings"], coded["shape"])[0]
        )
        times["synthesis"].append(timed(serial.g_s, y_hat)[0])
    medians = {name: statistics.median(values) for name, values in times.items()}
    medians["positions"] = (size // 16) ** 2
    medians["bytes"] = {name: len(blob) for name, blob in blobs.items()}
    return medians


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", type=int, default=128)
    parser.add_argument("--M", type=int, default=192)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, a few seconds"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.N, args.M, args.size, args.repeats = 16, 24, 128, 1
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        "untrained weights (decoding time depends on the number of positions, "
        "not on the values)"
    )
    result = benchmark(args.N, args.M, args.size, args.repeats)
    ratio = result["serial"] / result["checkerboard"]
    print(
        f"decode {args.size}x{args.size} (N={args.N}, M={args.M}, "
        f"{result['positions']} latent positions), median of {args.repeats}:"
    )
    print(f"  serial autoregressive (lic_teach):  {1000 * result['serial']:8.1f} ms")
    print(
        f"  checkerboard, two passes:           {1000 * result['checkerboard']:8.1f} ms"
    )
    compressai = result["compressai serial"]
    print(f"  serial autoregressive (CompressAI): {1000 * compressai:8.1f} ms")
    print(
        f"  of which the synthesis g_s, shared:  {1000 * result['synthesis']:8.1f} ms"
    )
    latents = (result["serial"] - result["synthesis"]) / (
        result["checkerboard"] - result["synthesis"]
    )
    print(
        f"ratio serial / checkerboard = {ratio:.2f} "
        f"(latent decoding alone: {latents:.1f}); "
        f"lic_teach serial / CompressAI serial = {result['serial'] / compressai:.2f}"
    )
    return ratio


if __name__ == "__main__":
    main()
