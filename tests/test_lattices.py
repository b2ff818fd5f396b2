"""Lattices: exact closest points against brute force, G against the known values within
its Monte Carlo error, cell masses that sum to one, clear errors for bad bases, a real
code for 2-D points, and an image model whose latents are lattice-quantized
(``lattice_quantized``)."""

import copy
import itertools
import math
import subprocess
import sys

import pytest
import torch

from lic_teach import lattice_quantized, lattices, metrics, toy_sources, train
from lic_teach.experiments import lattice_vq
from lic_teach.models import FactorizedPrior

EXACT = [
    lattices.integer_lattice(3),
    lattices.hexagonal(),
    lattices.checkerboard(4),
    lattices.gosset(),
]


def test_lattice_mathematics_loads_no_image_model_and_no_training_loop():
    """Lattices stand alone; their image-model wrapper is ``lattice_quantized``."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, lic_teach.lattices; print(*sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(m for m in loaded if m.startswith("lic_teach")) == [
        "lic_teach",
        "lic_teach.lattices",
    ]


def _neighbourhood_best(y, basis, radius):
    """The nearest of the points ``(round(y B^-1) + o) B`` over every offset ``o`` in
    ``[-radius, radius]^n``."""
    centre = torch.round(y @ torch.linalg.inv(basis))
    offsets = torch.tensor(
        list(itertools.product(range(-radius, radius + 1), repeat=basis.shape[0])),
        dtype=basis.dtype,
    )
    candidates = (centre[:, None, :] + offsets[None]) @ basis  # [N, O, n]
    distances = ((candidates - y[:, None, :]) ** 2).sum(-1)
    return distances.min(dim=1).values


@pytest.mark.parametrize("lattice", EXACT, ids=lambda lattice: lattice.name)
def test_exact_closest_points_are_lattice_points_no_neighbour_beats(lattice):
    generator = torch.Generator().manual_seed(1)
    y = 3 * torch.randn(400, lattice.n, generator=generator, dtype=torch.float64)
    q = lattice.quantize(y)
    coefficients = q @ torch.linalg.inv(lattice.basis)
    assert torch.allclose(
        coefficients, coefficients.round(), atol=1e-9
    )  # on the lattice
    radius = 1 if lattice.n == 8 else 2
    best = _neighbourhood_best(y, lattice.basis, radius)
    assert (((y - q) ** 2).sum(-1) <= best + 1e-9).all()  # nothing nearby is nearer
    assert torch.allclose(
        q, lattices.closest_point_search(y, lattice.basis)
    )  # the sphere decoder agrees


def test_sphere_decoding_is_exact_where_babai_misses():
    skewed = torch.tensor(
        [[1.0, 0.0, 0.0], [0.9, 0.3, 0.0], [0.4, 0.7, 0.5]], dtype=torch.float64
    )
    y = (
        torch.randn(
            300, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64
        )
        * 2
    )
    exact = lattices.closest_point_search(y, skewed)
    best = _neighbourhood_best(y, skewed, 4)
    assert torch.allclose(((y - exact) ** 2).sum(-1), best)
    babai = lattices.babai(y, skewed)
    assert (
        ((y - babai) ** 2).sum(-1) > best + 1e-9
    ).float().mean() > 0.1  # Babai misses often here


@pytest.mark.parametrize("name", ["Z", "A2", "D4", "E8"])
def test_second_moment_matches_the_known_value_within_its_error(name):
    lattice = lattices.CLASSICAL[name]()
    measured = lattices.second_moment(
        lattice.basis, lattice.quantize, count=100_000, seed=3
    )
    assert abs(measured["G"] - lattices.KNOWN_G[name]) < 4 * measured["error"]
    assert measured["error"] < 0.0004
    assert (
        abs(
            lattices.second_moment(
                lattice.scaled(2.5).basis, lattice.scaled(2.5).quantize, 100_000, 3
            )["G"]
            - measured["G"]
        )
        < 1e-9
    )  # G does not depend on scale


def test_babai_cells_are_never_better_than_the_cube():
    """Babai's cell is the parallelepiped ``[-1/2, 1/2)^n B``, whose G is at least 1/12
    (Hadamard's inequality), equal for an orthogonal basis with equal lengths."""
    for lattice in EXACT[1:]:
        g = lattices.second_moment(lattice.basis, lattice.babai, 50_000)["G"]
        assert g > 1 / 12 + 0.005
    rotation = torch.linalg.qr(
        torch.randn(
            3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64
        )
    )[0]
    measured = lattices.second_moment(
        rotation, lambda y: lattices.babai(y, rotation), 50_000
    )
    assert abs(measured["G"] - 1 / 12) < 4 * measured["error"]


def test_babai_miss_rate_is_zero_for_an_orthogonal_basis_and_not_for_a_skewed_one():
    assert (
        lattices.babai_miss_rate(torch.diag(torch.tensor([1.0, 2.0])), 500)["rate"]
        == 0.0
    )
    skewed = lattices.babai_miss_rate(torch.tensor([[1.0, 0.0], [0.9, 0.3]]), 1000)
    assert 0.1 < skewed["rate"] < 0.5
    assert skewed["excess"] > 0.2


@pytest.mark.parametrize("lattice", EXACT, ids=lambda lattice: lattice.name)
def test_cell_noise_is_uniform_over_the_voronoi_cell(lattice):
    u = lattices.cell_noise(
        (20_000,),
        lattice.basis,
        lattice.quantize,
        torch.Generator().manual_seed(4),
        dtype=torch.float64,
    )
    assert torch.equal(
        lattice.quantize(u), torch.zeros_like(u)
    )  # every point in the cell of 0
    assert u.mean(0).abs().max() < 0.03


@pytest.mark.parametrize("source", ["banana", "laplace"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: lattices.hexagonal().with_volume(0.5),
        lambda: lattices.Lattice("skewed", [[0.7, 0.0], [0.5, 0.6]]),
    ],
    ids=["A2", "skewed, Babai cells"],
)
def test_cell_masses_sum_to_one_over_the_lattice(source, make):
    lattice = make()
    x = toy_sources.SOURCES[source](200_000, torch.Generator().manual_seed(0)).double()
    reached = torch.unique(
        torch.round(lattice.quantize(x) @ torch.linalg.inv(lattice.basis)), dim=0
    )
    ring = torch.tensor(
        list(itertools.product(range(-3, 4), repeat=2)), dtype=torch.float64
    )
    points = (
        torch.unique((reached[:, None] + ring[None]).reshape(-1, 2), dim=0)
        @ lattice.basis
    )
    log_mass = lattices.cell_log_mass(
        toy_sources.LOG_DENSITIES[source],
        points,
        lattice.basis,
        lattice.quantize,
        samples=256,
        generator=torch.Generator().manual_seed(1),
    )
    assert abs(float(log_mass.exp().sum()) - 1) < 0.01


def test_cell_mass_of_the_integer_lattice_is_the_exact_bin_probability():
    points = torch.tensor([[0.0, 0.0], [1.0, -2.0], [3.0, 1.0]], dtype=torch.float64)
    z = lattices.integer_lattice(2)
    estimate = lattices.cell_log_mass(
        toy_sources.laplace_log_density,
        points,
        z.basis,
        z.quantize,
        samples=20_000,
        generator=torch.Generator().manual_seed(0),
    ).exp()

    def bin_mass(t):  # the Laplace CDF over [t - 1/2, t + 1/2]
        cdf = lambda v: 0.5 * math.exp(v) if v < 0 else 1 - 0.5 * math.exp(-v)
        return cdf(t + 0.5) - cdf(t - 0.5)

    exact = torch.tensor(
        [bin_mass(a) * bin_mass(b) for a, b in points.tolist()], dtype=torch.float64
    )
    assert torch.allclose(estimate, exact, rtol=0.02)


def _laplace_bin(q, half, scale=0.7):
    cdf = lambda v: torch.where(
        v < 0, 0.5 * torch.exp(v / scale), 1 - 0.5 * torch.exp(-v / scale)
    )
    return torch.log(cdf(q + half) - cdf(q - half))


def test_dn_cell_masses_are_exact_for_a_product_density():
    laplace = lambda t: -t.abs() / 0.7 - math.log(1.4)
    points = torch.tensor(
        [k for k in itertools.product(range(-6, 7), repeat=4) if sum(k) % 2 == 0],
        dtype=torch.float64,
    )
    log_mass = lattices.dn_cell_log_mass(_laplace_bin, laplace, points)
    assert abs(float(log_mass.exp().sum()) - 1) < 1e-3  # all but the far tails
    y = (
        -0.7
        * torch.sign(
            torch.rand(400_000, 4, generator=torch.Generator().manual_seed(0)) - 0.5
        )
        * torch.log(torch.rand(400_000, 4, generator=torch.Generator().manual_seed(1)))
    ).double()
    hits = lattices.closest_dn(y)
    for q in ([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, -1.0, 1.0, 1.0]):
        q = torch.tensor(q, dtype=torch.float64)
        frequency = float((hits == q).all(dim=1).double().mean())
        mass = float(lattices.dn_cell_log_mass(_laplace_bin, laplace, q[None]).exp())
        assert abs(frequency - mass) < 4 * math.sqrt(mass * (1 - mass) / len(y)) + 1e-4


@pytest.mark.parametrize(
    "basis, message",
    [
        ([[1.0, 2.0], [2.0, 4.0]], "singular"),
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "square"),
        ([[1.0, float("nan")], [0.0, 1.0]], "finite"),
        ([[0.0, 0.0], [0.0, 0.0]], "singular"),
    ],
)
def test_bad_bases_raise_value_errors(basis, message):
    with pytest.raises(ValueError, match=message):
        lattices.Lattice("bad", basis)
    with pytest.raises(ValueError, match=message):
        lattices.second_moment(basis, torch.round)
    with pytest.raises(ValueError, match=message):
        lattices.closest_point_search(torch.zeros(1, len(basis[0])), basis)


