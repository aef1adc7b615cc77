"""The shipped ``battery.p2d`` weights: as accurate against PyBaMM's DFN as their card says, the
same in every array library, finite everywhere a sampler may go."""

from __future__ import annotations

import numpy as np
import pytest

from surrogates.battery import electrolyte, p2d_pinn, p2d_reference, spm_pinn, spm_reference
from surrogates.battery.pybamm_reference import PybammReference
from surrogates.battery.spm_models import P2dSurrogate
from surrogates.pinn.card import load_weights

BARS = {"median": 5e-3, "p95": 1e-2, "max": 2e-2}  # V, the accuracy bar
VALUES = {"positive_diffusivity_scale": 0.3, "negative_j0_scale": 2.0, "c_rate": 1.5}
SLOW = {"positive_diffusivity_scale": 0.1, "negative_j0_scale": 0.1, "c_rate": 2.0}


@pytest.fixture(scope="module")
def shipped():
    weights, card = load_weights(p2d_pinn.WEIGHTS)
    return weights, card, card["architecture"]["n_layers"]


def test_card_records_the_accuracy_bar_met(shipped):
    _, card, _ = shipped
    validation = card["validation"]
    assert len(validation["points"]) >= 64
    rmse = validation["rmse"]["Voltage [V]"]
    for stat, bar in BARS.items():
        assert rmse[stat] <= bar, (stat, rmse[stat])
    assert validation["cutoff_time"]["share_within_0.5%"] >= 0.95


def test_eight_fresh_points_against_pybamm_dfn(shipped):
    # A design the card never saw (another Sobol seed), measured now against PyBaMM's DFN.
    weights, _, n_layers = shipped
    result = p2d_pinn.validate_p2d(weights, n_layers, n_points=8, seed=777)
    rmse = result["rmse"]["Voltage [V]"]
    assert rmse["median"] <= BARS["median"] and rmse["max"] <= BARS["max"], rmse
    cut = np.abs([p["cutoff_rel_error"] for p in result["points"]])
    assert (cut <= 5e-3).sum() >= 7, cut


def test_learns_what_the_spm_leaves_out():
    # The SPM sits 25-60 mV above the DFN at 1C; the surrogate must close that gap, not copy the SPM.
    nominal = {"positive_diffusivity_scale": 1.0, "negative_j0_scale": 1.0, "c_rate": 1.0}
    times, volts, _ = p2d_reference.window(**nominal)
    sur = P2dSurrogate().numpy_forward(times, **nominal)["Voltage [V]"]
    spm = spm_reference.solve(times, **nominal)["Voltage [V]"]
    assert np.sqrt(np.mean((sur - volts) ** 2)) < 0.2 * np.sqrt(np.mean((spm - volts) ** 2))


def test_without_corrections_it_is_pybamm_spme(shipped):
    # The ansatz: with no shift, no spread and no voltage term from the network, what is left is
    # the physics-informed SPMe (the particle and electrolyte networks with the closed forms),
    # and that is PyBaMM's SPMe to the two networks' errors, far closer than to the DFN.
    weights, _, n_layers = shipped
    zeroed = dict(weights)
    last = f"layers.{n_layers - 1}"
    zeroed[f"{last}.weight"] = np.zeros_like(weights[f"{last}.weight"])
    zeroed[f"{last}.bias"] = np.array([0.0, 0.0, 0.0, -60.0, -60.0])  # softplus(-60): no spread
    spme = PybammReference(
        "SPMe", p2d_reference.PARTICLE_VOLUMES, electrolyte.SPME_CELLS, solve_past_cutoff=False
    )
    times, volts, _ = spme.window(**VALUES)
    mine = p2d_pinn.predict(np, zeroed, n_layers, times, **VALUES)["Voltage [V]"]
    dfn = p2d_reference.solve(times, **VALUES)["Voltage [V]"]
    rmse_spme, rmse_dfn = (np.sqrt(np.mean((mine - v) ** 2)) for v in (volts, dfn))
    assert rmse_spme < 2e-3 and rmse_dfn > 3.0 * rmse_spme, (rmse_spme, rmse_dfn)


def test_along_a_record_the_nodes_stand_in_for_every_time(shipped):
    # record_nodes: the networks at 48 points in √t, interpolated, must give the voltage of the
    # networks at every time to 2 µV up to the cut-off, at the box's corners and every C-rate.
    weights, _, n_layers = shipped
    worst = 0.0
    for c_rate in (0.5, 1.0, 2.0):
        t = np.arange(0.0, 1.05 * 3600.0 / c_rate, 10.0)
        for pd in (0.1, 1.0, 10.0):
            for j0 in (0.1, 10.0):
                values = {"positive_diffusivity_scale": pd, "negative_j0_scale": j0, "c_rate": c_rate}
                along = p2d_pinn.predict(np, weights, n_layers, t, **values)["Voltage [V]"]
                # a column of times is not a record: the networks run at every time
                every = p2d_pinn.predict(np, weights, n_layers, t[:, None], **values)["Voltage [V]"][:, 0]
                above = every > 2.5
                worst = max(worst, float(np.abs(along - every)[above].max()))
    assert worst < 2e-6, worst


def test_record_nodes_only_where_the_inputs_are_constant_along_known_times():
    t = np.arange(0.0, 3600.0, 10.0)
    nodes, matrix = p2d_pinn.record_nodes(t, 1.0, np.ones((3, 1)), 1.0)
    assert nodes.shape == (p2d_pinn.RECORD_NODES,) and matrix.shape == (len(t), p2d_pinn.RECORD_NODES)
    np.testing.assert_allclose(matrix @ np.sqrt(nodes) ** 3, t**1.5, rtol=1e-9)  # a cubic in √t
    assert p2d_pinn.record_nodes(t, np.ones(len(t)), 1.0, 1.0) is None  # an input varies with t
    assert p2d_pinn.record_nodes(t[:50], 1.0, 1.0, 1.0) is None  # too short to gain
    assert p2d_pinn.record_nodes(t[:, None], 1.0, 1.0, 1.0) is None  # one time per row


# Parity between NumPy, torch and JAX, and finiteness past the cut-off: test_battery_spm.py runs
# those for both battery surrogates.


def test_cutoff_of_the_slowest_cell_matches_the_dfn(shipped):
    weights, _, n_layers = shipped
    _, _, t_cut = p2d_reference.window(**SLOW)

    def voltage(t):
        return p2d_pinn.predict(np, weights, n_layers, t, **SLOW)["Voltage [V]"]

    assert abs(spm_pinn.crossing_time(voltage, SLOW["c_rate"]) / t_cut - 1.0) < 5e-3


def test_train_quick_writes_weights_card_and_residuals(tmp_path, monkeypatch, capsys):
    # The whole training path on a smoke run: 16 DFN solves (cached under XDG_CACHE_HOME), the fit,
    # 8 validation points, and the card with its residual curves beside the weights.
    from bayespinn.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "p2d.safetensors"
    assert main(["train", "battery.p2d", "--quick", "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    _, card = load_weights(out)
    assert card["training"]["config"]["n_trajectories"] == 16
    assert len(card["validation"]["points"]) == 8
    assert list((tmp_path / "cache" / "bayespinn").glob("dfn_curves_16_*.npz"))
    assert P2dSurrogate(out).validation_residuals({"c_rate": 1.0})["residuals"]["Voltage [V]"].shape[0] == 8
    capsys.readouterr()
    assert main(["train", "battery.p2d", "--physics-only", "--out", str(tmp_path / "other.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--physics-only" in err[0]
