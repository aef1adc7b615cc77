"""A study checked against its forward model: names, domain, data. Nothing is written before this."""

from __future__ import annotations

import math

import numpy as np

from bayespinn.data import UNITS, Measurements, column_values, load_measurements, read_table, split_column
from bayespinn.errors import UserError
from bayespinn.study import Study
from inference.model import Noise
from surrogates.base import DomainError, ForwardModel
from surrogates.pinn.card import WeightsHashError
from surrogates.registry import NetworkArgumentError, UnknownSurrogateError, load

__all__ = ["check_domain", "check_names", "load_data", "load_model", "resolve_noise"]


def load_model(study: Study) -> ForwardModel:
    from surrogates.power.network import NetworkError

    try:
        return load(study.surrogate, study.network)
    except UnknownSurrogateError as exc:
        raise UserError(f"{study.path}: [surrogate] name: {exc.args[0]}") from None
    except (NetworkError, NetworkArgumentError) as exc:  # a bad network file names its key
        raise UserError(f"{study.path}: [surrogate] network: {exc}") from None
    except WeightsHashError as exc:
        raise UserError(f"weights file {exc}; re-train or restore the file") from None


def check_names(study: Study, model: ForwardModel) -> None:
    """Every prior names a model parameter; every model input is either inferred or given."""
    for name in study.priors:
        if name not in model.parameters:
            raise UserError(
                f"{study.path}: [parameters.{name}]: unknown parameter of {model.name}, "
                f"expected one of {', '.join(model.parameters)}"
            )
    known = set(model.parameters) | set(model.conditions)
    for name in study.conditions:
        if name not in known:
            raise UserError(
                f"{study.path}: [conditions] {name}: unknown input of {model.name}, "
                f"expected one of {', '.join(sorted(known))}"
            )
        if name in study.priors:
            raise UserError(
                f"{study.path}: [conditions] {name}: also inferred under [parameters.{name}], "
                "expected one or the other"
            )
    defaults = getattr(model, "defaults", {})  # inputs with a documented default (a drawdown's t_p = 0)
    for name in (*model.parameters, *model.conditions):
        if name not in study.priors and name not in study.conditions and name not in defaults:
            raise UserError(
                f"{study.path}: {name}: neither inferred nor given, expected "
                f"[parameters.{name}] or {name} = ... under [conditions]"
            )


def check_domain(study: Study, model: ForwardModel) -> dict[str, tuple[float, float]]:
    """Conditions and prior supports must lie inside the model's (trained) domain."""
    try:
        domain = model.domain(study.conditions)
    except DomainError as exc:  # e.g. B <= 0: the model has no domain at these conditions
        raise UserError(f"{study.path}: [conditions] {exc}") from None
    for name, value in study.conditions.items():
        lo, hi = domain.get(name, (-math.inf, math.inf))
        if not lo <= value <= hi:
            raise UserError(
                f"{study.path}: [conditions] {name}: found {value:g}, expected within "
                f"[{lo:g}, {hi:g}], the domain of {model.name}"
            )
    for name, prior in study.priors.items():
        lo, hi = domain[name]
        p_lo, p_hi = prior.support()
        if p_lo < lo or p_hi > hi:
            raise UserError(
                f"{study.path}: [parameters.{name}]: {prior.kind} prior on [{p_lo:g}, {p_hi:g}] "
                f"leaves the domain of {model.name}, expected within [{lo:g}, {hi:g}]"
            )
    return domain


def _observables(study: Study, model: ForwardModel) -> list[str]:
    if study.observables:
        for obs in study.observables:
            if obs not in model.observables:
                raise UserError(
                    f"{study.path}: [data] observables: found {obs!r}, expected some of "
                    f"{', '.join(model.observables)}"
                )
        return list(study.observables)
    present = {split_column(str(c))[0] for c in read_table(study.data_path).columns}
    chosen = [o for o in model.observables if split_column(o)[0] in present]
    if not chosen:
        raise UserError(
            f"{study.data_path}: no column of {', '.join(model.observables)}, expected at "
            "least one observable"
        )
    return chosen


def load_data(study: Study, model: ForwardModel, domain: dict) -> Measurements:
    data = load_measurements(study.data_path, _observables(study, model))
    lo, hi = domain["t"]
    t = data.time_s
    if t.min() < lo or t.max() > hi:
        unit = split_column(data.time_column)[1]
        per = UNITS[unit][1]  # seconds per unit of the file's column
        raise UserError(
            f"{study.data_path}: column {data.time_column!r}: found times in [{t.min() / per:g}, "
            f"{t.max() / per:g}] {unit}, expected within [{lo / per:g}, {hi / per:g}] {unit}, "
            f"the domain of {model.name}"
        )
    _check_measured_columns(study, model)
    _check_plausible(study, model, data)
    return data


def _check_plausible(study: Study, model: ForwardModel, data: Measurements) -> None:
    """Observables outside what the system can produce are most often a unit mistake."""
    plausible = getattr(model, "plausible", {})
    if callable(plausible):  # bounds that depend on the conditions (a well's initial pressure)
        plausible = plausible(study.conditions)
    for obs, (lo, hi) in plausible.items():
        y = data.values.get(obs)
        if y is None or (lo <= y.min() and y.max() <= hi):
            continue
        quantity, unit = split_column(obs)
        raise UserError(
            f"{study.data_path}: column {obs!r}: found values in [{y.min():g}, {y.max():g}], expected "
            f"within [{lo:g}, {hi:g}] {unit}; if the file is in another unit, say so in the "
            f"column's name (for example '{quantity} [m{unit}]')"
        )


def _check_measured_columns(study: Study, model: ForwardModel) -> None:
    """Columns that must agree with the study's conditions (a battery's current with c_rate)."""
    expected = getattr(model, "measured_columns", None)
    if expected is None:
        return
    frame = read_table(study.data_path)
    for column, (value, rel_tol) in expected(study.conditions).items():
        found = float(np.median(column_values(frame, study.data_path, column)))
        if abs(found - value) > rel_tol * abs(value):
            hint = "; discharge is positive, as in PyBaMM" if found * value < 0 else ""
            raise UserError(
                f"{study.data_path}: column {column!r}: found {found:g} (median), expected "
                f"{value:g} ± {100 * rel_tol:g} % from the study's [conditions]{hint}"
            )


def _per_observable(value, obs: str, path, key: str):
    if isinstance(value, dict):
        if obs not in value:
            raise UserError(f"{path}: [noise] {key}: no entry for {obs!r}, expected one per observable")
        return value[obs]
    return value


def resolve_noise(study: Study, data: Measurements) -> dict[str, Noise]:
    """σ per observable: fixed, or inferred with a HalfNormal whose scale defaults to the data's sd."""
    noise = {}
    for obs, y in data.values.items():
        sigma = _per_observable(study.sigma, obs, study.path, "sigma")
        if sigma != "infer":  # a fixed σ needs no prior scale, so a scale table may leave it out
            noise[obs] = Noise(sigma=float(sigma))
            continue
        scale = _per_observable(study.sigma_scale, obs, study.path, "scale")
        if scale is None:
            scale = float(np.std(y)) or 1.0
        noise[obs] = Noise(sigma=None, scale=float(scale))
    return noise
