"""The shipped ``battery.spm`` weights: still as accurate as their card says, the same in every
array library (and ``battery.p2d``'s), finite everywhere a sampler may go (and ``battery.p2d``)."""

from __future__ import annotations

import numpy as np
import pytest

from surrogates.battery import particle
from surrogates.battery.spm_models import P2dSurrogate, SpmReference, SpmSurrogate
from surrogates.battery.spm_pinn import WEIGHTS, cutoff_time, network_fn, surface_error, validate_spm
from surrogates.pinn.card import load_weights

BARS = {"median": 1e-3, "p95": 3e-3, "max": 1e-2}  # V, the accuracy bar
VALUES = {"positive_diffusivity_scale": 0.3, "negative_j0_scale": 2.0, "c_rate": 1.5}


@pytest.fixture(scope="module")
def shipped():
    weights, card = load_weights(WEIGHTS)
    return weights, card, card["architecture"]["n_layers"]


def test_card_records_the_accuracy_bar_met(shipped):
    _, card, _ = shipped
    validation = card["validation"]
    assert len(validation["points"]) >= 64
    rmse = validation["rmse"]["Voltage [V]"]
    for stat, bar in BARS.items():
        assert rmse[stat] <= bar, (stat, rmse[stat])
    assert validation["cutoff_time"]["share_within_0.2%"] >= 0.95


def test_eight_fresh_points_against_pybamm(shipped):
    # A design the card never saw (another Sobol seed), measured now against PyBaMM.
    weights, _, n_layers = shipped
    result = validate_spm(weights, n_layers, n_points=8, seed=777)
    rmse = result["rmse"]["Voltage [V]"]
    assert rmse["median"] <= BARS["median"] and rmse["max"] <= BARS["max"], rmse
    cut = np.abs([p["cutoff_rel_error"] for p in result["points"]])
    assert (cut <= 2e-3).sum() >= 7, cut


def test_particle_network_against_the_series_solution(shipped):
    weights, card, n_layers = shipped
    err = surface_error(weights, n_layers)
    assert err["max_abs"] <= 1.01 * card["validation"]["particle_vs_series"]["max_abs"]
    assert err["max_abs"] < 1e-3 and err["median_abs"] < 1e-5


@pytest.mark.parametrize("surrogate", [SpmSurrogate, P2dSurrogate])
def test_numpy_torch_and_jax_agree(surrogate):
    import jax
    import jax.numpy as jnp

    model = surrogate()
    t = np.linspace(0.0, 3000.0, 301)
    ref = model.numpy_forward(t, **VALUES)["Voltage [V]"]
    # battery.p2d's Newton solve amplifies rounding where the voltage falls past the cut-off
    # (5e-11 V measured, below 1e-12 V before it); equal to 1e-9 V everywhere
    tol = {"rtol": 1e-12, "atol": 1e-9 if surrogate is P2dSurrogate else 1e-12}
    np.testing.assert_allclose(
        np.asarray(model.jax_forward(jnp.asarray(t), **VALUES)["Voltage [V]"]), ref, **tol
    )
    # inside jit too, with the record's times known (battery.p2d then runs its networks at nodes)
    scaled = jax.jit(lambda pd: model.jax_forward(t, **{**VALUES, "positive_diffusivity_scale": pd}))
    volts = scaled(VALUES["positive_diffusivity_scale"])["Voltage [V]"]
    np.testing.assert_allclose(np.asarray(volts), ref, **tol)
    np.testing.assert_allclose(model.torch_forward(t, **VALUES)["Voltage [V]"].numpy(), ref, **tol)
    batch = model.numpy_forward_batch(
        t, {"c_rate": 1.5}, {k: np.array([v, v]) for k, v in VALUES.items() if k != "c_rate"}
    )
    np.testing.assert_allclose(batch["Voltage [V]"][1], ref, **tol)


@pytest.mark.parametrize("surrogate", [SpmSurrogate, P2dSurrogate])
def test_finite_and_differentiable_past_the_cutoff_and_at_t0(surrogate):
    import jax
    import jax.numpy as jnp

    model = surrogate()
    slow = {"positive_diffusivity_scale": 0.1, "negative_j0_scale": 0.1, "c_rate": 2.0}
    t = jnp.linspace(0.0, 2700.0, 271)  # the slow cell cuts off near 470 s

    def loss(log_scales):
        values = {
            **slow,
            "positive_diffusivity_scale": jnp.exp(log_scales[0]),
            "negative_j0_scale": jnp.exp(log_scales[1]),
        }
        return jnp.sum(model.jax_forward(t, **values)["Voltage [V]"])

    v = model.jax_forward(t, **slow)["Voltage [V]"]
    assert bool(jnp.isfinite(v).all()) and float(v[-1]) < 2.5
    assert bool(jnp.isfinite(jax.grad(loss)(jnp.log(jnp.array([0.1, 0.1])))).all())
    for a, b, c in [(a, b, c) for a in (0.1, 10.0) for b in (0.1, 10.0) for c in (0.5, 2.0)]:
        at = np.linspace(0.0, 1.5 * 3600.0 / c, 541)  # the box's corners, far past their cut-offs
        volts = model.numpy_forward(at, positive_diffusivity_scale=a, negative_j0_scale=b, c_rate=c)
        assert np.isfinite(volts["Voltage [V]"]).all(), (a, b, c)


