"""``power.multimachine`` surrogates (surrogates/power/network_pinn.py, network_models.py):
the ansatz's parts against independent references, the shipped weights against DOP853, parity
between NumPy, torch and JAX, and the errors a user meets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from surrogates.pinn.network import MLP, mlp_apply, mlp_time_jets
from surrogates.power import network_pinn as npn
from surrogates.power.network import NetworkError
from surrogates.power.network_models import NetworkSurrogate, bundled, weights_for
from surrogates.registry import load

BAR_RAD = {"median": 2e-3, "p95": 5e-3, "max": 1e-2}  # issue 9's angle RMSE bar


def _autodiff_jets(weights, x0, a, b):
    """Value, d/dt and d²/dt² at t = 0 of the MLP at x0 + a·t + b·t², by nested torch.autograd
    (one t per row, so each row's outputs depend on its own t only)."""
    t = torch.zeros(x0.shape[0], 1, dtype=torch.float64, requires_grad=True)
    out = mlp_apply(torch, weights, x0 + t * a + t**2 * b, 3)
    first, second = [], []
    for j in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, j].sum(), t, create_graph=True)
        (gg,) = torch.autograd.grad(g.sum(), t, retain_graph=True)
        first.append(g[:, 0])
        second.append(gg[:, 0])
    return out.detach(), torch.stack(first, 1).detach(), torch.stack(second, 1)


@pytest.mark.parametrize("curved", [True, False])
def test_time_jets_equal_nested_autodiff(curved):
    """Inputs x(t) = x0 + a·t + b·t² (b = 0: ``ddx`` None, inputs linear in t)."""
    model = MLP(4, 3, (8, 8), seed=3).double()
    weights = {k: v.detach() for k, v in model.named_parameters()}
    x0 = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = torch.tensor([0.7, 0.0, -0.2, 0.0], dtype=torch.float64)
    b = torch.tensor([0.0, 0.3, 0.5, 0.0], dtype=torch.float64) * curved
    value, d1, d2 = mlp_time_jets(torch, weights, x0, a, 3, 2 * b if curved else None)
    ref_value, ref_d1, ref_d2 = _autodiff_jets(weights, x0, a, b)
    torch.testing.assert_close(value, ref_value, rtol=0, atol=1e-14)
    torch.testing.assert_close(d1, ref_d1, rtol=0, atol=1e-13)
    torch.testing.assert_close(d2, ref_d2, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("name", "order"), [("four_bus", 3), ("three_bus", 2), ("kundur_two_area", 2)])
def test_linear_part_is_exact_to_first_order_in_the_step(name, order):
    """Halving the disturbance must divide the linear part's error by 2^order: the remainder is
    O(s²), and O(s³) from rest (the four-bus system), where sin(δ*) in the quadratic term is
    itself O(s). The linear part must also settle where the equations' conserved quantity says."""
    ansatz = npn.Ansatz(bundled(name))
    values = dict(zip(ansatz.parameters, [*ansatz.m_nominal, *ansatz.network.d], strict=True))
    t = np.linspace(0.0, npn.T_MAX_S, 101)
    errors = []
    for scale in (0.2, 0.1, 0.05):
        ref, _ = npn._reference(ansatz, {**values, npn.CONDITION: scale}, t)
        lin, _ = npn.trajectories(ansatz, None, 0, {**values, npn.CONDITION: scale}, t)
        errors.append(np.abs(lin - ref).max())
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    np.testing.assert_allclose(ratios, 2.0**order, rtol=0.06)
    # Σ m_i·ω_i + d_i·δ_i is conserved (the powers balance), so both the nonlinear and the
    # linearised system settle at δ*(s) shifted by c = Σ d_i·(δ_i(0) − δ*_i) / Σ d_i.
    delta_after, _ = ansatz.after(1.0)
    d = ansatz.network.d
    c = np.sum(d * (ansatz.delta_before - delta_after)) / d.sum()
    lin, _ = npn.trajectories(ansatz, None, 0, {**values, npn.CONDITION: 1.0}, np.array([0.0, 1e4]))
    np.testing.assert_allclose(lin[-1], delta_after + c, atol=1e-9)


@pytest.fixture(scope="module", params=["four_bus", "three_bus", "kundur_two_area"])
def shipped(request):
    return load("power.multimachine", request.param)


