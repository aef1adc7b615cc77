"""over_points: vmapped unless the program would factor a batch of matrices (batched LAPACK calls
wedged XLA's 2-thread CPU pool: a CI run hung in one), and the same values either way."""

import jax
import jax.numpy as jnp
import numpy as np

from inference.arviz_adapter import one_pass
from inference.batching import batched_lapack_calls, over_points
from tests.inference.test_arviz_adapter import T, _data, _draws, model


def _spd(x):
    """A 3x3 symmetric positive-definite matrix per point, and its Cholesky factor's log-det."""
    a = jnp.array([[2.0, 0.3, 0.1], [0.3, 1.5, 0.2], [0.1, 0.2, 1.0]]) * (1.0 + x**2)
    return 2.0 * jnp.log(jnp.diag(jnp.linalg.cholesky(a))).sum()


def test_batched_lapack_calls_tells_vmap_from_lax_map():
    x = jnp.linspace(0.0, 1.0, 16)
    assert batched_lapack_calls(jax.jit(jax.vmap(_spd)).lower(x).as_text()) == ["lapack_dpotrf_ffi"]
    mapped = jax.jit(lambda p: jax.lax.map(_spd, p)).lower(x).as_text()
    assert "lapack_dpotrf_ffi" in mapped  # not vacuous: the call is there, unbatched
    assert batched_lapack_calls(mapped) == []


def test_over_points_maps_a_factorization_and_vmaps_the_rest():
    x = jnp.linspace(0.0, 1.0, 16)
    spd, square = over_points(_spd), over_points(lambda p: p**2 + jnp.sin(p))
    np.testing.assert_allclose(
        spd(x),
        [
            np.linalg.slogdet(np.asarray([[2.0, 0.3, 0.1], [0.3, 1.5, 0.2], [0.1, 0.2, 1.0]]) * (1 + v**2))[1]
            for v in np.asarray(x)
        ],
        rtol=1e-12,
    )
    np.testing.assert_allclose(square(x), np.asarray(x) ** 2 + np.sin(np.asarray(x)), rtol=1e-14)
    assert [label for label, _ in spd.choices.values()] == ["lax.map"]
    assert [label for label, _ in square.choices.values()] == ["vmap"]


def test_posterior_draws_of_a_correlated_error_likelihood_run_one_at_a_time():
    n = 64
    draws = {k: jnp.asarray(v) for k, v in _draws(n).items()}
    run = one_pass(model, {"t": T, "y": _data()})
    run((draws, jax.random.split(jax.random.PRNGKey(0), n)), {"t": T, "y": _data()})
    assert [label for label, _ in run.choices.values()] == ["lax.map"]
