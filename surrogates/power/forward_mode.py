"""The diffrax solve of the power references, and its derivatives taken in forward mode whatever
asks for them.

NUTS asks for reverse-mode gradients. Through diffrax's adaptive loop these cost
``DirectAdjoint`` (its only adjoint that runs under ``pmap``, i.e. parallel chains; the
checkpointed one fails there with a closure-conversion error, diffrax #765) 9.3 ms for the
three-bus network's 31-point record, where the same gradient from one solve with a tangent per
parameter costs 2.0 ms (measured, AMD EPYC, 2 cores). ``forward_mode`` gives the solve a JVP
rule that computes that Jacobian; reverse mode transposes the rule's linear part (Jᵀ g),
forward mode and Hessians differentiate through it again.
"""

from __future__ import annotations

__all__ = ["forward_mode", "tsit5_at"]


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


def tsit5_at(vector_field, y0, args, t_s, rtol: float, atol: float):
    """The references' diffrax solve: Tsit5 with adaptive steps from t = 0, the states at the
    times ``t_s``; with the ``ForwardMode`` adjoint that ``forward_mode`` differentiates."""
    import diffrax

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        diffrax.Tsit5(),
        t0=0.0,
        t1=t_s[-1],
        dt0=0.01,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(ts=t_s),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=16_384,
        adjoint=diffrax.ForwardMode(),
    )
    return sol.ys
