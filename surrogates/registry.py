"""Registry of forward models by name: ``power.smib``, ``power.smib:reference``, ..."""

from __future__ import annotations

from collections.abc import Callable

from surrogates.base import ForwardModel

__all__ = ["NetworkArgumentError", "UnknownSurrogateError", "load", "names"]


class UnknownSurrogateError(KeyError):
    pass


class NetworkArgumentError(ValueError):
    """A network model loaded without a network, or a network given to a model that takes none."""


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


def _p2d():
    from surrogates.battery.spm_models import P2dSurrogate

    return P2dSurrogate()


def _p2d_tabulated():
    from surrogates.battery.spm_models import P2dTabulated

    return P2dTabulated()


def _p2d_reference():
    from surrogates.battery.spm_models import P2dReference

    return P2dReference()


def _drawdown():
    from surrogates.reservoir.drawdown_models import DrawdownSurrogate

    return DrawdownSurrogate()


def _drawdown_reference():
    from surrogates.reservoir.drawdown_models import DrawdownReference

    return DrawdownReference()


def _network_reference(network: str):
    from surrogates.power.network_models import NetworkReference, bundled

    return NetworkReference(bundled(network))


def _network_surrogate(network: str):
    from surrogates.power.network_models import NetworkSurrogate, bundled, weights_for

    return NetworkSurrogate(bundled(network), weights_for(network))


# Models of a network: built for the network a study names (``[surrogate] network``).
NETWORK_LOADERS: dict[str, Callable[[str], ForwardModel]] = {
    "power.multimachine": _network_surrogate,
    "power.multimachine:reference": _network_reference,
}

_LOADERS: dict[str, Callable[[], ForwardModel]] = {
    "battery.p2d": _p2d,
    "battery.p2d:reference": _p2d_reference,
    "battery.p2d:tabulated": _p2d_tabulated,
    "battery.spm": _spm,
    "battery.spm:reference": _spm_reference,
    "power.smib": _smib,
    "power.smib:reference": _smib_reference,
    "reservoir.drawdown": _drawdown,
    "reservoir.drawdown:reference": _drawdown_reference,
}


def names() -> list[str]:
    return sorted([*_LOADERS, *NETWORK_LOADERS])


def load(name: str, network: str | None = None) -> ForwardModel:
    """The model ``name``; a network model (``NETWORK_LOADERS``) needs ``network``, a bundled
    network's name or a network file, and the others take none."""
    if name in NETWORK_LOADERS:
        if network is None:
            raise NetworkArgumentError(
                f"{name} needs a network: a bundled one (four_bus, three_bus) or a network file"
            )
        return NETWORK_LOADERS[name](network)
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise UnknownSurrogateError(f"unknown surrogate {name!r}; known: {', '.join(names())}") from None
    if network is not None:
        raise NetworkArgumentError(f"{name} takes no network, found {network!r}")
    return loader()


def _smoke(config, **more):
    """A smoke-sized run (``train --quick``): a minute on a CPU, far from the accuracy bar."""
    import dataclasses

    small = {"adam_steps": 100, "lbfgs_steps": 5, "collocation_batch": 1024, "data_batch": 1024}
    return dataclasses.replace(config, **{**small, "lbfgs_collocation": 1024, "lbfgs_data": 1024, **more})


def _trained(
    train_fn, config, device: str, out, quick: bool, checkpoint, progress: bool, smoke_kwargs=None, **more
):
    """``smoke_kwargs``: extra arguments of ``train_fn`` for a smoke run; ``more``: its config."""
    import dataclasses

    config = dataclasses.replace(_smoke(config, **more) if quick else config, device=device)
    extra = (smoke_kwargs or {}) if quick else {}
    return train_fn(config, out=out, checkpoint=checkpoint, progress=progress, **extra)


def _validated(validate_fn, default_weights, path, n_points: int):
    """``validate_fn`` on the weights at ``path`` (the shipped ones when None), and that path."""
    from surrogates.pinn.card import load_weights

    weights, card = load_weights(path or default_weights)
    return validate_fn(weights, card["architecture"]["n_layers"], n_points=n_points), (
        path or default_weights
    )


