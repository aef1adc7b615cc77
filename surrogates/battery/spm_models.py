"""``battery.spm`` (the trained PINN), ``battery.spm:reference`` (PyBaMM's SPM itself),
``battery.p2d`` (the SPM's physics with the DFN's through-cell losses learned) and
``battery.p2d:reference`` (PyBaMM's DFN): the same inputs, observable and record."""

from __future__ import annotations

import functools
import hashlib
import math
import os
import warnings
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np

from surrogates.base import DomainError
from surrogates.battery import chen2020, discharge_table, p2d_pinn, p2d_reference, spm_pinn, spm_reference
from surrogates.battery.spm_pinn import DOMAIN, T_MAX_NOMINAL
from surrogates.pinn.card import load_residuals, load_weights

__all__ = ["P2dReference", "P2dSurrogate", "P2dTabulated", "SpmReference", "SpmSurrogate"]

# A record that ends below this voltage [V] ran into the end-of-discharge knee, where a cycler's
# 10 s record stops one step before the 2.5 V cut-off: a cell whose positive particle saturates
# (low diffusivity) drops from 3.3 V to 2.5 V within that step.
KNEE_V = 3.4


class _SpmBase:
    reference = spm_reference.REFERENCE  # whose window a cycler's record follows
    parameters = ("positive_diffusivity_scale", "negative_j0_scale")
    conditions = ("c_rate",)
    observables = ("Voltage [V]",)
    units: ClassVar[dict[str, str]] = {
        "positive_diffusivity_scale": "× Chen2020's 4e-15 m²/s",
        "negative_j0_scale": "× Chen2020's exchange-current density",
        "c_rate": "C (1C = 5 A)",
        "t": "s",
    }
    plausible: ClassVar[dict[str, tuple[float, float]]] = {
        "Voltage [V]": (0.0, 5.0)
    }  # a cell's terminal voltage; 3,700 means mV

    def domain(self, conditions: dict[str, float]) -> dict[str, tuple[float, float]]:
        c_rate = conditions.get("c_rate", 1.0)
        if not (isinstance(c_rate, (int, float)) and c_rate > 0):
            raise DomainError(f"c_rate: found {c_rate!r}, expected a positive number")
        return {**DOMAIN, "t": (0.0, T_MAX_NOMINAL * 3600.0 / float(c_rate))}

    def measured_columns(self, conditions: dict[str, float]) -> dict[str, tuple[float, float]]:
        """Columns the data must carry besides the observables, and the value each should hold
        (here the discharge current [A] that ``c_rate`` implies, to 2 %)."""
        return {"Current [A]": (chen2020.CAPACITY_AH * conditions["c_rate"], 0.02)}

    def data_columns(self, t_s, **values) -> dict[str, np.ndarray]:
        """Columns a synthetic record carries besides time and the observables."""
        return {"Current [A]": np.full(len(t_s), chen2020.CAPACITY_AH * values["c_rate"])}

    def default_times(self, dt_s: float = 10.0, **values) -> np.ndarray:
        """A cycler's record: every ``dt_s`` up to the 2.5 V cut-off (PyBaMM's)."""
        times, _, _ = self.reference.window(dt_s=dt_s, **values)
        return times


