"""Registry of forward models by name: ``power.smib``, ``power.smib:reference``, ..."""

from __future__ import annotations

from collections.abc import Callable

from surrogates.base import ForwardModel

__all__ = ["UnknownSurrogateError", "load", "names"]


class UnknownSurrogateError(KeyError):
    pass


def _smib():
    from surrogates.power.smib_models import SmibSurrogate

    return SmibSurrogate()


def _smib_reference():
    from surrogates.power.smib_models import SmibReference

    return SmibReference()


def _spm():
    from surrogates.battery.spm_models import SpmSurrogate

    return SpmSurrogate()


def _spm_reference():
    from surrogates.battery.spm_models import SpmReference

    return SpmReference()


def _drawdown():
    from surrogates.reservoir.drawdown_models import DrawdownSurrogate

    return DrawdownSurrogate()


def _drawdown_reference():
    from surrogates.reservoir.drawdown_models import DrawdownReference

    return DrawdownReference()


_LOADERS: dict[str, Callable[[], ForwardModel]] = {
    "battery.spm": _spm,
    "battery.spm:reference": _spm_reference,
    "power.smib": _smib,
    "power.smib:reference": _smib_reference,
    "reservoir.drawdown": _drawdown,
    "reservoir.drawdown:reference": _drawdown_reference,
}


def names() -> list[str]:
    return sorted(_LOADERS)


def load(name: str) -> ForwardModel:
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise UnknownSurrogateError(f"unknown surrogate {name!r}; known: {', '.join(names())}") from None
    return loader()


def _smib_train(device: str, out, physics_only: bool, quick: bool, checkpoint, progress: bool):
    import dataclasses

    from surrogates.power.smib_pinn import PHYSICS_ONLY_CONFIG, SMIB_CONFIG, train_smib

    config = PHYSICS_ONLY_CONFIG if physics_only else SMIB_CONFIG
    if quick:  # a smoke-sized run: a minute on a CPU, far from the accuracy bar
        config = dataclasses.replace(config, adam_steps=100, lbfgs_steps=5, n_trajectories=50)
    config = dataclasses.replace(config, device=device)
    return train_smib(config, out=out, checkpoint=checkpoint, progress=progress)


def _smib_validate(path, n_points: int):
    from surrogates.pinn.card import load_weights
    from surrogates.power.smib_pinn import WEIGHTS, card_validation

    weights, card = load_weights(path or WEIGHTS)
    return card_validation(weights, card["architecture"]["n_layers"], n_points=n_points), (path or WEIGHTS)


def _spm_train(device: str, out, physics_only: bool, quick: bool, checkpoint, progress: bool):
    import dataclasses

    from surrogates.battery.spm_pinn import SPM_CONFIG, train_spm

    config = SPM_CONFIG  # physics only already: the loss holds no solver data
    if quick:
        config = dataclasses.replace(config, adam_steps=100, lbfgs_steps=5)
    return train_spm(
        dataclasses.replace(config, device=device), out=out, checkpoint=checkpoint, progress=progress
    )


def _spm_validate(path, n_points: int):
    from surrogates.battery.spm_pinn import WEIGHTS, validate_spm
    from surrogates.pinn.card import load_weights

    weights, card = load_weights(path or WEIGHTS)
    return validate_spm(weights, card["architecture"]["n_layers"], n_points=n_points), (path or WEIGHTS)


def _drawdown_train(device: str, out, physics_only: bool, quick: bool, checkpoint, progress: bool):
    import dataclasses

    from surrogates.reservoir.drawdown_pinn import DRAWDOWN_CONFIG, train_drawdown

    config = DRAWDOWN_CONFIG  # physics only already: no E1 values in the loss
    if quick:
        config = dataclasses.replace(config, adam_steps=100, lbfgs_steps=5)
    return train_drawdown(
        dataclasses.replace(config, device=device), out=out, checkpoint=checkpoint, progress=progress
    )


def _drawdown_validate(path, n_points: int):
    from surrogates.pinn.card import load_weights
    from surrogates.reservoir.drawdown_pinn import WEIGHTS, validate_drawdown

    weights, card = load_weights(path or WEIGHTS)
    return validate_drawdown(weights, card["architecture"]["n_layers"], n_points=n_points), (path or WEIGHTS)


TRAINERS = {"battery.spm": _spm_train, "power.smib": _smib_train, "reservoir.drawdown": _drawdown_train}
VALIDATORS = {
    "battery.spm": _spm_validate,
    "power.smib": _smib_validate,
    "reservoir.drawdown": _drawdown_validate,
}