def _smib_train(device: str, out, physics_only: bool, quick: bool, checkpoint, progress: bool):
    from surrogates.power.smib_pinn import PHYSICS_ONLY_CONFIG, SMIB_CONFIG, train_smib

    config = PHYSICS_ONLY_CONFIG if physics_only else SMIB_CONFIG
    # A smoke run's card is validated on 16 points, not 128 (and 2,560 saddle-margin draws, not 20,480).
    smoke = {"validation_points": 16}
    return _trained(train_smib, config, device, out, quick, checkpoint, progress, smoke, n_trajectories=50)


def _smib_validate(path, n_points: int):
    from surrogates.power.smib_pinn import WEIGHTS, card_validation

    return _validated(card_validation, WEIGHTS, path, n_points)


def _spm_train(device: str, out, physics_only: bool, quick: bool, checkpoint, progress: bool):
    from surrogates.battery.spm_pinn import SPM_CONFIG, train_spm

    # Physics only already: the loss holds no solver data.
    return _trained(train_spm, SPM_CONFIG, device, out, quick, checkpoint, progress)


def _spm_validate(path, n_points: int):
    from surrogates.battery.spm_pinn import WEIGHTS, validate_spm

    return _validated(validate_spm, WEIGHTS, path, n_points)


def _p2d_train(device: str, out, physics_only: bool, quick: bool, checkpoint, progress: bool):
    # physics_only: refused before this is called (PHYSICS_ONLY_REFUSED)
    from surrogates.battery.p2d_pinn import P2D_CONFIG, train_p2d

    # A smoke run fits 16 DFN curves and is validated on 8 points. Its physics batch is whole
    # discharges for the particles' residual, not points: the full run's 4 (and, like it, no
    # L-BFGS, whose batch would be the smoke's 1,024 discharges an evaluation).
    smoke = {"validation_points": 8}
    sizes = {"collocation_batch": P2D_CONFIG.collocation_batch, "lbfgs_steps": P2D_CONFIG.lbfgs_steps}
    return _trained(
        train_p2d, P2D_CONFIG, device, out, quick, checkpoint, progress, smoke, n_trajectories=16, **sizes
    )


def _p2d_validate(path, n_points: int):
    from surrogates.battery.p2d_pinn import WEIGHTS, validate_p2d

    return _validated(validate_p2d, WEIGHTS, path, n_points)


def _drawdown_train(device: str, out, physics_only: bool, quick: bool, checkpoint, progress: bool):
    from surrogates.reservoir.drawdown_pinn import DRAWDOWN_CONFIG, train_drawdown

    # Physics only already: no E1 values in the loss.
    return _trained(train_drawdown, DRAWDOWN_CONFIG, device, out, quick, checkpoint, progress)


def _drawdown_validate(path, n_points: int):
    from surrogates.reservoir.drawdown_pinn import WEIGHTS, validate_drawdown

    return _validated(validate_drawdown, WEIGHTS, path, n_points)


def _network_train(network: str, device: str, out, physics_only, quick, checkpoint, progress):
    import dataclasses

    from surrogates.power.network_models import bundled
    from surrogates.power.network_pinn import NETWORK_CONFIG, train_network

    def train_fn(config, **kwargs):
        return train_network(bundled(network), config, **kwargs)

    config = dataclasses.replace(NETWORK_CONFIG, data_weight=0.0) if physics_only else NETWORK_CONFIG
    smoke = {"validation_points": 16}
    return _trained(train_fn, config, device, out, quick, checkpoint, progress, smoke, n_trajectories=20)


def _network_validate(network: str, path, n_points: int):
    from surrogates.power.network_models import bundled, weights_for
    from surrogates.power.network_pinn import validate_network

    def validate_fn(weights, n_layers, n_points):
        return validate_network(bundled(network), weights, n_layers, n_points)

    return _validated(validate_fn, weights_for(network), path, n_points)


# Trainers and validators of network models take the network first.
NETWORK_TRAINERS = {"power.multimachine": _network_train}
NETWORK_VALIDATORS = {"power.multimachine": _network_validate}
# Surrogates whose loss cannot drop its solver data, and why (``train --physics-only`` is refused).
PHYSICS_ONLY_REFUSED = {"battery.p2d": "its network is fitted to DFN solutions"}
TRAINERS = {
    "battery.p2d": _p2d_train,
    "battery.spm": _spm_train,
    "power.smib": _smib_train,
    "reservoir.drawdown": _drawdown_train,
}
VALIDATORS = {
    "battery.p2d": _p2d_validate,
    "battery.spm": _spm_validate,
    "power.smib": _smib_validate,
    "reservoir.drawdown": _drawdown_validate,
}