def test_cutoff_of_the_slowest_cell_matches_pybamm(shipped):
    # The corner where the cliff is steepest: 470 s, hundreds of mV in the last seconds.
    from surrogates.battery import spm_reference

    weights, _, n_layers = shipped
    slow = {"positive_diffusivity_scale": 0.1, "negative_j0_scale": 1.0, "c_rate": 2.0}
    _, _, t_cut = spm_reference.window(**slow)
    assert abs(cutoff_time(weights, n_layers, **slow) / t_cut - 1.0) < 2e-3


def test_network_hands_over_smoothly_to_the_steady_solution(shipped):
    weights, _, n_layers = shipped
    tau = np.linspace(0.7, 1.05, 3501)
    f = particle.surface(np, network_fn(np, weights, n_layers), tau)
    slope = np.diff(f) / np.diff(tau)
    assert np.abs(np.diff(slope)).max() < 1e-3  # no kink: 3 + the decaying transient, smoothly


def test_reference_inside_jax_gives_pybamms_values_batched():
    import jax
    import jax.numpy as jnp

    from surrogates.battery.spm_models import SpmReference

    ref = SpmReference()
    t = np.linspace(0.0, 2000.0, 21)
    single = ref.numpy_forward(t, **VALUES)["Voltage [V]"]

    def curve(scale):
        return ref.jax_forward(t, **{**VALUES, "positive_diffusivity_scale": scale})["Voltage [V]"]

    batch = np.asarray(jax.jit(jax.vmap(curve))(jnp.array([0.3, 3.0])))  # one list-of-inputs solve
    np.testing.assert_allclose(batch[0], single, rtol=0, atol=1e-9)
    assert np.abs(batch[1] - single).max() > 1e-2  # the scale reached PyBaMM
    with pytest.raises(Exception, match="(?i)jvp|differentiat"):
        jax.grad(lambda s: curve(s).sum())(0.3)


def test_shipped_residual_curves_are_surrogate_minus_pybamm():
    # The curves the correlated error model reads: two of them re-measured now, over the fraction
    # of each cell's own discharge, against PyBaMM.
    from surrogates.battery import spm_reference

    model = SpmSurrogate()
    held_out = model.validation_residuals({"c_rate": 1.0})
    curves, grid = held_out["residuals"]["Voltage [V]"], held_out["grid"]
    assert curves.shape == (128, grid.size) and grid[0] == 0.0 and grid[-1] == 1.0
    points = model.card["validation"]["points"]
    for k in (0, 77):
        values = {name: held_out["inputs"][name][k] for name in VALUES}
        assert values == {name: points[k][name] for name in VALUES}
        at = grid * points[k]["cutoff_s"]
        fresh = (
            model.numpy_forward(at, **values)["Voltage [V]"]
            - spm_reference.solve(at, **values)["Voltage [V]"]
        )
        # 1 µV: the reference's own spread between installs. The last readings sit on the cut-off
        # cliff (dV/dt ~ 10 mV/s), where IDAKLU at rtol 1e-9 moved by up to 0.29 µV between the
        # card's install and CI's (same PyBaMM, pybammsolvers and CasADi); a curve of another point
        # or of the wrong sign differs by 2.4-23,000 µV.
        np.testing.assert_allclose(curves[k], fresh, rtol=0, atol=1e-6)


def test_residual_grid_counts_the_discharge_to_cutoff():
    model = SpmSurrogate()
    t = np.arange(0.0, 3130.0, 10.0)
    volts = np.linspace(4.06, 2.92, t.size)
    np.testing.assert_allclose(model.residual_grid({"c_rate": 1.0}, t, {"Voltage [V]": volts}), t / 3120.0)
    with pytest.raises(ValueError, match=r"ends at 3\.600 V.*below 3\.4 V"):
        model.residual_grid({"c_rate": 1.0}, t, {"Voltage [V]": np.full(t.size, 3.6)})


def test_the_reference_solves_each_parameter_set_once(monkeypatch):
    # An importance correction's posterior predictive asks again for the draws it reweighted,
    # one at a time: each distinct set is solved once per record's times, then remembered.
    import jax
    import jax.numpy as jnp

    from surrogates.battery import spm_reference

    model = SpmReference()
    solved, solve_many = [], model.reference.solve_many

    class Counting:  # the PybammReference is frozen: count through a wrapper
        def solve_many(self, t, sets, threads=1):
            solved.extend(sets)
            return solve_many(t, sets, threads=threads)

    monkeypatch.setattr(model, "reference", Counting())
    t = np.linspace(0.0, 3000.0, 31)

    def curve(pd):
        return model.jax_forward(t, positive_diffusivity_scale=pd, negative_j0_scale=1.0, c_rate=1.0)

    scales = jnp.array([0.5, 2.0, 0.5, 2.0, 0.5])
    batch = np.asarray(jax.vmap(curve)(scales)["Voltage [V]"])
    assert len(solved) == 2
    one_by_one = np.asarray(jax.lax.map(curve, scales[:2])["Voltage [V]"])
    assert len(solved) == 2
    np.testing.assert_array_equal(batch[2], batch[0])
    np.testing.assert_array_equal(one_by_one, batch[:2])
    direct = spm_reference.solve(t, positive_diffusivity_scale=2.0, negative_j0_scale=1.0, c_rate=1.0)
    np.testing.assert_allclose(batch[1], direct["Voltage [V]"], rtol=0, atol=1e-8)
    other = model.numpy_forward_batch(
        t[:20],
        {"c_rate": 1.0},
        {"positive_diffusivity_scale": np.array([0.5]), "negative_j0_scale": np.array([1.0])},
    )
    assert len(solved) == 3 and other["Voltage [V]"].shape == (1, 20)  # other times: solved anew
