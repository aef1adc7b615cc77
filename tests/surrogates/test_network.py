"""Power networks (surrogates/power/network.py, network_reference.py): Kron reduction, steady
states, bad files, and reference trajectories against closed forms and conservation laws."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import expm

from surrogates.power import network_reference as ref
from surrogates.power.network import Network, NetworkError, kron_reduce, load_network, steady_state

NETWORKS = Path(__file__).resolve().parents[2] / "surrogates" / "power" / "networks"
FOUR_BUS = {
    "name": "four_bus",
    "buses": ["G1", "G2", "L3", "L4"],
    "inertia": [0.3, 0.2, 0.0, 0.0],
    "damping": [0.15, 0.3, 0.25, 0.2],
    "power_after": [0.1, 0.2, -0.2, -0.1],
    "susceptance": [[0, 0, 0.5, 1.2], [0, 0, 1.4, 0.8], [0.5, 1.4, 0, 0.1], [1.2, 0.8, 0.1, 0]],
}


def _write(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "net.json"
    path.write_text(json.dumps({**FOUR_BUS, **changes}))
    return path


# --- Kron reduction ------------------------------------------------------------------------------


def test_kron_reduction_of_hand_checked_cases():
    # Two lines in series, G1 –2– X –2– G2: one line of 2·2/(2+2) = 1 (series susceptances add
    # like conductances in series).
    series = np.array([[0, 0, 2.0], [0, 0, 2.0], [2.0, 2.0, 0]])
    np.testing.assert_allclose(kron_reduce(series, [True, True, False]), [[0, 1.0], [1.0, 0]], atol=1e-15)
    # A star with arms 1, 2, 3 to a centre becomes a triangle with b_ij = b_i·b_j/6 (the
    # star–mesh transform).
    star = np.zeros((4, 4))
    star[3, :3] = star[:3, 3] = [1.0, 2.0, 3.0]
    mesh = kron_reduce(star, [True, True, True, False])
    np.testing.assert_allclose(mesh, [[0, 2 / 6, 3 / 6], [2 / 6, 0, 6 / 6], [3 / 6, 6 / 6, 0]], atol=1e-15)


def test_kron_reduction_keeps_the_linear_network_response():
    # Injections at the kept buses, none at the eliminated ones: the DC power flow (P = L δ) of
    # the full network and of the reduced one give the same kept angles.
    rng = np.random.default_rng(0)
    b = np.triu(rng.uniform(0.1, 2.0, (7, 7)) * (rng.random((7, 7)) < 0.6), 1)
    b = b + b.T
    b[0, 1:] = b[1:, 0] = 0.5  # connected through bus 0
    keep = np.array([True, True, False, True, False, False, True])
    p = np.zeros(7)
    p[keep] = [0.3, -0.1, 0.2, -0.4]

    def dc(bb, pp):
        lap = np.diag(bb.sum(1)) - bb
        angles = np.zeros(len(pp))
        angles[1:] = np.linalg.solve(lap[1:, 1:], pp[1:])
        return angles

    reduced = kron_reduce(b, keep)
    assert np.allclose(reduced, reduced.T) and np.all(reduced >= -1e-15)
    np.testing.assert_allclose(dc(reduced, p[keep]), dc(b, p)[keep], atol=1e-12)


def test_a_passive_bus_is_reduced_when_the_file_is_read(tmp_path):
    path = tmp_path / "series.toml"
    path.write_text(
        'buses = ["G1", "X", "G2"]\ninertia = [0.2, 0.0, 0.3]\ndamping = [0.1, 0.0, 0.2]\n'
        "power_after = [0.1, 0.0, -0.1]\nsusceptance = [[0, 2, 0], [2, 0, 2], [0, 2, 0]]\n"
    )
    network = load_network(path)
    assert network.buses == ("G1", "G2") and network.reduced == ("X",)
    np.testing.assert_allclose(network.b, [[0, 1.0], [1.0, 0]])


# --- steady states -------------------------------------------------------------------------------


def test_two_bus_steady_state_is_the_arcsine():
    b = np.array([[0, 0.8], [0.8, 0]])
    delta = steady_state(b, np.array([0.3, -0.3]))
    assert delta[0] == 0.0
    assert delta[0] - delta[1] == pytest.approx(np.arcsin(0.3 / 0.8), abs=1e-13)


def test_steady_state_balances_every_bus():
    network = load_network(NETWORKS / "three_bus.toml")
    delta = steady_state(network.b, network.p_before)
    flows = (network.b * np.sin(delta[:, None] - delta[None, :])).sum(1)
    np.testing.assert_allclose(flows, network.p_before, atol=1e-11)
    assert np.any(np.abs(delta) > 1e-3)  # a real operating point, not the rest state


# --- bad files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"susceptance": [[0, 0, 0.5, 1.2], [0, 0, 1.4, 0.8], [0.5, 1.3, 0, 0.1], [1.2, 0.8, 0.1, 0]]},
            "susceptance: B[G2][L3] = 1.4 but B[L3][G2] = 1.3, expected a symmetric table",
        ),
        (
            {"susceptance": [[0, 0, 0.5, 0], [0, 0, 1.4, 0], [0.5, 1.4, 0, 0], [0, 0, 0, 0]]},
            "susceptance: bus 'L4' has no line, expected every bus connected",
        ),
        (
            {"susceptance": [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]},
            "susceptance: the network falls apart in islands",
        ),
        (
            {"power_after": [2.0, 2.0, -2.0, -2.0]},
            "power_after: powers [2.0, 2.0, -2.0, -2.0] admit no stable",
        ),
        ({"power_after": [0.1, 0.2, -0.2, 0.0]}, "power_after: powers sum to 0.1 pu, expected 0"),
        ({"inertia": [0.3, 0.2, 0.0]}, "inertia: found [0.3, 0.2, 0.0], expected 4 numbers (one per bus)"),
        ({"damping": [0.15, 0.3, 0.25, -0.2]}, "damping: found [0.15, 0.3, 0.25, -0.2], expected values ≥ 0"),
        (
            {"damping": [0.15, 0.3, 0.0, 0.2]},
            "power_after: passive bus 'L3' (no inertia, no damping) injects -0.2",
        ),
        ({"voltage": [1, 1, 1, 1]}, "voltage: unknown key"),
    ],
)
def test_bad_network_files_are_rejected_with_one_line(tmp_path, changes, message):
    path = _write(tmp_path, **changes)
    with pytest.raises(NetworkError) as err:
        load_network(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text, text


def test_missing_key_and_malformed_toml(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text('buses = ["A", "B"]\ninertia = [0.1, 0.2]\n')
    with pytest.raises(NetworkError, match="damping: missing"):
        load_network(path)
    path.write_text("buses = [")
    with pytest.raises(NetworkError, match="malformed TOML"):
        load_network(path)


# --- reference trajectories ----------------------------------------------------------------------


def test_four_bus_file_is_the_published_system():
    network = load_network(NETWORKS / "four_bus.toml")
    assert network.buses == ("G1", "G2", "L3", "L4") and network.reduced == ()
    np.testing.assert_array_equal(network.machines, [True, True, False, False])
    np.testing.assert_allclose(network.b[0], [0, 0, 0.5, 1.2])


def test_conserved_quantity_and_final_state():
    # Summing the bus equations, Σ_i (m_i δ_i'' + d_i δ_i') = Σ_i P_i = 0: the quantity
    # Σ m_i ω_i + Σ d_i δ_i keeps its value at t = 0 (Σ d_i δ_i(0)); and the trajectory settles
    # at the steady state of the new powers, shifted by the constant that keeps it.
    network = load_network(NETWORKS / "three_bus.toml")
    t = np.linspace(0.0, 60.0, 601)
    y = ref.solve(network, t)
    delta = np.stack([y[ref.angle_name(i + 1)] for i in range(3)])
    omega = np.stack([y[ref.frequency_name(i + 1)] for i in range(3)])
    invariant = network.m @ omega + network.d @ delta
    start = network.d @ steady_state(network.b, network.p_before)
    np.testing.assert_allclose(invariant, start, atol=1e-8)
    final = steady_state(network.b, network.p_after)
    final = final + (start - network.d @ final) / network.d.sum()
    np.testing.assert_allclose(delta[:, -1], final, atol=1e-6)
    assert np.max(np.abs(omega[:, -1])) < 1e-6


def test_small_disturbance_follows_the_linearised_system():
    # A power step of 1e-6 pu from rest: the trajectory is the linear system's
    # x' = A x + g (δ, ω of the machines) to O(step²) = 1e-12, computed with a matrix exponential.
    base = load_network(NETWORKS / "four_bus.toml")
    step = 1e-6 * np.array([1.0, 2.0, -2.0, -1.0])
    network = Network(base.name, base.buses, base.m, base.d, np.zeros(4), step, base.b)
    lap = np.diag(base.b.sum(1)) - base.b
    machine = base.machines
    # First-order buses: d δ' = P − L δ; machines: δ' = ω, m ω' = P − L δ − d ω.
    n, k = 4, int(machine.sum())
    a = np.zeros((n + k, n + k))
    g = np.zeros(n + k)
    first = np.flatnonzero(~machine)
    mach = np.flatnonzero(machine)
    a[first] = np.concatenate([-lap[first] / base.d[first, None], np.zeros((len(first), k))], 1)
    g[first] = step[first] / base.d[first]
    for j, i in enumerate(mach):
        a[i, n + j] = 1.0
        a[n + j, :n] = -lap[i] / base.m[i]
        a[n + j, n + j] = -base.d[i] / base.m[i]
        g[n + j] = step[i] / base.m[i]
    t = np.linspace(0.0, 5.0, 11)
    # x(t) = ∫_0^t e^{A s} g ds, from the augmented exponential [[A, g], [0, 0]].
    aug = np.zeros((n + k + 1, n + k + 1))
    aug[: n + k, : n + k], aug[: n + k, -1] = a, g
    linear = np.stack([expm(aug * ti)[: n + k, -1] for ti in t], 1)
    y = ref.solve(network, t)
    for i in range(n):
        np.testing.assert_allclose(y[ref.angle_name(i + 1)], linear[i], atol=1e-11)


def test_jax_solver_matches_scipy_and_differentiates():
    import jax
    import numpyro

    numpyro.enable_x64()
    network = load_network(NETWORKS / "three_bus.toml")
    t = np.linspace(0.0, 10.0, 101)
    m, d = np.array([0.3, 0.12, 0.0]), np.array([0.25, 0.1, 0.35])
    exact = ref.solve(network, t, m, d)
    fast = ref.solve_jax(network, t, m, d)
    for name, values in exact.items():
        # Tsit5 at rtol 1e-8 against DOP853 at 1e-10: measured within 1.4e-10 rad, 4.9e-10 rad/s.
        np.testing.assert_allclose(np.asarray(fast[name]), values, atol=5e-9, err_msg=name)

    def angle_at_5s(m_, d_):
        return ref.solve_jax(network, t, m_, d_)[ref.angle_name(2)][50]

    grad_m, grad_d = jax.grad(angle_at_5s, argnums=(0, 1))(m, d)
    h = 1e-5
    for i in (0, 1):  # central differences of the SciPy solution
        up, down = m.copy(), m.copy()
        up[i] += h
        down[i] -= h
        fd = (
            ref.solve(network, t, up, d)[ref.angle_name(2)][50]
            - ref.solve(network, t, down, d)[ref.angle_name(2)][50]
        ) / (2 * h)
        assert grad_m[i] == pytest.approx(fd, rel=1e-4, abs=1e-8), (i, grad_m[i], fd)
    up, down = d.copy(), d.copy()
    up[2] += h
    down[2] -= h
    fd = (
        ref.solve(network, t, m, up)[ref.angle_name(2)][50]
        - ref.solve(network, t, m, down)[ref.angle_name(2)][50]
    ) / (2 * h)
    assert grad_d[2] == pytest.approx(fd, rel=1e-4, abs=1e-8)
    assert grad_m[2] == 0.0  # a first-order bus's m is not used