class SpmSurrogate(_SpmBase):
    name = "battery.spm"
    _predict = staticmethod(spm_pinn.predict)

    def __init__(self, path: Path = spm_pinn.WEIGHTS):
        self._path = Path(path)
        self._weights, self.card = load_weights(path)
        self._n_layers = self.card["architecture"]["n_layers"]
        self._compiled = functools.lru_cache(maxsize=16)(self._compile)

    def validation_residuals(self, conditions: dict) -> dict:
        """The card's held-out residual curves over ``grid`` (T,), the fraction of each cell's
        discharge (t / its own cut-off time): cells cut off at different times, and the error
        follows the state of charge more than the clock. ``times_s`` (K, T) is that grid in each
        cell's seconds, ``inputs`` {name: (K,)}, ``residuals`` {"Voltage [V]": (K, T)}."""
        arrays = load_residuals(self._path, self.card)
        inputs = {k: arrays[k] for k in DOMAIN}
        return {
            "grid": arrays["discharge_fraction"],
            "times_s": np.outer(arrays["cutoff_s"], arrays["discharge_fraction"]),
            "inputs": inputs,
            "residuals": {"Voltage [V]": arrays["residual: Voltage [V]"]},
        }

    def residual_grid(self, conditions: dict, t_s, values: dict) -> np.ndarray:
        """Where a record's times lie on the residual curves' grid: t / the record's last time,
        which for a cycler's record is its cut-off (to within one sampling step). A record that
        stops before the end-of-discharge knee has no such clock, and is refused."""
        t_s = np.asarray(t_s, float)
        last_v = float(np.asarray(values["Voltage [V]"])[-1])
        if last_v > KNEE_V:
            raise ValueError(
                f"Voltage [V]: the record ends at {last_v:.3f} V, expected it to run into the "
                f"end-of-discharge knee (below {KNEE_V} V) towards the {chen2020.CUTOFF_V} V cut-off: "
                "the correlated error model's curves are laid out over the discharge to cut-off; "
                'use surrogate_error = "rmse"'
            )
        return t_s / t_s[-1]

    def validation_rmse(self) -> dict[str, float]:
        return {k: v["overall"] for k, v in self.card["validation"]["rmse"].items()}

    def numpy_forward(self, t_s, **values):
        return self._predict(np, self._weights, self._n_layers, np.asarray(t_s, float), **values)

    def numpy_forward_batch(self, t_s, conditions: dict, values: dict) -> dict:
        columns = {k: np.asarray(v, float)[:, None] for k, v in values.items()}
        out = self._predict(
            np, self._weights, self._n_layers, np.asarray(t_s, float)[None, :], **conditions, **columns
        )
        n = len(next(iter(values.values())))
        return {k: np.broadcast_to(v, (n, len(t_s))) for k, v in out.items()}

    def jax_forward(self, t_s, **values):
        """The prediction in JAX. With the times known (not traced), one compiled function per
        record and set of fixed inputs runs it: ArviZ and NumPyro call a model outside ``jit``
        (its trace, the log-likelihood and predictive draws), where op by op ``battery.p2d``
        took 0.65 s a call (measured); inside a traced caller it is inlined as before."""
        import jax

        if isinstance(t_s, jax.core.Tracer):
            return self._predict(jax.numpy, self._weights, self._n_layers, t_s, **values)
        times = np.asarray(t_s, dtype=float)
        # Python and NumPy scalars (a study's C-rate) stay constants: the electrolyte is then
        # computed once, in NumPy (electrolyte.state_once).
        fixed = {k: float(v) for k, v in values.items() if isinstance(v, (int, float, np.number))}
        varying = {k: v for k, v in values.items() if k not in fixed}
        return self._compiled(times.tobytes(), times.shape, tuple(sorted(fixed.items())))(varying)

    def _compile(self, times: bytes, shape: tuple, fixed: tuple):
        import jax
        import jax.numpy as jnp

        t = np.frombuffer(times).reshape(shape)

        def run(varying: dict):
            with jax.ensure_compile_time_eval():  # the record's times stay known (record_nodes)
                t_s = jnp.asarray(t)
            return self._predict(jnp, self._weights, self._n_layers, t_s, **dict(fixed), **varying)

        return jax.jit(run)

    def torch_forward(self, t_s, **values):
        import torch

        w = {k: torch.from_numpy(v) for k, v in self._weights.items()}
        return self._predict(torch, w, self._n_layers, torch.as_tensor(t_s, dtype=torch.float64), **values)


class P2dSurrogate(SpmSurrogate):
    """The DFN's surrogate: PyBaMM's DFN window, ``p2d_pinn``'s network."""

    name = "battery.p2d"
    reference = p2d_reference.REFERENCE
    _predict = staticmethod(p2d_pinn.predict)
    # the calibration's log names it: the same posterior, NUTS in 12–19 s where this takes 55–91 s
    faster = "battery.p2d:tabulated"

    def __init__(self, path: Path = p2d_pinn.WEIGHTS):
        super().__init__(path)


class P2dTabulated(P2dSurrogate):
    """``battery.p2d`` tabulated for samplers (``discharge_table``): along a record at a C-rate
    fixed by the study, the voltage comes from Chebyshev series in the scales and the time
    relative to the cut-off, built at the first call for that C-rate (6–10 s, then cached on
    disk) and checked panel by panel against the network, within 0.2 mV up to its cut-off. A
    table that cannot meet that, and everything else (NumPy, torch, times or C-rates traced),
    runs the network."""

    name = "battery.p2d:tabulated"
    faster = None

    def __init__(self, path: Path = p2d_pinn.WEIGHTS):
        super().__init__(path)
        self.table = functools.lru_cache(maxsize=4)(self._build_table)

    def _build_table(self, c_rate: float) -> discharge_table.DischargeTable:
        """The table at ``c_rate``, from the cache when these weights and this code built it
        before (a lab's cycles at one C-rate build it once), else built and cached."""
        import jax
        import jax.numpy as jnp

        path = self._table_path(c_rate)
        try:
            return discharge_table.load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # none, or unreadable
            pass

        def network(t, pd, j0):
            return self._predict(jnp, self._weights, self._n_layers, t, pd, j0, c_rate)["Voltage [V]"]

        with jax.ensure_compile_time_eval():  # the first call may come inside a sampler's trace
            table = discharge_table.build(jax.jit(network), c_rate)
        try:
            discharge_table.save(table, path)
        except OSError as err:  # a read-only home: the table still serves this process
            warnings.warn(f"{path}: could not cache the table ({err})", stacklevel=2)
        return table

    def _table_path(self, c_rate: float) -> Path:
        """Where the table at ``c_rate`` is cached: keyed on the weights, the C-rate and the
        source of every battery module (the network's code and the table's own)."""
        key = hashlib.sha256(f"{self.card.get('sha256')} {c_rate!r}".encode())
        for source in sorted(Path(__file__).parent.glob("*.py")):
            key.update(source.read_bytes())
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bayespinn"
        return cache / f"p2d_table_{key.hexdigest()[:20]}.npz"

    def _compile(self, times: bytes, shape: tuple, fixed: tuple):
        import jax
        import jax.numpy as jnp

        values = dict(fixed)
        if len(shape) != 1 or "c_rate" not in values:
            return super()._compile(times, shape, fixed)
        c_rate = values.pop("c_rate")
        table = self.table(c_rate)
        if not table.usable:
            bar_mv = discharge_table.TOLERANCE_V * 1e3
            warnings.warn(
                f"battery.p2d:tabulated: the table at c_rate {c_rate} misses its bars (largest "
                f"difference from the network at its checks {table.check_max_v.max() * 1e3:.2f} mV, "
                f"expected at most {bar_mv:.1f}; largest series tail {table.tail_v.max() * 1e3:.2f} mV, "
                f"expected at most {bar_mv / 2:.1f}); running the network instead",
                stacklevel=2,
            )
            return super()._compile(times, shape, fixed)
        t = np.frombuffer(times).reshape(shape)
        curve = jnp.vectorize(
            lambda pd, j0: discharge_table.voltage_in_table(jnp, table, t, pd, j0), signature="(),()->(t)"
        )

        def run(varying: dict):
            pd, j0 = ({**values, **varying}[k] for k in self.parameters)
            return {"Voltage [V]": curve(pd, j0)}

        return jax.jit(run)


