"""forward_mode: reverse-mode gradients, Hessians and pmapped gradients of a wrapped function
agree with those of the function itself (closed forms here), and of the SMIB reference solve
with the numbers of a central difference."""

import jax
import jax.numpy as jnp
import numpy as np

from surrogates.power.forward_mode import forward_mode


def _f(params):
    a, b = params
    return {"x": jnp.sin(a) * b**2, "y": jnp.append(a * b, a**3)}


def _loss(f):
    return lambda p: jnp.sum(f(p)["x"] ** 2) + jnp.sum(f(p)["y"] ** 2)


def test_gradients_and_hessians_match_the_plain_function():
    p = (jnp.asarray(0.7), jnp.asarray([1.3, -0.4]))
    wrapped = forward_mode(_f)
    for transform in (jax.grad, jax.hessian):
        got, want = transform(_loss(wrapped))(p), transform(_loss(_f))(p)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_gradients_under_pmap_as_parallel_nuts_chains_take_them():
    p = (jnp.asarray([0.7, -0.2]), jnp.asarray([[1.3, -0.4], [0.5, 2.0]]))
    got = jax.pmap(jax.grad(_loss(forward_mode(_f))))(p)
    want = jax.vmap(jax.grad(_loss(_f)))(p)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_smib_reference_gradient_matches_a_central_difference():
    from surrogates.power.smib_reference import solve_jax

    t = jnp.linspace(0.0, 3.0, 31)
    values = {"m": 0.4, "d": 0.15, "P": 0.1, "B": 0.2, "delta0": 0.1, "omega0": 0.1}

    def loss(m):
        return jnp.sum(solve_jax(t, **{**values, "m": m})["Angle [rad]"] ** 2)

    h = 1e-5
    central = (loss(0.4 + h) - loss(0.4 - h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(loss)(0.4), central, rtol=1e-6)
