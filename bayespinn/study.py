"""Study files (TOML) → a validated, frozen configuration.

Every error names the file, the key, what was found and what was expected.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayespinn.errors import UserError
from inference.priors import KINDS, Prior

__all__ = [
    "BACKENDS",
    "CORRECTIONS",
    "ENGINES",
    "ENSEMBLES",
    "GUIDES",
    "SURROGATE_ERRORS",
    "Inference",
    "Study",
    "load_study",
    "parse_study",
]

ENGINES = ("nuts", "hmc", "svi", "eki", "esmda")
ENSEMBLES = ("eki", "esmda")
BACKENDS = {"numpyro": ENGINES, "pyro": ("nuts", "svi")}
GUIDES = ("normal", "mvn", "flow", "laplace")
INVERSIONS = ("subspace", "exact")
# "auto" (the default without a correction): "correlated" where the surrogate ships held-out
# residual curves and the engine can use them, else "rmse" (resolved by pipeline.prepare).
SURROGATE_ERRORS = ("auto", "correlated", "rmse", "off")
CORRECTIONS = ("none", "importance", "delayed-acceptance")
# The error models each correction accepts. A corrected posterior accounts for the surrogate's
# error exactly, so the RMSE term would only starve it; importance sampling wants a proposal
# wider than the exact posterior, which the correlated model gives ("auto": where it can run).
CORRECTED_ERRORS = {
    "none": SURROGATE_ERRORS,
    "importance": ("auto", "correlated", "off"),
    "delayed-acceptance": ("auto", "off"),
}
# [soh]: a state-of-health study (bayespinn.soh_data reads it; ``bayespinn calibrate`` ignores it).
_SECTIONS = {"surrogate", "data", "conditions", "parameters", "noise", "inference", "output", "truth", "soh"}
# Keys each fixed-shape section accepts; a typo (``chians = 2``) must not silently fall back to a default.
_KEYS = {
    "surrogate": {"name", "network"},
    "data": {"path", "observables"},
    "noise": {"sigma", "scale"},
    "inference": {
        "engine",
        "chains",
        "warmup",
        "samples",
        "seed",
        "target_accept",
        "dense_mass",
        "likelihood",
        "surrogate_error",
        "correct",
        "reference_draws",
        "backend",
        "guide",
        "svi_steps",
        "learning_rate",
        "ensemble_size",
        "assimilations",
        "schedule",
        "inversion",
    },
    "output": {"dir"},
}


@dataclass(frozen=True)
class Inference:
    engine: str = "nuts"
    chains: int = 4
    warmup: int = 1000
    samples: int = 1000
    seed: int = 0
    target_accept: float = 0.8
    # A full mass matrix: the few parameters a study infers are often strongly correlated (a
    # cell's two scales at −0.95), where a diagonal one leaves NUTS taking tiny steps.
    dense_mass: bool = True
    likelihood: str = "normal"
    surrogate_error: str = "auto"
    correct: str = "none"
    # importance: how many surrogate draws (thinned evenly) are reweighted, one reference solve
    # each; None: all of them.
    reference_draws: int | None = None
    backend: str = "numpyro"  # numpyro | pyro (nuts and svi on the torch surrogate)
    guide: str = "mvn"  # svi: normal (mean-field) | mvn (full rank) | flow | laplace
    svi_steps: int = 5000
    learning_rate: float = 0.01
    ensemble_size: int = 200  # eki, esmda: members
    assimilations: int = 4  # esmda: steps of the constant or decreasing schedule
    schedule: str | tuple[float, ...] = "constant"  # esmda: constant | decreasing | explicit α's
    inversion: str = "subspace"  # eki, esmda: subspace (truncated SVD) | exact


@dataclass(frozen=True)
class Study:
    path: Path
    text: str
    surrogate: str
    data_path: Path
    observables: tuple[str, ...] | None
    conditions: dict[str, float]
    priors: dict[str, Prior]
    sigma: Any  # "infer", a number, or {observable: number}
    sigma_scale: Any  # None, a number, or {observable: number}
    inference: Inference
    output_dir: Path
    truth: dict[str, float] = field(default_factory=dict)
    # [surrogate] network: a bundled network's name or a network file (power.multimachine)
    network: str | None = None


class _Reader:
    """Typed access to a parsed TOML table that reports errors as ``file: [section] key: ...``."""

    def __init__(self, path: Path, table: dict, section: str):
        self.path, self.table, self.section = path, table, section

    def error(self, key: str, found: Any, expected: str) -> UserError:
        where = f"[{self.section}] {key}" if self.section else key
        return UserError(f"{self.path}: {where}: found {found!r}, expected {expected}")

    def get(self, key: str, kind: type | tuple, default: Any = ..., expected: str = "") -> Any:
        if key not in self.table:
            if default is ...:
                raise UserError(f"{self.path}: [{self.section}] {key}: missing, expected {expected}")
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise self.error(key, value, expected)
        return value

    def number(self, key: str, default: Any = ...) -> float:
        value = self.get(key, float, default, "a number")
        if value is not None and value is not ... and not math.isfinite(value):
            raise self.error(key, value, "a finite number")
        return value

    def table_(self, key: str) -> dict:
        return self.get(key, dict, {}, "a table")


def _prior(path: Path, name: str, table: Any) -> Prior:
    section = f"parameters.{name}"
    if not isinstance(table, dict):
        raise UserError(f"{path}: [{section}]: found {table!r}, expected a table with prior = ...")
    r = _Reader(path, table, section)
    kind = r.get("prior", str, expected=f"one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise r.error("prior", kind, f"one of {', '.join(KINDS)}")
    unknown = set(table) - {"prior", "lower", "upper", "loc", "scale"}
    if unknown:
        key = min(unknown)
        raise r.error(key, table[key], "prior, lower, upper, loc or scale")
    bounded = kind in ("uniform", "loguniform", "truncated_normal")
    centred = kind in ("normal", "lognormal", "truncated_normal")
    prior = Prior(
        kind,
        lower=r.number("lower") if bounded else -math.inf,
        upper=r.number("upper") if bounded else math.inf,
        loc=r.number("loc") if centred else 0.0,
        scale=r.number("scale") if centred else 1.0,
    )
    if bounded and not prior.lower < prior.upper:
        raise r.error("upper", prior.upper, f"a number above lower = {prior.lower}")
    if kind == "loguniform" and prior.lower <= 0:
        raise r.error("lower", prior.lower, "a positive number for a loguniform prior")
    if centred and prior.scale <= 0:
        raise r.error("scale", prior.scale, "a positive number")
    return prior


def _choice(r: _Reader, key: str, allowed: tuple[str, ...], default: str) -> str:
    value = r.get(key, str, default, f"one of {', '.join(allowed)}")
    if value not in allowed:
        raise r.error(key, value, f"one of {', '.join(allowed)}")
    return value


def _count(r: _Reader, key: str) -> int:
    value = r.get(key, int, getattr(Inference, key), "a positive integer")
    if value < 1:
        raise r.error(key, value, "a positive integer")
    return value


def _schedule(r: _Reader) -> str | tuple[float, ...]:
    """ES-MDA's inflation factors: a named schedule, or α's whose inverses sum to one."""
    expected = "constant, decreasing, or a list of positive numbers whose inverses sum to 1"
    value = r.table.get("schedule", "constant")
    if isinstance(value, str):
        if value not in ("constant", "decreasing"):
            raise r.error("schedule", value, expected)
        return value
    ok = isinstance(value, list) and value and all(_positive(a) for a in value)
    if not ok or abs(sum(1.0 / a for a in value) - 1.0) > 1e-6:
        raise r.error("schedule", value, expected)
    return tuple(float(a) for a in value)


def _engine(r: _Reader) -> dict:
    """The engine, its backend and the settings that only some engines read."""
    engine = _choice(r, "engine", ENGINES, "nuts")
    backend = _choice(r, "backend", tuple(BACKENDS), "numpyro")
    if engine not in BACKENDS[backend]:
        raise r.error(
            "backend",
            backend,
            f"numpyro with engine = {engine!r} (pyro runs {' and '.join(BACKENDS['pyro'])})",
        )
    rate = r.number("learning_rate", 0.01)
    if not rate > 0:
        raise r.error("learning_rate", rate, "a positive number")
    return {
        "engine": engine,
        "backend": backend,
        "guide": _choice(r, "guide", GUIDES, "mvn"),
        "inversion": _choice(r, "inversion", INVERSIONS, "subspace"),
        "schedule": _schedule(r),
        "learning_rate": rate,
        **{
            k: _count(r, k)
            for k in ("chains", "warmup", "samples", "svi_steps", "ensemble_size", "assimilations")
        },
    }


def _inference(path: Path, table: dict) -> Inference:
    r = _Reader(path, table, "inference")
    engine = _engine(r)
    likelihood = _choice(r, "likelihood", ("normal", "student_t"), "normal")
    correct = r.get("correct", str, "none", " or ".join(CORRECTIONS))
    if correct not in CORRECTIONS:
        raise r.error("correct", correct, " or ".join(CORRECTIONS))
    surrogate_error = r.get("surrogate_error", str, "auto", " or ".join(SURROGATE_ERRORS))
    if surrogate_error not in SURROGATE_ERRORS:
        raise r.error("surrogate_error", surrogate_error, " or ".join(SURROGATE_ERRORS))
    if surrogate_error not in CORRECTED_ERRORS[correct]:
        raise r.error(
            "surrogate_error",
            surrogate_error,
            " or ".join(f'"{e}"' for e in CORRECTED_ERRORS[correct])
            + f' with correct = "{correct}" (the correction accounts for the surrogate\'s error)',
        )
    if surrogate_error == "correlated" and (
        engine["engine"] in ENSEMBLES or engine["backend"] == "pyro" or likelihood != "normal"
    ):
        raise r.error(
            "surrogate_error",
            surrogate_error,
            "rmse or off with this engine (the correlated error model needs a NumPyro engine "
            "and a normal likelihood)",
        )
    reference_draws = _count(r, "reference_draws") if "reference_draws" in r.table else None
    if reference_draws is not None and correct != "importance":
        raise r.error("correct", correct, '"importance" with reference_draws (it sizes the draws reweighted)')
    target = r.number("target_accept", 0.8)
    if not 0 < target < 1:
        raise r.error("target_accept", target, "a number between 0 and 1")
    return Inference(
        seed=r.get("seed", int, 0, "an integer"),
        target_accept=target,
        dense_mass=r.get("dense_mass", bool, True, "true or false"),
        likelihood=likelihood,
        surrogate_error=surrogate_error,
        correct=correct,
        reference_draws=reference_draws,
        **engine,
    )


def _noise(path: Path, table: dict) -> tuple[Any, Any]:
    r = _Reader(path, table, "noise")
    sigma = table.get("sigma", "infer")
    if not (sigma == "infer" or isinstance(sigma, (int, float, dict)) and not isinstance(sigma, bool)):
        raise r.error("sigma", sigma, '"infer", a number or a table {observable = number}')
    for key, value in _entries("sigma", sigma):
        if value != "infer" and not _positive(value):
            raise r.error(key, value, "a positive number")
    scale = table.get("scale")
    for key, value in _entries("scale", scale) if scale is not None else []:
        if not _positive(value):
            raise r.error(key, value, "a positive number or a table {observable = number}")
    return sigma, scale


def _entries(name: str, value: Any) -> list[tuple[str, Any]]:
    """``(key, value)`` per observable of a table such as ``sigma = {"Angle [rad]" = 0.01}``."""
    if isinstance(value, dict):
        return [(f'{name}."{obs}"', v) for obs, v in value.items()]
    return [(name, value)]


def _positive(value: Any) -> bool:
    """A finite number above zero; TOML booleans are not numbers here."""
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def _numbers(path: Path, table: dict, section: str) -> dict[str, float]:
    r = _Reader(path, table, section)
    return {key: r.number(key) for key in table}


def parse_study(path: Path, text: str) -> Study:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: malformed TOML: {exc}") from None
    unknown = set(doc) - _SECTIONS
    if unknown:
        raise UserError(
            f"{path}: [{min(unknown)}]: unknown section, expected one of {', '.join(sorted(_SECTIONS))}"
        )
    for section, keys in _KEYS.items():
        table = doc.get(section, {})
        extra = sorted(set(table) - keys) if isinstance(table, dict) else []
        if extra:
            raise UserError(
                f"{path}: [{section}] {extra[0]}: unknown key, expected one of {', '.join(sorted(keys))}"
            )
    top = _Reader(path, doc, "")
    surrogate_table = _Reader(path, top.table_("surrogate"), "surrogate")
    surrogate = surrogate_table.get("name", str, expected='a registry name such as "power.smib"')
    network = surrogate_table.get("network", str, None, "a bundled network's name or a network file")
    if network is not None and Path(network).suffix.lower() in (".toml", ".json"):
        network = str(path.parent / network)  # a file, relative to the study
    data = _Reader(path, top.table_("data"), "data")
    observables = data.get("observables", list, None, "a list of column names")
    if observables is not None and not all(isinstance(o, str) for o in observables):
        raise data.error("observables", observables, "a list of column names")
    params = top.table_("parameters")
    if not params:
        raise UserError(
            f"{path}: [parameters]: missing, expected one [parameters.NAME] table per inferred parameter"
        )
    sigma, scale = _noise(path, top.table_("noise"))
    inference = _inference(path, top.table_("inference"))
    if inference.engine in ENSEMBLES and "infer" in (
        sigma,
        *(sigma.values() if isinstance(sigma, dict) else ()),
    ):
        raise _Reader(path, {}, "noise").error(
            "sigma",
            sigma,
            f"a number or a table of numbers with engine = {inference.engine!r} "
            "(ensemble Kalman methods need the noise sd known)",
        )
    out = _Reader(path, top.table_("output"), "output").get("dir", str, f"runs/{path.stem}", "a path")
    return Study(
        path=path,
        text=text,
        surrogate=surrogate,
        data_path=(path.parent / data.get("path", str, expected="a path to a CSV file")),
        observables=tuple(observables) if observables else None,
        conditions=_numbers(path, top.table_("conditions"), "conditions"),
        priors={name: _prior(path, name, t) for name, t in params.items()},
        sigma=sigma,
        sigma_scale=scale,
        inference=inference,
        output_dir=path.parent / out,
        truth=_numbers(path, top.table_("truth"), "truth"),
        network=network,
    )


def load_study(path: str | Path) -> Study:
    path = Path(path)
    try:
        text = path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"{path}: study file not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file, expected a TOML study") from None
    return parse_study(path, text)