class SpmReference(_SpmBase):
    """PyBaMM's SPM (its JAX path gives values, not gradients).

    Curves are remembered per record: an importance correction solves its 1,000 reweighted draws,
    and the posterior predictive of the 4,000 draws resampled from them asks for the same
    parameter sets again (for the DFN, 4,000 solves, three quarters of the run)."""

    name = "battery.spm:reference"
    card = None
    differentiable = False
    MEMO_VALUES = 20_000_000  # voltages remembered, 160 MB; past it the memory starts afresh

    def __init__(self):
        self._memo: dict[tuple, np.ndarray] = {}  # (times' hash, *inputs) -> curve

    def domain(self, conditions):
        box = super().domain(conditions)
        return {**box, "positive_diffusivity_scale": (0.0, math.inf), "negative_j0_scale": (0.0, math.inf)}

    def validation_rmse(self):
        return {"Voltage [V]": 0.0}

    def numpy_forward(self, t_s, **values):
        return self.reference.solve(t_s, **values)

    def numpy_forward_batch(self, t_s, conditions: dict, values: dict) -> dict:
        n = len(next(iter(values.values())))
        columns = {**{k: np.full(n, float(v)) for k, v in conditions.items()}, **values}
        rows = np.stack([np.asarray(columns[k], float) for k in spm_reference.INPUTS], -1)
        return {"Voltage [V]": self.curves(np.asarray(t_s, float), rows)}

    def curves(self, t: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Voltage (n, len(t)) for parameter rows (n, 3) in ``spm_reference.INPUTS`` order: each
        set not solved before on these times, once, in one list-of-inputs solve on OpenMP
        threads (one per core). Sets equal to 12 digits share a curve (the solver's rtol is 1e-9)."""
        at = hashlib.sha1(t.tobytes()).hexdigest()
        keys = [(at, *(float(f"{v:.12g}") for v in row)) for row in rows]
        if len(self._memo) * len(t) > self.MEMO_VALUES:
            self._memo.clear()
        new = [k for k in dict.fromkeys(keys) if k not in self._memo]
        if new:
            sets = [dict(zip(spm_reference.INPUTS, k[1:], strict=True)) for k in new]
            volts = self.reference.solve_many(t, sets, threads=os.cpu_count() or 1)
            self._memo.update(zip(new, volts, strict=True))
        return np.stack([self._memo[k] for k in keys]) if keys else np.zeros((0, len(t)))

    def jax_forward(self, t_s, **values):
        """PyBaMM inside JAX for values only (``jax.pure_callback``; a vmap becomes one
        list-of-inputs solve). Enough for importance weights and a delayed-acceptance chain; a
        gradient raises, so NUTS on the reference is not offered."""
        import jax
        import jax.numpy as jnp

        t = np.asarray(t_s, float)

        def host(*columns):
            columns = np.broadcast_arrays(*(np.asarray(c, float) for c in columns))
            rows = np.stack([c.ravel() for c in columns], -1)
            return self.curves(t, rows).reshape(columns[0].shape + (len(t),))

        args = [jnp.asarray(values[k], jnp.float64) for k in spm_reference.INPUTS]
        shape = jax.ShapeDtypeStruct(jnp.broadcast_shapes(*(a.shape for a in args)) + (len(t),), jnp.float64)
        return {"Voltage [V]": jax.pure_callback(host, shape, *args, vmap_method="broadcast_all")}


class P2dReference(SpmReference):
    """PyBaMM's DFN on ``p2d_reference``'s mesh: values only, like the SPM reference."""

    name = "battery.p2d:reference"
    reference = p2d_reference.REFERENCE
