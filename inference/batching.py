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
    """``fn(point, *shared)`` mapped over the leading axis of ``points`` (a pytree), compiled:
    ``call(points, *shared)``. ``shared`` (a data set) goes whole to every point as an argument
    of the compiled program, not a constant inside it, so one program serves every data set of
    the same shapes: closed over, each SMIB data set of a coverage check compiled its own (about
    1 s each, for the chains' starts and again for the posterior's predictive draws).

    ``vmap`` unless the vmapped program would make a batched LAPACK call, else ``lax.map``.
    Decided once per argument structure and shapes, from the lowered program; ``call.choices``
    records each decision ("vmap" or "lax.map")."""
    import jax

    vmapped = jax.jit(lambda points, *shared: jax.vmap(lambda p: fn(p, *shared))(points))
    mapped = jax.jit(lambda points, *shared: jax.lax.map(lambda p: fn(p, *shared), points))
    chosen = {}

    def call(points, *shared):
        leaves, tree = jax.tree.flatten((points, shared))
        key = (tree, tuple((jax.numpy.shape(x), jax.numpy.result_type(x)) for x in leaves))
        if key not in chosen:
            unsafe = batched_lapack_calls(vmapped.lower(points, *shared).as_text())
            chosen[key] = ("lax.map", mapped) if unsafe else ("vmap", vmapped)
        return chosen[key][1](points, *shared)

    call.choices = chosen
    return call