def test_the_2d_code_decodes_what_it_coded_even_far_outside_its_table():
    lattice = lattices.hexagonal().with_volume(0.36)
    code = lattice_vq.LatticeCode(lattice, "banana", count=20_000)
    x = toy_sources.banana(3000, torch.Generator().manual_seed(5)).double()
    x[7] = torch.tensor([40.0, -30.0])  # nowhere near the table
    for coder in ("ans", "readable"):
        stream = code.encode(x, coder)
        assert torch.allclose(code.decode(stream, coder), lattice.quantize(x))
    point = lattice_vq.toy_point(lattice, "banana", 20_000)
    assert abs(point["bits"] - point["ideal"]) < 0.05
    assert point["escapes"] <= 5
    with pytest.raises(ValueError):
        code.decode(stream[:3])
    with pytest.raises(ValueError):
        code.decode(stream[:-5])
    broken = bytearray(stream)
    broken[10] ^= 0xFF
    with pytest.raises(ValueError):
        code.decode(bytes(broken))


def test_hexagonal_cells_code_the_2d_sources_at_a_lower_rate_than_squares():
    curves = lattice_vq.toy_curves("laplace", steps=(0.3, 0.42, 0.6), count=30_000)
    comparison = metrics.bd_comparison(curves["scalar"], curves["A2"])
    assert comparison["error"] is None
    assert -2.0 < comparison["bd_rate"] < 0.0


