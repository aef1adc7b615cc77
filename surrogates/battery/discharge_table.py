"""A surrogate's constant-current discharge tabulated for a sampler: Chebyshev series in the time
relative to the cut-off and in both log scales, checked against the surrogate as it is built.

Inside NUTS the ``battery.p2d`` network costs 3.5 ms a likelihood gradient: its correcting network
and the reaction's Newton solve run at every time of the record. A posterior at a study's C-rate
needs only the voltage as a smooth function of two scales, which a table gives in a fraction of
a millisecond. Two things make it smooth enough to tabulate:

- **time relative to the cut-off.** The cut-off cliff moves with the parameters; in
  τ = t / t_cut(θ) it stays at τ = 1. ln t_cut is tabulated over the scales, and the voltage in
  u with τ = (1 − (1 − u)²)²: √τ at the start (the particles' √t response) and nodes packed
  quadratically into the cliff. 96 Chebyshev–Lobatto nodes in u reproduce a curve to 0.1 mV
  (measured at 1C, the slowest cells included), where 96 nodes in √τ alone missed by 40 mV.
- **panels.** Where the positive particles saturate before the negative ones empty (scale below
  about 0.4 at 1C) t_cut bends sharply, a corner to a polynomial (0.14 V off across a
  quarter-decade panel). So log10 positive_diffusivity_scale is cut into panels of a quarter
  decade, each with its own series, and a panel that misses its bars is halved, up to
  MAX_SPLITS times: across the scale whose series' tail is the larger. At 1C that is the
  diffusivity's; at 1.9–2C, where the corner runs along the exchange current too, the checks
  missed by up to 1 mV in panels 1/256 of a decade wide until they were halved in the exchange
  current as well.

Each panel is checked against the surrogate at CHECKS_PER_PANEL random points of its own, on
their whole curves up to the surrogate's cut-off, between the table's time nodes. A table with
a panel that still misses is not ``usable``; the caller then runs the surrogate itself. Past
the cut-off the table continues along the tangent there, as ``p2d_reference.solve`` continues
the DFN; the network there plunges on its own way, which no check covers.

Along a record the interpolant in time is evaluated as PIECES polynomials on arcs of equal angle
(x = −cos φ, as fine near both ends as the nodes), within 1 µV of it: a gather and a short
Horner sum a time, where the barycentric formula over all nodes cost 2.4 times as much.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.interpolate import BarycentricInterpolator

from surrogates.battery import chen2020
from surrogates.battery.spm_pinn import DOMAIN, T_MAX_NOMINAL

__all__ = ["DischargeTable", "build", "load", "save", "voltage_in_table"]

PANEL_DECADES = 0.25  # width of a first panel in log10 positive_diffusivity_scale
PANEL_NODES, J0_NODES, TIME_NODES = 8, 12, 96
PIECES, PIECE_TERMS = 32, 8  # a curve in time: 32 polynomials of degree 7
TOLERANCE_V = 2e-4  # the most a panel may differ from the surrogate at its checks
CHECKS_PER_PANEL = 8  # one in each eighth of the log10 negative_j0_scale range
MAX_SPLITS = 6  # a panel is halved at most this many times: 1/256 of a decade
REFINEMENTS = 4  # passes over the cut-off's bracket, each TIME_NODES − 1 times narrower: 57 s to 7e-5 s at 1C
ROWS = 2 * (PANEL_NODES * J0_NODES + CHECKS_PER_PANEL)  # curves per call: one compiled shape

LOG_PD = tuple(np.log10(DOMAIN["positive_diffusivity_scale"]))
LOG_J0 = tuple(np.log10(DOMAIN["negative_j0_scale"]))


@dataclass(frozen=True)
class DischargeTable:
    c_rate: float
    panels: np.ndarray  # (P, 4) each panel's bounds in log10: (pd low, pd high, j0 low, j0 high)
    log_cutoff: np.ndarray  # (P, A, B): Chebyshev coefficients of ln t_cut [s]
    volts: np.ndarray  # (P, A, B, K): the voltage [V] at the time nodes, Chebyshev in the scales
    check_max_v: np.ndarray  # (P,) largest difference from the surrogate at the checks [V]
    tail_v: np.ndarray  # (P,) the voltage's last two coefficients in either scale, largest [V]

    @property
    def usable(self) -> bool:
        return bool(_meets(self.check_max_v, self.tail_v).all())


def _meets(check_max_v, tail_v):
    """Whether panels meet the bars: within TOLERANCE_V at the checks, a tail under half of it."""
    return (check_max_v <= TOLERANCE_V) & (tail_v <= TOLERANCE_V / 2)


def lobatto(n: int) -> np.ndarray:
    """Chebyshev–Lobatto points on [−1, 1], ascending."""
    return -np.cos(np.pi * np.arange(n) / (n - 1))


def tau_of_u(u):
    """τ = t / t_cut at the table's time coordinate u ∈ [0, 1]."""
    return (1.0 - (1.0 - u) ** 2) ** 2


