"""The exported JAX network is the trained torch network: same numbers in float64."""

from __future__ import annotations

import jax  # float64: tests/conftest.py enables x64 before JAX starts
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from surrogates.pinn.network import MLP, mlp_apply
from surrogates.power.smib_models import SmibSurrogate

# Points inside the trained box at B = 0.2 and outside B (exercising the B rescaling).
POINTS = [
    {"m": 0.3217, "d": 0.1234, "P": 0.1, "B": 0.2, "delta0": 0.1, "omega0": 0.1},
    {"m": 0.95, "d": 0.06, "P": 0.14, "B": 0.2, "delta0": -0.19, "omega0": -0.28},
    {"m": 0.12, "d": 0.45, "P": 0.06, "B": 0.2, "delta0": 0.29, "omega0": 0.25},
    {"m": 0.5, "d": 0.4, "P": 0.2, "B": 0.4, "delta0": 0.0, "omega0": 0.0},
]
TIME_S = np.linspace(0.0, 20.0, 101)


def test_mlp_apply_jax_equals_torch_forward():
    model = MLP(5, 2, (32, 32, 32), seed=4).double()
    x = np.random.default_rng(0).uniform(-1.5, 1.5, (257, 5))
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    weights = {k: jnp.asarray(v.detach().numpy()) for k, v in model.state_dict().items()}
    got = np.asarray(mlp_apply(jnp, weights, jnp.asarray(x), len(model.layers)))
    # Same operations in float64; only summation order inside the matmuls may differ (~1e-16
    # per term, outputs O(1)), so 1e-12 absolute leaves a wide margin but catches any real change.
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.abs(expected).max() > 0.1  # a non-trivial output, not two zeros agreeing


@pytest.fixture(scope="module")
def surrogate():
    return SmibSurrogate()


def _three_ways(surrogate, t, values):
    with torch.no_grad():
        out_torch = surrogate.torch_forward(t, **values)
    out_jax = surrogate.jax_forward(jnp.asarray(t), **values)
    out_np = surrogate.numpy_forward(t, **values)
    return (
        {k: v.numpy() for k, v in out_torch.items()},
        {k: np.asarray(v) for k, v in out_jax.items()},
        out_np,
    )


@pytest.mark.parametrize("values", POINTS)
def test_smib_torch_jax_numpy_agree(surrogate, values):
    a, b, c = _three_ways(surrogate, TIME_S, values)
    for name in surrogate.observables:
        assert a[name].shape == b[name].shape == c[name].shape == TIME_S.shape
        assert b[name].dtype == np.float64
        # float64 everywhere; 1e-10 absolute on O(0.1–1) outputs is round-off plus a wide margin.
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-10)
        np.testing.assert_allclose(c[name], a[name], rtol=0, atol=1e-10)


def test_smib_batched_inputs_broadcast_and_agree(surrogate):
    rng = np.random.default_rng(11)
    n = 7
    values = {
        "m": rng.uniform(0.1, 1.0, (n, 1)),
        "d": rng.uniform(0.05, 0.5, (n, 1)),
        "P": rng.uniform(0.05, 0.15, (n, 1)),
        "B": 0.2,
        "delta0": rng.uniform(-0.2, 0.3, (n, 1)),
        "omega0": rng.uniform(-0.3, 0.3, (n, 1)),
    }
    a, b, c = _three_ways(surrogate, TIME_S, values)
    for name in surrogate.observables:
        assert a[name].shape == b[name].shape == c[name].shape == (n, TIME_S.size)
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-10)
        np.testing.assert_allclose(c[name], a[name], rtol=0, atol=1e-10)
    # A batch equals its members run one by one (same tolerance, same reason).
    for i in range(n):
        row = {k: (v[i, 0] if isinstance(v, np.ndarray) else v) for k, v in values.items()}
        single = surrogate.numpy_forward(TIME_S, **row)
        for name in surrogate.observables:
            np.testing.assert_allclose(c[name][i], single[name], rtol=0, atol=1e-10)


def test_smib_jax_forward_is_differentiable_and_jittable(surrogate):
    rest = {k: v for k, v in POINTS[0].items() if k != "m"}

    def angle_sum(m):
        out = surrogate.jax_forward(jnp.asarray(TIME_S), m=m, **rest)
        return out["Angle [rad]"].sum()

    m0 = POINTS[0]["m"]
    grad = jax.jit(jax.grad(angle_sum))(m0)
    h = 1e-6
    fd = (angle_sum(m0 + h) - angle_sum(m0 - h)) / (2 * h)
    # Central difference: O(h²) truncation plus ~1e-16·|sum|/h round-off, far below 1e-5.
    np.testing.assert_allclose(float(grad), float(fd), rtol=1e-5, atol=1e-7)