def test_card_meets_the_bar_on_a_box_without_pole_slips(shipped):
    validation = shipped.card["validation"]
    angle = validation["rmse"]["Angle [rad]"]
    assert "128 scrambled Sobol points" in validation["design"]
    for stat, bar in BAR_RAD.items():
        assert angle[stat] <= bar, (stat, angle[stat])
    # The correction must earn its place: its overall error well below the linear part's alone.
    assert angle["overall"] < 0.7 * validation["linear_part_alone"]["Angle [rad]"]["overall"]
    widest = validation["widest_line_angle_rad"]
    assert max(widest.values()) < math.pi / 2
    assert npn.box_corners_widest_line(shipped.ansatz) == pytest.approx(widest["box_corners"], rel=1e-9)


def test_shipped_weights_on_fresh_points(shipped):
    """8 Sobol points the card never saw, against DOP853: each within twice the card's max."""
    weights = shipped._weights
    fresh = npn.validate_network(shipped.network, weights, shipped._n_layers, n_points=8, seed=2)
    card_max = shipped.card["validation"]["rmse"]["Angle [rad]"]["max"]
    assert fresh["rmse"]["Angle [rad]"]["max"] <= min(2 * card_max, BAR_RAD["max"])
    assert (
        fresh["rmse"]["Frequency deviation [rad.s-1]"]["max"]
        <= 2 * (shipped.card["validation"]["rmse"]["Frequency deviation [rad.s-1]"]["max"])
    )


def _point(model, seed):
    rng = np.random.default_rng(seed)
    box = model.domain({})
    values = {k: float(np.exp(rng.uniform(np.log(box[k][0]), np.log(box[k][1])))) for k in model.parameters}
    return {**values, npn.CONDITION: float(rng.uniform(*npn.SCALE_BOX))}


def test_numpy_torch_and_jax_agree(shipped):
    import jax.numpy as jnp

    values = _point(shipped, 0)
    even = np.linspace(0.0, 5.0, 126)  # the JAX scan path
    uneven = np.sort(np.random.default_rng(1).uniform(0.0, 5.0, 40))  # the JAX expm path
    for t in (even, uneven):
        numpy = shipped.numpy_forward(t, **values)
        jax = shipped.jax_forward(jnp.asarray(t) if t is uneven else t, **values)
        for name in shipped.observables:
            np.testing.assert_allclose(np.asarray(jax[name]), numpy[name], rtol=0, atol=1e-11, err_msg=name)
    # torch, as in training: the same predict over torch arrays
    ansatz, k = shipped.ansatz, len(shipped.ansatz.m_nominal)
    scale = values[npn.CONDITION]
    delta, laplacian = ansatz.after(scale)
    tt = torch.from_numpy(even)
    m_g = torch.tensor([values[p] for p in shipped.parameters[:k]], dtype=torch.float64).expand(len(even), k)
    d = torch.tensor([values[p] for p in shipped.parameters[k:]], dtype=torch.float64).expand(len(even), -1)
    a = npn.system_matrix(torch, ansatz, m_g, d, torch.from_numpy(laplacian))
    y0 = torch.from_numpy(np.concatenate([ansatz.delta_before - delta, np.zeros(k)]))
    linear = npn.linear_response(torch, a, y0, tt)
    weights = {key: torch.from_numpy(v) for key, v in shipped._weights.items()}
    angle, rate, _ = npn.predict(
        torch,
        weights,
        shipped._n_layers,
        ansatz,
        tt,
        m_g,
        d,
        torch.full_like(tt, scale),
        torch.from_numpy(delta),
        linear,
    )
    numpy = shipped.numpy_forward(even, **values)
    np.testing.assert_allclose(angle.numpy()[:, 0], numpy["Angle 1 [rad]"], rtol=0, atol=1e-11)
    np.testing.assert_allclose(rate.numpy()[:, -1], numpy[shipped.observables[-1]], rtol=0, atol=1e-11)


def test_jax_gradient_matches_finite_differences(shipped):
    import jax

    values = _point(shipped, 4)
    t = np.linspace(0.0, 5.0, 51)
    name = shipped.parameters[0]

    def total(x):
        out = shipped.jax_forward(t, **{**values, name: x})
        return sum(v.sum() for v in out.values())

    grad = float(jax.grad(total)(values[name]))
    h = 1e-6 * values[name]
    numeric = (float(total(values[name] + h)) - float(total(values[name] - h))) / (2 * h)
    assert grad == pytest.approx(numeric, rel=1e-6)