def _to_coefficients(values: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Chebyshev coefficients of values at Lobatto nodes along each of ``axes``."""
    for axis in axes:
        n = values.shape[axis]
        inverse = np.linalg.inv(np.polynomial.chebyshev.chebvander(lobatto(n), n - 1))
        values = np.moveaxis(np.tensordot(inverse, values, axes=([1], [axis])), 0, axis)
    return values


def cutoff_times(voltage, c_rate: float, pd: np.ndarray, j0: np.ndarray) -> np.ndarray:
    """First time [s] each curve reaches the cut-off: the first crossing on TIME_NODES times up
    to T_MAX_NOMINAL, the same within its bracket until REFINEMENTS passes, then the secant
    across the last bracket (7e-5 s at 1C: its error is under 1e-8 s where bisection to that
    would take two more passes: a third of the build, 17.4 s against 11.4 s at 1C, measured).
    ``voltage(t (n, TIME_NODES), pd (n, 1), j0 (n, 1))``, jitted: the table's own program."""
    import jax.numpy as jnp

    step = np.linspace(0.0, 1.0, TIME_NODES)
    lo, hi = np.zeros(pd.size), np.full(pd.size, T_MAX_NOMINAL * 3600.0 / c_rate)
    args = (jnp.asarray(pd)[:, None], jnp.asarray(j0)[:, None])
    rows = np.arange(pd.size)
    for _ in range(REFINEMENTS):
        t = lo[:, None] + (hi - lo)[:, None] * step
        v = np.asarray(voltage(jnp.asarray(t), *args))
        below = v <= chen2020.CUTOFF_V
        first = np.where(below.any(axis=1), below.argmax(axis=1), TIME_NODES - 1)
        before = np.maximum(first - 1, 0)
        lo, hi = t[rows, before], t[rows, first]
    drop = v[rows, before] - v[rows, first]
    share = np.clip((v[rows, before] - chen2020.CUTOFF_V) / np.where(drop > 0.0, drop, 1.0), 0.0, 1.0)
    return lo + np.where(drop > 0.0, share, 0.5) * (hi - lo)


def _curves(voltage, c_rate: float, pd: np.ndarray, j0: np.ndarray, u: np.ndarray):
    """(t_cut (n,), the voltage at τ(u) · t_cut (n, TIME_NODES)), ROWS curves a call (the last
    call padded), so every call runs the same compiled program."""
    import jax.numpy as jnp

    n = pd.size
    pad = -n % ROWS
    pd, j0, u = (np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for a in (pd, j0, u))
    cuts, volts = [], []
    for s in range(0, pd.size, ROWS):
        p, j = pd[s : s + ROWS], j0[s : s + ROWS]
        t_cut = cutoff_times(voltage, c_rate, p, j)
        t = t_cut[:, None] * tau_of_u(u[s : s + ROWS])
        cuts.append(t_cut)
        volts.append(np.asarray(voltage(jnp.asarray(t), jnp.asarray(p)[:, None], jnp.asarray(j)[:, None])))
    return np.concatenate(cuts)[:n], np.concatenate(volts)[:n]


def _fit(voltage, c_rate: float, panels: np.ndarray, rng) -> tuple:
    """Series and checks of ``panels`` (P, 4): (ln t_cut's coefficients (P, A, B), the voltage's
    (P, A, B, K), the largest voltage difference at the checks (P,), the voltage's series tail
    along each scale (P, 2))."""
    lo, width = panels[:, 0::2], panels[:, 1::2] - panels[:, 0::2]  # (P, 2): pd, j0
    log_pd = lo[:, :1] + width[:, :1] * (lobatto(PANEL_NODES) + 1.0) / 2.0  # (P, A)
    log_j0 = lo[:, 1:] + width[:, 1:] * (lobatto(J0_NODES) + 1.0) / 2.0  # (P, B)
    shape = (len(panels), PANEL_NODES, J0_NODES)
    grid = [
        np.broadcast_to(log_pd[:, :, None], shape).ravel(),
        np.broadcast_to(log_j0[:, None, :], shape).ravel(),
    ]
    # the corner runs across the panels (at 1C from 0.41 at the smallest exchange current to
    # 0.44 at the largest): one check in each eighth of a panel's exchange current, so none is
    # left out
    strata = (
        np.arange(CHECKS_PER_PANEL) + rng.uniform(size=(len(panels), CHECKS_PER_PANEL))
    ) / CHECKS_PER_PANEL
    checks = [lo[:, :1] + width[:, :1] * rng.uniform(size=strata.shape), lo[:, 1:] + width[:, 1:] * strata]
    log_pd, log_j0 = (np.concatenate([g, c.ravel()]) for g, c in zip(grid, checks, strict=True))
    n = grid[0].size
    # the checks' times fall between the nodes: uniform in u
    u = np.where(
        (np.arange(log_pd.size) < n)[:, None],
        (lobatto(TIME_NODES) + 1.0) / 2.0,
        np.linspace(0, 1, TIME_NODES),
    )
    t_cut, volts = _curves(voltage, c_rate, 10.0**log_pd, 10.0**log_j0, u)
    log_cutoff = _to_coefficients(np.log(t_cut[:n]).reshape(shape), (1, 2))
    series = _to_coefficients(volts[:n].reshape(shape + (TIME_NODES,)), (1, 2))
    err = np.zeros(len(panels))
    for i in range(checks[0].size):
        row, panel = n + i, i // CHECKS_PER_PANEL
        pd, j0 = 10.0 ** log_pd[row], 10.0 ** log_j0[row]
        # the panel on its own: the panels being fitted need not be neighbours
        part = DischargeTable(
            c_rate, panels[panel, None], log_cutoff[panel, None], series[panel, None], None, None
        )
        tabled = voltage_in_table(np, part, t_cut[row] * tau_of_u(u[row]), pd, j0)
        err[panel] = max(err[panel], np.abs(tabled - volts[row]).max())
    # A resolved series ends in coefficients far below the tolerance. The checks alone missed
    # the corner where it runs along a narrow band of the exchange current (0.6 mV there at 1C,
    # 0.18 at the checks), the tail did not (0.36 mV; 0.01 or less in the panels beside it).
    tails = np.stack(
        [np.abs(series[:, -2:]).max(axis=(1, 2, 3)), np.abs(series[:, :, -2:]).max(axis=(1, 2, 3))], -1
    )
    return log_cutoff, series, err, tails


def build(voltage, c_rate: float, seed: int = 0) -> DischargeTable:
    """The table of ``voltage(t (n, T), pd (n, 1), j0 (n, 1))`` (the surrogate at ``c_rate``,
    JAX, jitted): quarter-decade panels, those that miss their bars halved (see the module)."""
    rng = np.random.default_rng(seed)
    first = np.arange(LOG_PD[0], LOG_PD[1], PANEL_DECADES)
    last = np.minimum(first + PANEL_DECADES, LOG_PD[1])
    todo = np.stack([first, last, np.full_like(first, LOG_J0[0]), np.full_like(first, LOG_J0[1])], -1)
    kept = []  # (bounds, ln t_cut's series, the voltage's, err, tail) per finished panel
    for split in range(MAX_SPLITS + 1):
        log_cutoff, series, err, tails = _fit(voltage, c_rate, todo, rng)
        tail = tails.max(1)
        fine = _meets(err, tail) | (split == MAX_SPLITS)
        kept += [(todo[i], log_cutoff[i], series[i], err[i], tail[i]) for i in np.flatnonzero(fine)]
        halves = [h for i in np.flatnonzero(~fine) for h in _halves(todo[i], int(np.argmax(tails[i])))]
        if not halves:
            break
        todo = np.array(halves)
    kept.sort(key=lambda p: tuple(p[0]))
    panels, log_cutoff, series, err, tail = (np.array(v) for v in zip(*kept, strict=True))
    return DischargeTable(float(c_rate), panels, log_cutoff, series, err, tail)


def _halves(bounds: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """A panel's bounds (4,) halved across its diffusivity (``axis`` 0) or exchange current (1)."""
    mid = bounds[2 * axis : 2 * axis + 2].mean()
    low, high = bounds.copy(), bounds.copy()
    low[2 * axis + 1], high[2 * axis] = mid, mid
    return low, high


def save(table: DischargeTable, path: Path) -> None:
    """``table`` as an .npz of plain arrays, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **dataclasses.asdict(table))
    tmp.replace(path)


def load(path: Path) -> DischargeTable:
    """A table ``save`` wrote (no pickles)."""
    with np.load(path, allow_pickle=False) as arrays:
        values = {f.name: arrays[f.name] for f in dataclasses.fields(DischargeTable)}
    return DischargeTable(**{**values, "c_rate": float(values["c_rate"])})


def _chebyshev(xp, x, n: int):
    """(..., n): T_0(x) … T_{n−1}(x) by their recurrence."""
    terms = [xp.ones_like(x), x]
    for _ in range(n - 2):
        terms.append(2.0 * x * terms[-1] - terms[-2])
    return xp.stack(terms, -1)


def _log_cutoff(xp, table: DischargeTable, pd, j0):
    """(ln t_cut, the panel, its Chebyshev vectors in both scales); scales outside the box are
    taken at its edge."""
    bounds = xp.asarray(table.panels)
    x, y = xp.clip(xp.log10(pd), *LOG_PD), xp.clip(xp.log10(j0), *LOG_J0)
    inside = (x >= bounds[:, 0]) & (x <= bounds[:, 1]) & (y >= bounds[:, 2]) & (y <= bounds[:, 3])
    index = xp.argmax(inside)  # the first panel that holds the point (neighbours share an edge)
    lo, hi = bounds[index, 0::2], bounds[index, 1::2]
    ta = _chebyshev(xp, 2.0 * (x - lo[0]) / (hi[0] - lo[0]) - 1.0, PANEL_NODES)
    tb = _chebyshev(xp, 2.0 * (y - lo[1]) / (hi[1] - lo[1]) - 1.0, J0_NODES)
    return ta @ xp.asarray(table.log_cutoff)[index] @ tb, index, ta, tb


# pieces of equal angle in x = −cos φ: as fine near both ends as the Chebyshev nodes themselves
_PIECE_EDGES = -np.cos(np.pi * np.arange(PIECES + 1) / PIECES)


def _piece_rows() -> np.ndarray:
    """(PIECES · PIECE_TERMS + 2, TIME_NODES): the rows that take a curve's values at the time
    nodes to its pieces' coefficients (ascending powers of the local z ∈ [−1, 1]), then its
    value and its slope in τ at the cut-off.

    The curve is the interpolant P(x) through the nodes less q = P'(1)·(x − 1)·((1 + x)/2)²:
    near the end 1 − τ ≈ (1 − x)²/2, so a slope in x at x = 1 would be a √(1 − τ) cusp in time,
    whose gradient grows without bound. P'(1) is interpolation error (µV); q is flat at the start.
    The last piece's own slope at z = 1 (its error, below 1 µV) is taken out the same way.
    Past the cut-off the tangent V(1) + S·(τ − 1), S = −V''(x = 1) = −(P''(1) − 2P'(1))."""
    interpolant = BarycentricInterpolator(lobatto(TIME_NODES), np.eye(TIME_NODES))  # of nodal values
    first, second = interpolant.derivatives(np.array([1.0]), der=3)[1:, 0]
    z = lobatto(PIECE_TERMS)
    x = (_PIECE_EDGES[:-1, None] + (z + 1.0) / 2.0 * np.diff(_PIECE_EDGES)[:, None]).ravel()
    values = interpolant(x) - np.outer((x - 1.0) * ((1.0 + x) / 2.0) ** 2, first)
    to_powers = np.linalg.inv(np.vander(z, PIECE_TERMS, increasing=True))
    pieces = np.einsum("dj,mjk->mdk", to_powers, values.reshape(PIECES, PIECE_TERMS, TIME_NODES))
    slope_at_end = np.arange(PIECE_TERMS) @ pieces[-1]
    pieces[-1, :4] -= np.outer([-1.0, -1.0, 1.0, 1.0], slope_at_end) / 4.0  # (z − 1)((1 + z)/2)²
    end = np.stack([np.eye(TIME_NODES)[-1], 2.0 * first - second])
    return np.concatenate([pieces.reshape(-1, TIME_NODES), end])


_PIECE_ROWS = _piece_rows()


def voltage_in_table(xp, table: DischargeTable, t, pd, j0):
    """The tabulated voltage [V] at times ``t`` (T,) for scalar scales, in ``xp``.

    In time the table holds values at the nodes. Their interpolant is evaluated as PIECES
    polynomials of degree PIECE_TERMS − 1 (within 1 µV of it): one gather and a Horner sum a
    time. The barycentric formula over all 96 nodes at every time cost 2.4 times as much with
    its gradient (about 160 µs against 65 µs along a 356-point record, AMD EPYC)."""
    log_cut, index, ta, tb = _log_cutoff(xp, table, pd, j0)
    nodal = xp.einsum("a,b,abk->k", ta, tb, xp.asarray(table.volts)[index])
    coefficients = xp.asarray(_PIECE_ROWS) @ nodal
    pieces = coefficients[:-2].reshape(PIECES, PIECE_TERMS)
    at_end, slope = coefficients[-2], coefficients[-1]
    # s = √τ: √t is a constant along a record, so the gradient stays finite at t = 0
    s = xp.sqrt(xp.asarray(t)) * xp.exp(-0.5 * log_cut)
    before = s < 1.0
    x = 1.0 - 2.0 * xp.sqrt(1.0 - xp.where(before, s, 0.0))  # 2u − 1
    piece = xp.clip(xp.floor(xp.arccos(-x) * (PIECES / np.pi)), 0, PIECES - 1).astype(int)
    lo, hi = xp.asarray(_PIECE_EDGES)[piece], xp.asarray(_PIECE_EDGES)[piece + 1]
    z = 2.0 * (x - lo) / (hi - lo) - 1.0
    powers = pieces[piece]  # (T, PIECE_TERMS)
    inside = powers[:, -1]
    for k in range(PIECE_TERMS - 2, -1, -1):
        inside = inside * z + powers[:, k]
    return xp.where(before, inside, at_end + slope * (s**2 - 1.0))
