"""Lattices as vector quantizers: closest points, cells, and the mass of a cell.

A lattice is the set of points ``k B`` for integer row vectors ``k``, where the rows of
the ``n x n`` generator matrix ``B`` are its basis (the convention of Conway and Sloane,
"Sphere packings, lattices and groups", ch. 1, sec. 1.2). Quantizing ``y`` to a lattice
means finding the closest lattice point; the set of points closer to a lattice point
than to any other is its Voronoi cell, of volume ``|det B|``.

- Exact closest points for the classical lattices follow Conway and Sloane, "Fast
  quantizing and decoding algorithms for lattice quantizers and codes" (IEEE Trans.
  Inf. Theory 28(2), 1982): ``Z^n`` (round each coordinate, sec. II), ``D_n`` (round,
  or round the worst coordinate the other way, whichever sum is even, sec. III),
  ``A_n`` (round, then repair the coordinate sum, sec. IV; ``A2`` is the hexagonal
  lattice) and ``E8`` (the nearer of the answers in ``D8`` and in ``D8 + 1/2``, sec.
  V).
- For any basis, Babai's rounding ``round(y B^-1) B`` (Babai, "On Lovász' lattice
  reduction and the nearest lattice point problem", Combinatorica 1986) is one matrix
  product and a rounding, but it returns the closest point only when ``y`` falls in the
  part of the parallelepiped around it that is inside the Voronoi cell; Zhang and Wu
  ("Learning optimal lattice vector quantizers for end-to-end neural image compression",
  NeurIPS 2024, sec. 3.2) keep a learned basis near orthogonal so that it rarely misses.
  :func:`closest_point_search` finds the true closest point for any basis, by the sphere
  decoding of Fincke and Pohst (Math. Comp. 1985) in the zig-zag order of Schnorr and
  Euchner (Agrell, Eriksson, Vardy and Zeger, "Closest point search in lattices", IEEE
  Trans. Inf. Theory 2002, sec. III-B): slow, but exact, for checking the fast ones.
- The normalized second moment ``G = E||u||^2 / (n V^(2/n))`` of a quantizer's cell
  (``u`` uniform over the cell, ``V`` its volume) is its mean squared error at unit
  volume; Conway and Sloane (1982, table I; SPLAG ch. 2, table 2.3) list the known
  values in :data:`KNOWN_G`.
- A point ``u = r B - Q(r B)`` with ``r`` uniform in the unit cube is uniform over the
  cell of the quantizer ``Q`` (its Voronoi cell when ``Q`` is exact, the parallelepiped
  ``[-1/2, 1/2)^n B`` for Babai's rounding). Adding such ``u`` to ``y`` is the lattice
  form of the uniform noise of end-to-end training, and averaging a density over such
  points estimates a cell's probability mass, the rate of a lattice point (Zhang and Wu,
  sec. 3.3): ``P(cell of q) = V E_u[p(q + u)]``. For ``D_n`` and a density that is a
  product over coordinates, :func:`dn_cell_log_mass` gives the mass exactly (up to
  quadrature), which measures the Monte Carlo estimate's own error.

These are lattices alone; :mod:`lic_teach.lattice_quantized` puts them into an image
model.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import nn

# G of the best known lattice quantizers (Conway and Sloane 1982, table I)
KNOWN_G = {"Z": 1 / 12, "A2": 5 / (36 * math.sqrt(3)), "D4": 0.076603, "E8": 0.071682}


def check_basis(basis) -> torch.Tensor:
    """``basis`` as a float64 ``[n, n]`` tensor, or a ``ValueError`` saying what is
    wrong with it: not square, not finite, or singular (its rows do not span ``R^n``).
    """
    basis = torch.as_tensor(basis, dtype=torch.float64)
    if basis.dim() != 2 or basis.shape[0] != basis.shape[1] or basis.shape[0] == 0:
        raise ValueError(
            "a lattice basis must be a square n x n matrix, "
            f"got shape {tuple(basis.shape)}"
        )
    if not torch.isfinite(basis).all():
        raise ValueError("a lattice basis must be finite")
    singular = torch.linalg.svdvals(basis)
    if singular[-1] <= 1e-9 * singular[0]:
        raise ValueError(
            "the lattice basis is singular: its rows do not span R^n, "
            "so its cells have no volume"
        )
    return basis


# ---------------------------------------------------------------- closest points


def closest_integer(y: torch.Tensor) -> torch.Tensor:
    """The closest point of ``Z^n``: each coordinate rounded (Conway and Sloane 1982,
    sec. II)."""
    return torch.round(y)


def closest_dn(y: torch.Tensor) -> torch.Tensor:
    """The closest point of ``D_n`` (integer vectors with an even sum) to each row of
    ``y`` ``[..., n]``: ``f(y)`` rounds every coordinate; ``g(y)`` rounds the coordinate
    furthest from an integer the wrong way; one of the two has an even sum (1982, sec.
    III)."""
    f = torch.round(y)
    error = y - f
    worst = error.abs().argmax(dim=-1, keepdim=True)  # [..., 1]
    away = torch.where(error.gather(-1, worst) >= 0, 1.0, -1.0).to(y)
    g = f.scatter_add(-1, worst, away)
    even = f.sum(dim=-1, keepdim=True) % 2 == 0
    return torch.where(even, f, g)


def closest_an(x: torch.Tensor) -> torch.Tensor:
    """The closest point of ``A_n`` (integer vectors of ``R^(n+1)`` with zero sum) to
    each row of ``x`` ``[..., n+1]`` (1982, sec. IV): project onto the zero-sum plane,
    round, and if the rounded sum is ``s != 0``, move the ``|s|`` coordinates that
    rounding pushed furthest (up if ``s > 0``, down if ``s < 0``) back by one."""
    x = x - x.mean(dim=-1, keepdim=True)
    f = torch.round(x)
    excess = f.sum(dim=-1, keepdim=True)  # [..., 1]
    rank = torch.argsort(torch.argsort(x - f, dim=-1), dim=-1)  # 0: rounded up the most
    size = x.shape[-1]
    lower = (excess > 0) & (rank < excess)
    raise_ = (excess < 0) & (rank >= size + excess)
    return f - lower.to(x) + raise_.to(x)


# A2 in the plane: (1, 0) and (1/2, sqrt(3)/2) times sqrt(2) are the roots (1, -1, 0)
# and (1, 0, -1) of A2 in R^3 seen in the orthonormal frame below
_A2_FRAME = torch.tensor(
    [[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]], dtype=torch.float64
) / torch.tensor([[math.sqrt(2)], [math.sqrt(6)]], dtype=torch.float64)


def closest_a2(y: torch.Tensor) -> torch.Tensor:
    """The closest point of the hexagonal lattice of :func:`hexagonal` (unit minimal
    distance) to each row of ``y`` ``[..., 2]``, by :func:`closest_an` in ``R^3``."""
    frame = _A2_FRAME.to(y)
    point = closest_an(math.sqrt(2) * y @ frame)
    return point @ frame.T / math.sqrt(2)


def closest_e8(y: torch.Tensor) -> torch.Tensor:
    """The closest point of ``E8 = D8 u (D8 + 1/2)`` to each row of ``y`` ``[..., 8]``:
    the nearer of the closest points in the two cosets (1982, sec. V)."""
    even = closest_dn(y)
    odd = closest_dn(y - 0.5) + 0.5
    nearer = ((y - even) ** 2).sum(-1, keepdim=True) <= ((y - odd) ** 2).sum(
        -1, keepdim=True
    )
    return torch.where(nearer, even, odd)


def coefficients(y: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``round(y B^-1)``: the integer ``k`` of each row of ``y`` ``[..., n]`` (for a
    lattice point ``y = k B``, its coefficients; for any other point, Babai's choice).
    """
    return torch.round(y @ torch.linalg.inv(basis.to(y)))