def test_weights_of_another_network_are_refused(tmp_path):
    four = weights_for("four_bus")
    changed = tmp_path / "grid.toml"
    text = (npn.Path(__file__).parents[2] / "surrogates/power/networks/four_bus.toml").read_text()
    changed.write_text(text.replace("damping = [0.15", "damping = [0.16"))
    (tmp_path / "grid.safetensors").write_bytes(four.read_bytes())
    (tmp_path / "grid.json").write_text(four.with_suffix(".json").read_text())
    with pytest.raises(NetworkError, match="trained for network 'four_bus' with other buses"):
        load("power.multimachine", str(changed))
    (tmp_path / "grid.safetensors").unlink()
    with pytest.raises(NetworkError, match="no trained surrogate at .*grid.safetensors; train one"):
        NetworkSurrogate(bundled(str(changed)), weights_for(str(changed)))


def test_train_and_validate_cli_need_a_good_network(tmp_path, capsys):
    from bayespinn.cli import main

    assert main(["train", "power.multimachine", "--quick"]) == 2
    assert "--network missing" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nbuses = ["A"]\n')
    assert main(["train", "power.multimachine", "--network", str(bad), "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.toml" in err
    assert main(["validate", "power.smib", "--network", "four_bus"]) == 2
    assert "takes no --network" in capsys.readouterr().err


def test_train_quick_writes_a_card_that_validates(tmp_path, capsys):
    from bayespinn.cli import main

    out = tmp_path / "three.safetensors"
    assert (
        main(
            ["train", "power.multimachine", "--network", "three_bus", "--quick", "--quiet", "--out", str(out)]
        )
        == 0
    )
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["network"]["name"] == "three_bus" and card["training"]["config"]["adam_steps"] == 100
    capsys.readouterr()
    assert (
        main(
            [
                "validate",
                "power.multimachine",
                "--network",
                "three_bus",
                "--weights",
                str(out),
                "--points",
                "4",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["rmse"]["Angle [rad]"]["max"] < 1e-2  # the linear part alone is well inside


def test_kundur_two_area_reduces_to_its_machines_and_loads():
    """The bundled Kundur file (written by networks/reduce_kundur.py from ANDES's case) keeps the
    four machines and two loads; Kron reduction couples each area's machines to their own load
    only, and the two areas through the load buses (the tie lines)."""
    network = bundled("kundur_two_area")
    assert network.buses == ("G1", "G2", "G12", "G11", "L3", "L13")
    assert len(network.reduced) == 8 and network.machines.tolist() == [True] * 4 + [False] * 2
    np.testing.assert_allclose(network.p_before[4:], [-11.59, -15.75])  # the case's loads [pu]
    assert abs(network.p_before.sum()) < 1e-9 and abs(network.p_after.sum()) < 1e-9
    b = network.b
    # machines see the other area only through the tie lines between the load buses
    assert np.all(np.abs(b[np.ix_([0, 1], [2, 3, 5])]) < 1e-9)
    assert np.all(np.abs(b[np.ix_([2, 3], [0, 1, 4])]) < 1e-9)
    assert b[4, 5] > 1.0 and np.all(b[[0, 1], 4] > 1.0) and np.all(b[[2, 3], 5] > 1.0)
    delta = npn.Ansatz(network).after(1.0)[0]
    assert np.max(np.abs(delta[:, None] - delta[None, :])[b > 0]) < math.pi / 2


@pytest.mark.parametrize("name", ["four_bus", "three_bus", "kundur_two_area"])
def test_fast_time_scale_resolves_the_fastest_mode(name):
    """The log-time input's scale is no longer than the linearised system's fastest time
    constant at the box's fastest corner (lightest damping, lightest inertia, largest step), and
    where it is set by the network (Kundur's loads) within a factor 2 of it. The loss weights of
    frequencies are 1 except at buses relaxing faster than FAST_S."""
    ansatz = npn.Ansatz(bundled(name))
    box, k = ansatz.box(), len(ansatz.m_nominal)
    m_g, d = (
        np.array([box[p][0] for p in names]) for names in (ansatz.parameters[:k], ansatz.parameters[k:])
    )
    a = npn.system_matrix(np, ansatz, m_g, d, ansatz.after(npn.SCALE_BOX[1])[1])
    fastest_s = 1.0 / np.abs(np.linalg.eigvals(a).real).max()
    assert ansatz.fast_s <= 1.1 * fastest_s
    if ansatz.fast_s < npn.FAST_S:
        assert ansatz.fast_s >= 0.5 * fastest_s
    fast_buses = ansatz.relaxation_s < npn.FAST_S
    np.testing.assert_array_equal(ansatz.rate_weight[~fast_buses], 1.0)
    np.testing.assert_allclose(ansatz.rate_weight[fast_buses], ansatz.relaxation_s[fast_buses] / npn.FAST_S)
    assert fast_buses.any() == (name == "kundur_two_area")


def test_revision_two_starts_every_bus_on_the_exact_equations():
    """With a zero correction, revision 2's angles at t = 0 are the steady state before the step
    and its first-order buses' rates the exact s·ΔP_i/d_i, so the full residual vanishes there;
    revision 1's linear rates miss Kundur's loads by about 0.1 rad/s. Its first layer's width
    says which revision a file holds."""
    network = bundled("kundur_two_area")
    assert npn.Ansatz.for_weights(network, _zero_weights(npn.Ansatz(network, 2))).revision == 2
    assert (
        npn.Ansatz.for_weights(bundled("four_bus"), load("power.multimachine", "four_bus")._weights).revision
        == 1
    )
    values = {
        "m_1": 0.5,
        "m_2": 0.7,
        "m_3": 0.6,
        "m_4": 0.4,
        **{f"d_{i}": 0.03 + 0.01 * i for i in range(1, 7)},
    }
    m_g = np.array([values[f"m_{i}"] for i in range(1, 5)])
    d = np.array([values[f"d_{i}"] for i in range(1, 7)])
    s = 1.7
    for revision, loads_off in ((2, False), (1, True)):
        ansatz = npn.Ansatz(network, revision)
        t = np.array([0.0, 1e-4, 1e-3, 0.5])
        angle, rate, acceleration = _zero_correction(ansatz, {**values, npn.CONDITION: s}, t)
        r = npn.residual(
            np,
            ansatz,
            np.broadcast_to(m_g, (4, 4)),
            np.broadcast_to(d, (4, 6)),
            np.full(4, s),
            angle,
            rate,
            acceleration,
        )
        np.testing.assert_allclose(angle[0], ansatz.delta_before, atol=1e-12)
        assert (np.abs(r[0, 4:]).max() > 1e-3) == loads_off
        if revision == 2:
            step = network.p_after - network.p_before
            np.testing.assert_allclose(rate[0, 4:], s * step[4:] / d[4:], rtol=1e-10)
            np.testing.assert_allclose(r[0], 0.0, atol=1e-9)
            # its derivatives: the rates are the angles' slope (central differences at 1e-4 s)
            h = 1e-7
            up, _, _ = _zero_correction(ansatz, {**values, npn.CONDITION: s}, t + h)
            down, _, _ = _zero_correction(ansatz, {**values, npn.CONDITION: s}, t[1:] - h)
            np.testing.assert_allclose((up[1:] - down) / (2 * h), rate[1:], rtol=1e-5, atol=1e-6)


def _zero_weights(ansatz):
    """A 2-layer network of the ansatz's inputs whose output is 0."""
    net = MLP(ansatz.n_inputs, len(ansatz.network.buses), (8,))
    return {k: np.zeros(tuple(v.shape)) for k, v in net.state_dict().items()}


def _zero_correction(ansatz, values, t):
    """(angle, rate, acceleration) of ``predict`` with a correction that is 0."""
    k = len(ansatz.m_nominal)
    m_g = np.array([values[p] for p in ansatz.parameters[:k]])
    d = np.array([values[p] for p in ansatz.parameters[k:]])
    s = values[npn.CONDITION]
    delta, laplacian = ansatz.after(s)
    y0 = np.concatenate([ansatz.delta_before - delta, np.zeros(k)])
    linear = npn.linear_response(np, npn.system_matrix(np, ansatz, m_g, d, laplacian), y0, t)
    shape = (len(t),)
    return npn.predict(
        np, _zero_weights(ansatz), 2, ansatz, t, np.broadcast_to(m_g, (*shape, k)), np.broadcast_to(d, (*shape, len(d))),
        np.full(shape, s), delta, linear,
    )  # fmt: skip
