"""A function over a batch of points: vmapped where that is safe, one point after another where not.

Vmapped, a correlated-error likelihood factors a batch of matrices per observed site, and
jaxlib 0.10's batched LAPACK kernels split their batch over the XLA CPU thread pool they
already run on. Two such calls at once hold both threads of a 2-core machine, each waiting for
work queued behind the other: a CI run hung for its whole 90 minutes (native stacks: both pool
threads in ``lapack_dpotrf_ffi``'s ``ParallelBatchMap``), and importance weights hung so twice
before. One matrix at a time (``lax.map``), the kernel runs inline. Vmapping stays where the
program has no batched LAPACK call, because it is what turns a reference solver's host callback
into one batched solve: mapped, the DFN importance correction took 356 s, vmapped 227 s.
"""

from __future__ import annotations

import re

__all__ = ["batched_lapack_calls", "over_points"]

_LAPACK = re.compile(r"custom_call @(lapack_\w+)\(.*?num_batch_dims = \"(\d+)\"")


def batched_lapack_calls(stablehlo: str) -> list[str]:
    """The LAPACK kernels in a lowered program that take a batch of matrices."""
    return sorted({name for name, batch in _LAPACK.findall(stablehlo) if batch != "0"})


def over_points(fn):
    """``fn`` mapped over the leading axis of its one (pytree) argument, compiled: ``vmap`` unless
    the vmapped program would make a batched LAPACK call, else ``lax.map``. Decided once per
    argument structure and shapes, from the lowered program; ``call.choices`` records each
    decision ("vmap" or "lax.map")."""
    import jax

    vmapped = jax.jit(jax.vmap(fn))
    mapped = jax.jit(lambda points: jax.lax.map(fn, points))
    chosen = {}

    def call(points):
        leaves, tree = jax.tree.flatten(points)
        key = (tree, tuple((jax.numpy.shape(x), jax.numpy.result_type(x)) for x in leaves))
        if key not in chosen:
            unsafe = batched_lapack_calls(vmapped.lower(points).as_text())
            chosen[key] = ("lax.map", mapped) if unsafe else ("vmap", vmapped)
        return chosen[key][1](points)

    call.choices = chosen
    return call
