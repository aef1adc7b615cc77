"""Reference trajectories of a network's swing equations: SciPy ``solve_ivp`` (DOP853, rtol 1e-10).

The state is every bus's angle and every machine's frequency; a first-order bus's frequency is
its angle's derivative, (P_i − Σ_j B_ij·sin(δ_i − δ_j))/d_i, evaluated on the solution. The
trajectory starts at the steady state of the powers before the disturbance, all frequencies zero,
and runs under the powers after it.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from surrogates.power.network import Network, steady_state

__all__ = ["ATOL", "RTOL", "angle_name", "frequency_name", "rhs", "solve", "solve_jax"]

RTOL, ATOL = 1e-10, 1e-12


def angle_name(i: int) -> str:
    """Observable of bus i (1-based, in the network's order after reduction)."""
    return f"Angle {i} [rad]"


def frequency_name(i: int) -> str:
    return f"Frequency deviation {i} [rad.s-1]"


def _electrical(b: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Σ_j B_ij·sin(δ_i − δ_j), per bus."""
    return (b * np.sin(delta[:, None] - delta[None, :])).sum(axis=1)


def rhs(network: Network, m: np.ndarray, d: np.ndarray):
    """dy/dt for y = (δ of every bus, ω of every machine), with inertias ``m`` and dampings ``d``."""
    machine = m > 0
    p = network.p_after

    def f(_t, y):
        delta, omega_m = y[: len(m)], y[len(m) :]
        net = p - _electrical(network.b, delta)
        ddelta = np.empty_like(delta)
        ddelta[machine] = omega_m
        ddelta[~machine] = net[~machine] / d[~machine]
        domega = (net[machine] - d[machine] * omega_m) / m[machine]
        return np.concatenate([ddelta, domega])

    return f


def solve(network: Network, t_s, m=None, d=None) -> dict[str, np.ndarray]:
    """Every bus's angle and frequency deviation at ``t_s`` (increasing, from 0).

    ``m`` and ``d`` default to the network's nominal values; which buses are machines is fixed
    by the network (a machine's m must stay > 0, a first-order bus's 0)."""
    m = network.m if m is None else np.asarray(m, float)
    d = network.d if d is None else np.asarray(d, float)
    if not np.array_equal(m > 0, network.machines):
        raise ValueError(
            f"m: found {m.tolist()}, expected > 0 exactly at the machines {network.machines.tolist()}"
        )
    t_s = np.asarray(t_s, float)
    delta0 = steady_state(network.b, network.p_before)
    y0 = np.concatenate([delta0, np.zeros(int(network.machines.sum()))])
    f = rhs(network, m, d)
    sol = solve_ivp(f, (0.0, float(t_s[-1])), y0, method="DOP853", t_eval=t_s, rtol=RTOL, atol=ATOL)
    if not sol.success:  # pragma: no cover - a smooth ODE; kept for a stiff network
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    n = len(m)
    delta = sol.y[:n]
    rates = np.stack([f(t, y)[:n] for t, y in zip(sol.t, sol.y.T, strict=True)], axis=1)
    out = {}
    for i in range(n):
        out[angle_name(i + 1)] = delta[i]
        out[frequency_name(i + 1)] = rates[i]
    return out


def solve_jax(network: Network, t_s, m, d, rtol: float = 1e-8, atol: float = 1e-10) -> dict:
    """The same trajectories by diffrax (Tsit5, adaptive) inside JAX, differentiable in ``m`` and
    ``d`` (arrays over every bus; m is used only at the machines): for NUTS on the reference
    model itself. The starting steady state does not depend on m or d, so it is computed once
    with NumPy."""
    import jax
    import jax.numpy as jnp

    from surrogates.power.forward_mode import forward_mode, tsit5_at

    machine = np.flatnonzero(network.machines)
    first = np.flatnonzero(~network.machines)
    n = len(network.buses)
    b, p = jnp.asarray(network.b), jnp.asarray(network.p_after)

    def rates(delta, omega_m, m_, d_):
        net = p - (b * jnp.sin(delta[:, None] - delta[None, :])).sum(axis=1)
        ddelta = jnp.zeros(n).at[machine].set(omega_m).at[first].set(net[first] / d_[first])
        domega = (net[machine] - d_[machine] * omega_m) / m_[machine]
        return ddelta, domega

    def vector_field(_t, y, args):
        ddelta, domega = rates(y[:n], y[n:], *args)
        return jnp.concatenate([ddelta, domega])

    t_s = jnp.asarray(t_s)
    y0 = jnp.asarray(np.concatenate([steady_state(network.b, network.p_before), np.zeros(len(machine))]))

    def trajectory(args):
        m_, d_ = args
        ys = tsit5_at(vector_field, y0, args, t_s, rtol, atol)
        delta, omega_m = ys[:, :n], ys[:, n:]
        return delta, jax.vmap(lambda x, w: rates(x, w, m_, d_)[0])(delta, omega_m)

    delta, frequency = forward_mode(trajectory)((jnp.asarray(m, float), jnp.asarray(d, float)))
    out = {}
    for i in range(n):
        out[angle_name(i + 1)] = delta[:, i]
        out[frequency_name(i + 1)] = frequency[:, i]
    return out