def test_a_learned_2d_lattice_trains_towards_orthogonal_from_a_skewed_start():
    skewed = torch.tensor([[0.6, 0.0], [0.45, 0.45]])
    lattice, history = lattice_vq.fit_toy_lattice("banana", 0.6, steps=60, start=skewed)
    first, last = (
        sum(h["loss"] for h in part) / 10 for part in (history[:10], history[-10:])
    )
    assert last < first - 0.05
    before = lattices.babai_miss_rate(skewed, 1000)["rate"]
    assert lattices.babai_miss_rate(lattice.basis, 1000)["rate"] < before / 2


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = FactorizedPrior(8, 16).eval()
    model.update()
    return model


def test_the_integer_lattice_gives_the_model_its_own_rate(model, photo):
    x = photo[None, :, :64, :64]
    with torch.no_grad():
        exact = float(metrics.bits(model(x)["likelihoods"]))
        codec = lattice_quantized.LatticeQuantized(
            copy.deepcopy(model), lattices.integer_lattice(4), samples=512
        ).eval()
        out = codec(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out["x_hat"], model(x)["x_hat"])  # Z^n is rounding
    assert abs(float(metrics.bits(out["likelihoods"])) - exact) < 0.01 * exact


def test_lattice_training_moves_the_learned_basis_and_keeps_it_finite(model, photo):
    codec = lattice_quantized.LatticeQuantized(
        copy.deepcopy(model), lattices.LearnedLattice(4), samples=4
    )
    before = codec.lattice.basis.detach().clone()
    crops = [photo[None, :, :64, :64], photo[None, :, 64:128, 64:128]]
    history = train.fit(
        codec,
        crops,
        steps=3,
        lmbda=0.01,
        criterion=lattice_quantized.LatticeLoss(codec, 0.01),
        lr=1e-2,
        progress=False,
    )
    assert all(math.isfinite(h["loss"]) for h in history)
    assert not torch.equal(codec.lattice.basis.detach(), before)
    assert float(lattices.LearnedLattice(3).orthogonality().detach()) == 0.0


