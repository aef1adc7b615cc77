"""Weights and card: safetensors round trip, sha256 recorded and checked, no pickle anywhere."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest

from surrogates.pinn.card import (
    WeightsHashError,
    load_residuals,
    load_weights,
    read_card,
    save_residuals,
    save_weights,
)


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "layers.0.weight": rng.standard_normal((8, 5)),
        "layers.0.bias": rng.standard_normal(8),
        "layers.1.weight": rng.standard_normal((2, 8)).astype(np.float32),
    }


def test_round_trip_keeps_values_and_records_sha256(tmp_path):
    path = tmp_path / "net.safetensors"
    tensors = _tensors()
    card = save_weights(path, tensors, {"name": "test.net", "architecture": {"n_layers": 2}})
    loaded, loaded_card = load_weights(path)
    # Bit-exact: safetensors stores the raw bytes, so any difference is a bug, not round-off.
    assert set(loaded) == set(tensors)
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded[name], value)
    expected_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert card["sha256"] == loaded_card["sha256"] == expected_sha
    assert loaded_card["weights_file"] == "net.safetensors"
    assert loaded_card["name"] == "test.net"
    assert read_card(path) == json.loads(path.with_suffix(".json").read_text()) == loaded_card


def test_flipped_byte_is_refused(tmp_path):
    path = tmp_path / "net.safetensors"
    save_weights(path, _tensors(), {"name": "test.net"})
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01  # one bit in the last tensor's data: the file still parses, only the hash knows
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsHashError, match="does not match"):
        load_weights(path)


def test_card_without_hash_is_refused(tmp_path):
    path = tmp_path / "net.safetensors"
    save_weights(path, _tensors(), {"name": "test.net"})
    card = read_card(path)
    del card["sha256"]
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(WeightsHashError):
        load_weights(path)


def test_no_pickle_is_involved(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    for name in ("load", "loads", "dump", "dumps", "Unpickler", "Pickler"):
        monkeypatch.setattr(pickle, name, refuse)
    path = tmp_path / "net.safetensors"
    save_weights(path, _tensors(), {"name": "test.net"})
    load_weights(path)
    # A pickle stream starts with the PROTO opcode 0x80; a safetensors file with its header length.
    assert path.read_bytes()[:1] != b"\x80"
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    assert json.loads(path.read_bytes()[8 : 8 + header_len])  # the header is plain JSON


def test_residuals_whose_hash_does_not_match_are_refused(tmp_path):
    path = tmp_path / "net.safetensors"
    save_weights(path, {"w": np.ones(3)}, {"validation": {}})
    card = save_residuals(path, {"times_s": np.linspace(0, 1, 5), "residual: y": np.zeros((2, 5))})
    np.testing.assert_array_equal(load_residuals(path, card)["residual: y"], np.zeros((2, 5)))
    data = tmp_path / card["validation"]["residuals"]["file"]
    blob = bytearray(data.read_bytes())
    blob[-1] ^= 1
    data.write_bytes(bytes(blob))
    with pytest.raises(WeightsHashError, match="does not match"):
        load_residuals(path, card)