def babai(y: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Babai's rounding ``round(y B^-1) B`` for each row of ``y`` ``[..., n]``: exact
    for ``Z^n``, an approximation of the closest point for any other basis."""
    return coefficients(y, basis) @ basis.to(y)


def closest_point_search(y, basis) -> torch.Tensor:
    """The exact closest lattice point to each row of ``y`` ``[..., n]``, for any basis:
    sphere decoding (Agrell et al. 2002, sec. III-B). With ``B^T = Q R`` (``R`` upper
    triangular), ``||y - k B|| = ||Q^T y - R k||``; the coefficients are chosen from the
    last to the first, each in zig-zag order around its best real value, and a branch is
    left as soon as its partial distance exceeds the best found. Plain Python: for
    checks."""
    basis = check_basis(basis)
    y = torch.as_tensor(y)
    q, r = (m.numpy() for m in torch.linalg.qr(basis.T))
    rows = y.detach().to(torch.float64).reshape(-1, basis.shape[0]).numpy()
    k = np.stack([_sphere_decode(q.T @ row, r) for row in rows])
    return torch.as_tensor(k @ basis.numpy()).reshape(y.shape).to(y.dtype)


def _sphere_decode(z: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The integer ``k`` minimizing ``||z - r k||`` for upper triangular ``r``."""
    n = len(z)
    best, best_distance = None, math.inf
    k = np.zeros(n)

    def descend(level: int, distance: float) -> None:
        nonlocal best, best_distance
        residual = z[level] - r[level, level + 1 :] @ k[level + 1 :]
        centre = residual / r[level, level]
        start = round(centre)
        side = 1 if centre >= start else -1
        for (
            step
        ) in itertools.count():  # start, start + side, start - side, ...: ever further
            value = start + side * ((step + 1) // 2) * (1 if step % 2 else -1)
            gap = (residual - r[level, level] * value) ** 2
            if distance + gap >= best_distance:
                return  # every later value is further still
            k[level] = value
            if level == 0:
                best, best_distance = k.copy(), distance + gap
            else:
                descend(level - 1, distance + gap)

    descend(n - 1, 0.0)
    return best


# ---------------------------------------------------------------- lattices


class Lattice:
    """A lattice with its basis (rows), volume ``|det B|`` and quantizer: the exact
    closest point when an algorithm is known, else Babai's rounding.

    Args:
        name: how tables and figures call it.
        basis: the ``n x n`` generator matrix (a singular one raises ``ValueError``).
        closest: exact closest-point function for this basis, or ``None``.
    """

    def __init__(self, name: str, basis, closest=None, scale: float = 1.0):
        self.name, self.basis, self.closest = name, check_basis(basis), closest
        self.scale = float(scale)  # of the points, against the lattice's standard form

    @property
    def n(self) -> int:
        return self.basis.shape[0]

    @property
    def volume(self) -> float:
        return float(torch.linalg.det(self.basis).abs())

    def quantize(self, y: torch.Tensor) -> torch.Tensor:
        """The lattice point chosen for each row of ``y`` ``[..., n]``."""
        return self.closest(y) if self.closest is not None else babai(y, self.basis)

    def babai(self, y: torch.Tensor) -> torch.Tensor:
        return babai(y, self.basis)

    def scaled(self, factor: float) -> Lattice:
        """The same lattice with every point multiplied by ``factor``."""
        exact = None if self.closest is None else _Scaled(self.closest, factor)
        return Lattice(self.name, factor * self.basis, exact, self.scale * factor)

    def with_volume(self, volume: float = 1.0) -> Lattice:
        """Scaled to cells of the given volume (unit volume: the density of ``Z^n``)."""
        return self.scaled((volume / self.volume) ** (1 / self.n))

    def __repr__(self) -> str:
        return f"Lattice({self.name!r}, n={self.n}, volume={self.volume:.4g})"


class _Scaled:
    """The closest point of a lattice scaled by ``factor``, from the unscaled one's
    ``closest`` (a class, not a closure, so that a lattice can be pickled: a grading
    judge sends one to a student's kernel)."""

    def __init__(self, closest, factor: float):
        self.closest, self.factor = closest, factor

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        return self.factor * self.closest(y / self.factor)


def integer_lattice(n: int) -> Lattice:
    """``Z^n``: scalar rounding of every coordinate."""
    return Lattice("Z" if n == 1 else f"Z^{n}", torch.eye(n), closest_integer)


def hexagonal() -> Lattice:
    """``A2``, the hexagonal lattice, with unit minimal distance."""
    return Lattice("A2", [[1.0, 0.0], [0.5, math.sqrt(3) / 2]], closest_a2)


def checkerboard(n: int = 4) -> Lattice:
    """``D_n``: integer vectors with an even coordinate sum (SPLAG ch. 4, sec. 7.1)."""
    if n < 2:
        raise ValueError(f"D_n needs n >= 2, got {n}")
    basis = torch.zeros(n, n)
    basis[0, :2] = -1.0
    for i in range(1, n):
        basis[i, i - 1], basis[i, i] = 1.0, -1.0
    return Lattice(f"D{n}", basis, closest_dn)


def gosset() -> Lattice:
    """``E8``: ``D8`` and ``D8 + (1/2, ..., 1/2)`` (SPLAG ch. 4, sec. 8.1), volume 1."""
    basis = torch.zeros(8, 8)
    basis[0, 0] = 2.0
    for i in range(1, 7):
        basis[i, i - 1], basis[i, i] = -1.0, 1.0
    basis[7] = 0.5
    return Lattice("E8", basis, closest_e8)


CLASSICAL = {
    "Z": lambda: integer_lattice(1),
    "A2": hexagonal,
    "D4": lambda: checkerboard(4),
    "E8": gosset,
}


# ---------------------------------------------------------------- cells


def _into_cell(r: torch.Tensor, basis: torch.Tensor, quantize) -> torch.Tensor:
    """``r B - Q(r B)`` for ``r`` ``[..., n]`` in the unit cube, written ``(r - k) B``
    with the integer ``k`` of the chosen point, so that gradients reach the basis."""
    with torch.no_grad():
        k = coefficients(quantize(r @ basis), basis)
    return (r - k) @ basis


def cell_noise(
    shape,
    basis: torch.Tensor,
    quantize,
    generator: torch.Generator | None = None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Points ``[*shape, n]`` uniform over the cell of ``quantize`` around the origin:
    ``u = r B - Q(r B)`` with ``r`` uniform in ``[0, 1)^n`` (the cell of an exact
    quantizer is the Voronoi cell; of Babai's rounding, the parallelepiped ``[-1/2,
    1/2)^n B``)."""
    r = torch.rand(*shape, basis.shape[0], generator=generator, dtype=dtype).to(
        basis.device
    )
    return _into_cell(r, basis.to(dtype), quantize)


def cell_points(
    samples: int,
    basis: torch.Tensor,
    quantize,
    generator: torch.Generator | None = None,
    dtype=torch.float32,
) -> torch.Tensor:
    """``[samples, n]`` points spread evenly over the cell of ``quantize``: ``r`` from a
    scrambled Sobol sequence (randomized quasi-Monte Carlo, Owen 1997), each point
    uniform over the cell and the set far more even than independent draws; measured on
    the zoo's latents, the bias of ``log`` of the mean it gives is about a third of
    theirs."""
    seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
    r = (
        torch.quasirandom.SobolEngine(basis.shape[0], scramble=True, seed=seed)
        .draw(samples)
        .to(dtype)
    )
    return _into_cell(r.to(basis.device), basis.to(dtype), quantize)


def second_moment(basis, quantize, count: int = 200_000, seed: int = 0) -> dict:
    """The normalized second moment ``G`` of ``quantize``'s cell by Monte Carlo, with
    its standard error: ``{"G", "error", "count"}`` (``E||u||^2 / (n V^(2/n))`` over
    ``count`` points uniform in the cell, Conway and Sloane 1982, eq. 2)."""
    basis = check_basis(basis)
    if count < 2:
        raise ValueError(f"count must be at least 2, got {count}")
    n, volume = basis.shape[0], float(torch.linalg.det(basis).abs())
    u = cell_noise(
        (count,),
        basis,
        quantize,
        torch.Generator().manual_seed(seed),
        dtype=torch.float64,
    )
    energy = (u**2).sum(dim=-1) / (n * volume ** (2 / n))
    return {
        "G": float(energy.mean()),
        "error": float(energy.std() / math.sqrt(count)),
        "count": count,
    }


def babai_miss_rate(basis, count: int = 2000, seed: int = 0) -> dict:
    """How often Babai's rounding misses the closest point, for points uniform over a
    fundamental region: ``{"rate", "error", "count", "excess"}`` (``excess``: the mean
    squared error of Babai's rounding over that of the exact quantizer, minus one). On
    the CPU, wherever ``basis`` is (the exact search is plain Python)."""
    basis = check_basis(basis.detach().cpu() if torch.is_tensor(basis) else basis)
    r = torch.rand(
        count,
        basis.shape[0],
        generator=torch.Generator().manual_seed(seed),
        dtype=torch.float64,
    )
    y = r @ basis
    fast, exact = babai(y, basis), closest_point_search(y, basis)
    fast_error, exact_error = ((y - fast) ** 2).sum(-1), ((y - exact) ** 2).sum(-1)
    missed = (fast_error > exact_error + 1e-9).double()
    rate = float(missed.mean())
    return {
        "rate": rate,
        "error": math.sqrt(max(rate * (1 - rate), 1e-12) / count),
        "count": count,
        "excess": float(fast_error.mean() / exact_error.mean() - 1),
    }


def cell_log_mass(
    log_density,
    points: torch.Tensor,
    basis: torch.Tensor,
    quantize,
    samples: int = 16,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``log P(cell of q)`` for each lattice point ``q`` (rows of ``points`` ``[...,
    n]``) under a density given by ``log_density(v) -> [...]`` (``v``: ``[..., n]``), by
    Monte Carlo: ``log V + log mean_s p(q + u_s)`` with ``samples`` points ``u_s``
    uniform over the cell (Zhang and Wu, sec. 3.3), shared by all points and spread
    evenly over it (:func:`cell_points`). Differentiable in the points, the density and
    the basis. ``log`` of a mean underestimates on average (Jensen): the rate is
    overestimated, by less with more samples."""
    u = cell_points(samples, basis, quantize, generator, dtype=points.dtype)  # [S, n]
    u = u.to(points.device)  # a fixed lattice's basis stays on the CPU
    shifted = points.unsqueeze(-2) + u  # [..., S, n]
    log_p = log_density(shifted)  # [..., S]
    volume = torch.linalg.det(basis.to(points.dtype)).abs()
    return torch.log(volume) + torch.logsumexp(log_p, dim=-1) - math.log(samples)


# ---------------------------------------------------------------- a learned lattice


class LearnedLattice(nn.Module):
    """A lattice whose basis is a parameter, quantized by Babai's rounding (Zhang and
    Wu, sec. 3.2). :meth:`orthogonality` is their regularizer: the squared off-diagonal
    cosines of the basis, ``||N N^T - I||_F^2`` for the rows ``N`` of ``B`` normalized,
    zero for an orthogonal basis, for which Babai's rounding is exact.

    Args:
        n: dimension.
        basis: the starting basis (default: the identity, ``Z^n``).
    """

    def __init__(self, n: int, basis=None):
        super().__init__()
        start = torch.eye(n) if basis is None else check_basis(basis).float()
        self.basis = nn.Parameter(start.clone())
        self.name = f"learned {n}-D"

    @property
    def n(self) -> int:
        return self.basis.shape[0]

    def quantize(self, y: torch.Tensor) -> torch.Tensor:
        return babai(y, self.basis.detach())

    def orthogonality(self) -> torch.Tensor:
        rows = self.basis / self.basis.norm(dim=1, keepdim=True)
        gram = rows @ rows.T
        return ((gram - torch.eye(self.n, device=gram.device)) ** 2).sum()

    def frozen(self) -> Lattice:
        """This basis as a fixed :class:`Lattice`, quantized by Babai's rounding as in
        training."""
        return Lattice(self.name, self.basis.detach())


# ------------------------------------------------------- the exact mass of a D_n cell


def dn_cell_log_mass(
    log_bin, log_density, q: torch.Tensor, nodes: int = 24
) -> torch.Tensor:
    """``log P(Q_Dn(y) = q)`` exactly (up to quadrature) for a product density, for
    points ``q`` ``[..., n]`` of ``D_n`` (standard scale). :func:`closest_dn` returns
    ``q`` when (A) every coordinate rounds to ``q``, or (B) all but one coordinate ``j``
    round to ``q``, ``y_j`` rounds to ``q_j +- 1`` from the half of that bin next to
    ``q_j``, and ``y_j`` is the furthest of all from its rounding, at distance ``d``:

    ``P = prod_i P_i(|y_i - q_i| < 1/2)
    + sum_j int_0^(1/2) [p_j(q_j + 1 - d) + p_j(q_j - 1 + d)]
    prod_(i != j) P_i(|y_i - q_i| < d) dd``,

    the integral by Gauss-Legendre quadrature. ``log_bin(q, half) -> [..., n]`` gives
    ``log P_i(|y_i - q_i| < half)`` and ``log_density(t) -> [..., n]`` each ``log
    p_i(t_i)``."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    d = torch.as_tensor((x + 1) / 4, dtype=q.dtype, device=q.device)  # on [0, 1/2]
    weights = torch.as_tensor(w / 4, dtype=q.dtype, device=q.device)
    inner = torch.stack([log_bin(q, dk.expand_as(q)) for dk in d])  # [K, ..., n]
    ends = torch.stack(
        [torch.logaddexp(log_density(q + 1 - dk), log_density(q - 1 + dk)) for dk in d]
    )
    others = inner.sum(dim=-1, keepdim=True) - inner  # prod over i != j
    integrand = torch.logsumexp(ends + others, dim=-1)  # sum over j: [K, ...]
    part_b = torch.logsumexp(
        integrand + torch.log(weights).reshape(-1, *[1] * (integrand.dim() - 1)), dim=0
    )
    part_a = log_bin(q, torch.full_like(q, 0.5)).sum(dim=-1)
    return torch.logaddexp(part_a, part_b)
