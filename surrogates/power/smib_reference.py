"""Reference solutions of the SMIB swing equation: SciPy ``solve_ivp`` and diffrax inside JAX."""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from surrogates.power import smib

__all__ = ["ATOL", "RTOL", "solve", "solve_batch", "solve_jax", "solve_many"]

RTOL, ATOL = 1e-10, 1e-12


def solve(t_s, m, d, P, B, delta0, omega0) -> dict[str, np.ndarray]:
    """Angle and frequency deviation at times ``t_s`` (increasing, from 0), DOP853 at rtol 1e-10."""
    t_s = np.asarray(t_s, dtype=float)
    sol = solve_ivp(
        smib.rhs,
        (0.0, float(t_s[-1])),
        [delta0, omega0],
        method="DOP853",
        t_eval=t_s,
        args=(m, d, P, B),
        rtol=RTOL,
        atol=ATOL,
    )
    if not sol.success:  # pragma: no cover - DOP853 on this smooth ODE does not fail in the box
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return {smib.OBSERVABLES[0]: sol.y[0], smib.OBSERVABLES[1]: sol.y[1]}


def solve_batch(t_s, inputs: np.ndarray) -> np.ndarray:
    """Rows of ``inputs`` are (m, d, P, B, delta0, omega0); returns (n, 2, len(t_s))."""
    out = np.empty((len(inputs), 2, len(t_s)))
    for i, row in enumerate(np.asarray(inputs, dtype=float)):
        y = solve(t_s, *row)
        out[i] = y[smib.OBSERVABLES[0]], y[smib.OBSERVABLES[1]]
    return out


def solve_many(t_s, m, d, P, B, delta0, omega0) -> dict[str, np.ndarray]:
    """Many trajectories at once: inputs broadcast to (n,); observables of shape (n, len(t_s)).

    One DOP853 solve of the stacked 2n-dimensional system replaces n Python-level solves (the
    batched reference calls of ensemble methods and corrections). SciPy controls the RMS of the
    scaled error over all 2n components, so rtol and atol are divided by √(2n): every component
    then meets the single-trajectory tolerance of ``solve``.
    """
    t_s = np.asarray(t_s, dtype=float)
    m, d, P, B, delta0, omega0 = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, float)) for v in (m, d, P, B, delta0, omega0))
    )
    n = m.size
    shrink = np.sqrt(2 * n)

    def rhs(t, y):
        delta, omega = y[:n], y[n:]
        return np.concatenate([omega, (P - d * omega - B * np.sin(delta)) / m])

    sol = solve_ivp(
        rhs,
        (0.0, float(t_s[-1])),
        np.concatenate([delta0, omega0]),
        method="DOP853",
        t_eval=t_s,
        rtol=RTOL / shrink,
        atol=ATOL / shrink,
    )
    if not sol.success:  # pragma: no cover - as in solve
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return {smib.OBSERVABLES[0]: sol.y[:n], smib.OBSERVABLES[1]: sol.y[n:]}


def solve_jax(t_s, m, d, P, B, delta0, omega0, rtol: float = 1e-8, atol: float = 1e-10):
    """The same trajectory solved by diffrax (Tsit5, adaptive), differentiable in every input.

    Used to run NUTS on the reference model itself; derivatives are those of the discretised
    solve, taken in forward mode (``forward_mode``: six parameters).
    """
    import jax.numpy as jnp

    from surrogates.power.forward_mode import forward_mode, tsit5_at

    def vector_field(t, y, args):
        m_, d_, P_, B_ = args
        return jnp.stack([y[1], (P_ - d_ * y[1] - B_ * jnp.sin(y[0])) / m_])

    t_s = jnp.asarray(t_s)

    def trajectory(inputs):
        *args, y0 = inputs
        return tsit5_at(vector_field, y0, tuple(args), t_s, rtol, atol)

    y0 = jnp.stack([jnp.asarray(delta0, float), jnp.asarray(omega0, float)])
    ys = forward_mode(trajectory)(tuple(jnp.asarray(v, float) for v in (m, d, P, B)) + (y0,))
    return {smib.OBSERVABLES[0]: ys[:, 0], smib.OBSERVABLES[1]: ys[:, 1]}