def test_lattice_quantization_refuses_channels_that_do_not_group(model):
    with pytest.raises(ValueError, match="vectors of 3"):
        lattice_quantized.LatticeQuantized(model, lattices.LearnedLattice(3))


def test_full_search_finds_the_nearest_codeword():
    generator = torch.Generator().manual_seed(0)
    y = torch.randn(500, 8, generator=generator)
    codebook = torch.randn(256, 8, generator=generator)
    nearest = lattice_vq.nearest_codeword(y, codebook, chunk=64)
    best = torch.cdist(y, codebook).min(dim=1).values ** 2
    assert torch.allclose(((y - nearest) ** 2).sum(dim=1), best, atol=1e-4)


def test_encode_times_name_each_quantizer_and_give_the_threads_back():
    """Which quantizer is faster is the chapter's measurement, not a test's: a loaded
    machine can reorder wall-clock times."""
    threads = torch.get_num_threads()
    rows = lattice_vq.encode_times(
        count=2000, vq_count=100, bits_per_dimension=(1.0,), repeats=1
    )
    assert [row["quantizer"] for row in rows] == [
        "scalar rounding",
        "Babai's rounding (E8 basis)",
        "exact E8 (two D8 searches)",
        "full search, 256 codewords (1 bit/dim)",
    ]
    assert torch.get_num_threads() == threads


def test_measured_rates_are_exact_for_d4_and_estimated_within_their_spread_otherwise(
    model, photo
):
    x = photo[None, :, :64, :64]
    d4 = lattice_quantized.LatticeQuantized(
        copy.deepcopy(model), lattices.checkerboard(4).with_volume(1.0)
    ).eval()
    e8 = lattice_quantized.LatticeQuantized(
        copy.deepcopy(model), lattices.gosset()
    ).eval()
    assert d4.exact_mass
    assert not e8.exact_mass
    assert not lattice_quantized.LatticeQuantized(
        copy.deepcopy(model), lattices.LearnedLattice(4)
    ).exact_mass
    exact, _ = d4.measured_bits(x)
    estimated = [
        d4.measured_bits(x, 256, torch.Generator().manual_seed(s), exact=False)[0]
        for s in range(2)
    ]
    assert all(abs(e / exact - 1) < 0.01 for e in estimated)
    images = {"crop": photo[:, :64, :64]}
    study = lattice_vq.ImageStudy(eval_samples=32, repeats=2)
    scalar = lattice_vq.measure(copy.deepcopy(model), images, study)
    assert scalar["exact"]
    assert scalar["bpp_error"] == 0
    assert abs(scalar["bpp_mc"] / scalar["bpp"] - 1) < 0.05
    assert (
        scalar["bpp_real"] > scalar["bpp"]
    )  # real bytes: the ideal length plus the header and coder overhead
    measured = lattice_vq.measure(e8, images, study)
    assert not measured["exact"]
    assert measured["bpp_error"] > 0
    assert "bpp_mc" not in measured


def test_the_shipped_lattice_study_is_complete_and_its_own():
    found = lattice_vq.records()
    study = lattice_vq.STUDY
    keys = {(r["variant"], r["quality"], r["seed"]) for r in found}
    assert keys == {
        (v, q, s) for v in study.variants for q in study.qualities for s in study.seeds
    }
    for r in found:
        assert r["study"] == study.key()
        assert r["bpp"] > 0
        assert r["psnr"] > 20
        assert r["exact"] == (r["variant"] in ("scalar", "D4"))
        assert (r["bpp_error"] > 0) != r["exact"]
        if r["variant"].startswith("learned"):
            assert (
                0 <= r["miss_rate"] < 0.05
            )  # the regularizer kept Babai's rounding exact
    assert set(lattice_vq.bd_against_scalar(found)) == set(study.variants) - {"scalar"}


def test_a_lattice_study_resumes_where_it_stopped(tmp_path, monkeypatch):
    tiny = lattice_vq.ImageStudy(
        qualities=(1,),
        variants=("scalar", "E8"),
        steps=1,
        patch_size=64,
        batch_size=2,
        eval_size=64,
        eval_samples=4,
        repeats=2,
    )
    first = lattice_vq.run_study(tiny, tmp_path, progress=False)
    assert len(first) == 2
    assert all(r["study"] == tiny.key() for r in first)
    monkeypatch.setattr(
        lattice_vq,
        "run",
        lambda *args, **kwargs: pytest.fail("a finished record was run again"),
    )
    assert lattice_vq.run_study(tiny, tmp_path, progress=False) == first
