"""Derivatives of an ODE solve with few parameters, taken in forward mode whatever asks for them.

NUTS asks for reverse-mode gradients. Through diffrax's adaptive loop these cost
``DirectAdjoint`` (its only adjoint that runs under ``pmap``, i.e. parallel chains; the
checkpointed one fails there with a closure-conversion error, diffrax #765) 9.3 ms for the
three-bus network's 31-point record, where one solve with a tangent per parameter costs 2.7 ms
(measured, AMD EPYC, 2 cores). ``forward_mode`` gives the solve a JVP rule that computes that
Jacobian; reverse mode transposes the rule's linear part (Jᵀ g), forward mode and Hessians
differentiate through it again.
"""

from __future__ import annotations

__all__ = ["forward_mode"]


def forward_mode(f):
    """``f(params) -> outputs`` (pytrees of arrays) with every derivative taken in forward mode:
    one JVP of ``f`` per parameter component, batched. ``f`` must itself support forward mode
    (diffrax with ``adjoint=diffrax.ForwardMode()``)."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    @jax.custom_jvp
    def solve(params):
        return f(params)

    @solve.defjvp
    def _jvp(primals, tangents):
        (params,), (dparams,) = primals, tangents
        flat, unravel = ravel_pytree(params)
        # The solve's output does not depend on the tangent, so it comes back unbatched.
        out, jac = jax.vmap(lambda v: jax.jvp(f, (params,), (unravel(v),)), out_axes=(None, 0))(
            jnp.eye(flat.size, dtype=flat.dtype)
        )
        dflat = ravel_pytree(dparams)[0]
        return out, jax.tree.map(lambda j: jnp.tensordot(dflat, j, axes=1), jac)

    return solve
