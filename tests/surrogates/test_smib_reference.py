"""The SMIB reference solvers against independent checks: an invariant, a closed form, each other,
and the exact B rescaling the surrogate relies on."""

from __future__ import annotations

import math

import jax.numpy as jnp  # float64: tests/conftest.py enables x64 before JAX starts
import numpy as np
import pytest

from surrogates.power import smib
from surrogates.power.smib_models import SmibReference
from surrogates.power.smib_reference import solve, solve_batch, solve_jax

ANGLE, FREQ = smib.OBSERVABLES
TIME_S = np.linspace(0.0, 20.0, 401)
CASES = [
    {"m": 0.3217, "d": 0.1234, "P": 0.1, "delta0": 0.1, "omega0": 0.1},
    {"m": 0.95, "d": 0.06, "P": 0.14, "delta0": -0.19, "omega0": -0.28},
    {"m": 0.12, "d": 0.45, "P": 0.06, "delta0": 0.29, "omega0": 0.25},
]


@pytest.mark.parametrize(
    "m, P, delta0, omega0", [(0.3, 0.1, 0.1, 0.1), (1.0, 0.05, -0.2, 0.3), (0.1, 0.15, 0.3, -0.3)]
)
def test_energy_is_conserved_without_damping(m, P, delta0, omega0):
    B = smib.B_TRAIN
    y = solve(TIME_S, m, 0.0, P, B, delta0, omega0)
    delta, omega = y[ANGLE], y[FREQ]
    energy = m * omega**2 / 2 - B * np.cos(delta) - P * delta  # dE/dt = ω·(m·ω' + B sin δ − P) = 0
    # DOP853 at rtol 1e-10 over ~20 periods drifts ~1e-10 relative; 1e-8 says "conserved" and
    # would catch a wrong sign or coefficient in the right-hand side at once.
    drift = np.abs(energy - energy[0]).max() / abs(energy[0])
    assert drift < 1e-8
    assert np.ptp(delta) > 0.05  # it does oscillate: a frozen solution would conserve E trivially


@pytest.mark.parametrize("m, d", [(0.3, 0.1), (0.9, 0.4), (0.1, 0.05)])
def test_small_angle_matches_damped_linear_oscillator(m, d):
    B, delta0 = smib.B_TRAIN, 1e-4
    y = solve(TIME_S, m, d, 0.0, B, delta0, 0.0)
    # m·δ'' + d·δ' + B·δ = 0 (all cases underdamped: d² < 4·m·B).
    alpha = d / (2 * m)
    wd = math.sqrt(B / m - alpha**2)
    decay = np.exp(-alpha * TIME_S)
    cos, sin = np.cos(wd * TIME_S), np.sin(wd * TIME_S)
    delta = delta0 * decay * (cos + alpha / wd * sin)
    omega = -delta0 * decay * (alpha**2 / wd + wd) * sin
    # sin δ − δ ≈ δ³/6 ≈ 2e-13 and the solver's atol is 1e-12: 1e-9 absolute on a 1e-4 amplitude
    # is a 1e-5 relative claim, loose for the numerics and tight enough to catch a wrong frequency.
    np.testing.assert_allclose(y[ANGLE], delta, rtol=0, atol=1e-9)
    np.testing.assert_allclose(y[FREQ], omega, rtol=0, atol=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_diffrax_agrees_with_solve_ivp(case):
    t = TIME_S[::4]
    ref = solve(t, B=smib.B_TRAIN, **case)
    got = solve_jax(jnp.asarray(t), B=smib.B_TRAIN, **case)
    # diffrax Tsit5 at rtol 1e-8, atol 1e-10 (its defaults here) vs DOP853 at 1e-10: global error
    # over 20 s stays well under 1e-6 on O(0.1–1) trajectories.
    for name in (ANGLE, FREQ):
        assert np.asarray(got[name]).dtype == np.float64
        np.testing.assert_allclose(np.asarray(got[name]), ref[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_b_rescaling_is_exact(case):
    m, d, P = case["m"], case["d"], case["P"]
    at_04 = solve(TIME_S, m, d, P, 0.4, case["delta0"], case["omega0"])
    at_02 = solve(TIME_S, m / 2, d / 2, P / 2, 0.2, case["delta0"], case["omega0"])
    # Dividing the whole equation by 2 leaves the same ODE; halving is exact in binary, so the
    # two solves differ at most by round-off: 1e-9 is generous.
    for name in (ANGLE, FREQ):
        np.testing.assert_allclose(at_04[name], at_02[name], rtol=0, atol=1e-9)


def test_domain_for_scales_m_d_p_only():
    box = smib.domain_for(0.4)
    for name in ("m", "d", "P"):
        lo, hi = smib.TRAINED_BOX[name]
        assert box[name] == pytest.approx((2 * lo, 2 * hi), rel=1e-15)
    for name in ("delta0", "omega0", "t"):
        assert box[name] == smib.TRAINED_BOX[name]
    assert smib.domain_for(smib.B_TRAIN) == smib.TRAINED_BOX


def test_solve_batch_equals_rows_and_reference_model_wraps_solve():
    rows = np.array([[c["m"], c["d"], c["P"], smib.B_TRAIN, c["delta0"], c["omega0"]] for c in CASES])
    batch = solve_batch(TIME_S, rows)
    assert batch.shape == (len(CASES), 2, TIME_S.size)
    for i, c in enumerate(CASES):
        one = SmibReference().numpy_forward(TIME_S, B=smib.B_TRAIN, **c)
        np.testing.assert_array_equal(batch[i, 0], one[ANGLE])
        np.testing.assert_array_equal(batch[i, 1], one[FREQ])


def test_vectorised_solve_matches_single_solves():
    # One stacked solve at tolerances shrunk by √(2n) keeps each trajectory within the global error
    # of the single solves (≈1e-9 here); a solve that ignored the shrink would drift to ≈1e-7.
    values = {k: np.array([c[k] for c in CASES]) for k in ("m", "d", "P", "delta0", "omega0")}
    batch = SmibReference().numpy_forward_batch(TIME_S, {"B": smib.B_TRAIN}, values)
    for i, c in enumerate(CASES):
        one = solve(TIME_S, B=smib.B_TRAIN, **c)
        for obs in (ANGLE, FREQ):
            assert batch[obs].shape == (len(CASES), TIME_S.size)
            np.testing.assert_allclose(batch[obs][i], one[obs], rtol=0, atol=5e-8)
