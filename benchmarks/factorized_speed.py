"""Speed of lic_teach's factorized prior against CompressAI's, measured in one run.

Prints (1) the training-step time of lic_teach's FactorizedPrior over CompressAI's for
the same N, M, batch and weights (steps interleaved, median of the per-pair ratios), and
(2) symbols per second of the readable Python rANS and CompressAI's C++ rANS coding the
same latents with the same tables.

    python benchmarks/factorized_speed.py            # N=128, M=192, batch 8 of 128x128
    python benchmarks/factorized_speed.py --quick    # a few seconds, for the tests
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lic_teach import coding, crosscheck, data
from lic_teach.models import FactorizedPrior
from lic_teach.train import RateDistortionLoss, split_parameters


def training_step(model, x, criterion, optimizer, aux_optimizer) -> float:
    start = time.perf_counter()
    optimizer.zero_grad()
    aux_optimizer.zero_grad()
    loss = criterion(model(x), x)["loss"]
    loss.backward()
    optimizer.step()
    model.aux_loss().backward()
    aux_optimizer.step()
    return time.perf_counter() - start


def optimizers(model):
    main, aux = split_parameters(model)
    return torch.optim.Adam(main, lr=1e-4), torch.optim.Adam(aux, lr=1e-3)


def benchmark_training(N, M, batch, size, steps, warmup):
    torch.manual_seed(0)
    ours = FactorizedPrior(N, M)
    theirs = crosscheck.to_compressai(ours)
    x = torch.rand(batch, 3, size, size)
    criterion = RateDistortionLoss(0.01)
    ours_opt, theirs_opt = optimizers(ours), optimizers(theirs)
    for _ in range(warmup):
        training_step(ours, x, criterion, *ours_opt)
        training_step(theirs, x, criterion, *theirs_opt)
    ratios, ours_times, theirs_times = [], [], []
    for step in range(steps):  # interleaved, alternating who goes first
        if step % 2:
            t_theirs = training_step(theirs, x, criterion, *theirs_opt)
            t_ours = training_step(ours, x, criterion, *ours_opt)
        else:
            t_ours = training_step(ours, x, criterion, *ours_opt)
            t_theirs = training_step(theirs, x, criterion, *theirs_opt)
        ours_times.append(t_ours)
        theirs_times.append(t_theirs)
        ratios.append(t_ours / t_theirs)
    return (
        statistics.median(ours_times),
        statistics.median(theirs_times),
        statistics.median(ratios),
    )


def benchmark_coders(N, M, size):
    torch.manual_seed(0)
    model = FactorizedPrior(N, M).eval()
    model.update()
    x = data.center_crop(data.sample_images("test")["astronaut"], size)[None]
    with torch.no_grad():
        y = model.g_a(x)
    prior = model.prior
    symbols = prior.quantize(y).reshape(-1).int().tolist()
    indexes = prior._indexes(y.shape).reshape(-1).int().tolist()
    tables = (
        prior.quantized_cdf.tolist(),
        prior.cdf_length.tolist(),
        prior.cdf_offset.tolist(),
    )
    results = {}
    for name in ("readable", "ans"):
        coder = coding.get_coder(name)
        coder.encode_with_indexes(
            symbols[:100], indexes[:100], *tables
        )  # warm up / import
        start = time.perf_counter()
        string = coder.encode_with_indexes(symbols, indexes, *tables)
        encode = time.perf_counter() - start
        start = time.perf_counter()
        decoded = coder.decode_with_indexes(string, indexes, *tables)
        decode = time.perf_counter() - start
        assert decoded == symbols
        results[name] = (len(symbols) / encode, len(symbols) / decode, len(string))
    return len(symbols), results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", type=int, default=128)
    parser.add_argument("--M", type=int, default=192)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="training patch size")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, a few seconds"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.N, args.M, args.batch, args.size, args.steps = 16, 24, 2, 64, 4
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    ours, theirs, ratio = benchmark_training(
        args.N, args.M, args.batch, args.size, args.steps, warmup=2
    )
    print(
        f"training step, N={args.N} M={args.M} "
        f"batch {args.batch}x{args.size}x{args.size}: "
        f"lic_teach {1000 * ours:.1f} ms, CompressAI {1000 * theirs:.1f} ms, "
        f"ratio lic_teach/CompressAI = {ratio:.3f} "
        f"(median of {args.steps} interleaved pairs)"
    )
    count, coders = benchmark_coders(args.N, args.M, 256 if args.quick else 512)
    for name, (encode, decode, size) in coders.items():
        print(
            f"coder {name:8s}: {count} symbols -> {size} bytes; "
            f"encode {encode:,.0f} symbols/s, decode {decode:,.0f} symbols/s"
        )
    ans, readable = coders["ans"], coders["readable"]
    print(
        f"speed ratio CompressAI rANS / readable rANS: "
        f"encode {ans[0] / readable[0]:.0f}x, decode {ans[1] / readable[1]:.0f}x; "
        f"size readable/ans = {readable[2] / ans[2]:.4f}"
    )
    return ratio


if __name__ == "__main__":
    main()
