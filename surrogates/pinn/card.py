"""Weights (safetensors) and their JSON card; loading checks the sha256 recorded in the card."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

__all__ = [
    "WeightsHashError",
    "load_residuals",
    "load_weights",
    "read_card",
    "save_residuals",
    "save_weights",
    "sha256_of",
    "write_json_atomic",
]


class WeightsHashError(ValueError):
    """The weights file does not hash to the sha256 its card records."""


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_json_atomic(path: str | Path, obj: dict) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)


def save_weights(path: str | Path, tensors: dict[str, np.ndarray], card: dict) -> dict:
    """Write ``<name>.safetensors`` and ``<name>.json``; the card gains the weights' sha256."""
    path = Path(path)
    tmp = path.with_suffix(".safetensors.tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)
    card = {**card, "weights_file": path.name, "sha256": sha256_of(path)}
    write_json_atomic(path.with_suffix(".json"), card)
    return card


def read_card(path: str | Path) -> dict:
    return json.loads(Path(path).with_suffix(".json").read_text())


def load_weights(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Load weights and card, refusing weights whose hash does not match the card."""
    path = Path(path)
    card = read_card(path)
    found = sha256_of(path)
    if found != card.get("sha256"):
        raise WeightsHashError(
            f"{path}: sha256 {found[:12]}… does not match the card's {str(card.get('sha256'))[:12]}…"
        )
    return load_file(str(path)), card


def save_residuals(weights_path: str | Path, arrays: dict[str, np.ndarray]) -> dict:
    """Write the held-out residual curves next to the weights, as ``<name>_residuals.safetensors``
    with a card of their own (the weights' sha256 among it), and name them in the weights' card
    under ``validation.residuals``; returns the weights' card."""
    weights_path = Path(weights_path)
    card = read_card(weights_path)
    path = weights_path.with_name(f"{weights_path.stem}_residuals.safetensors")
    about = {
        "what": f"held-out residual curves (surrogate - reference) of {weights_path.name}",
        "validation_design": card["validation"].get("design"),
        "weights_sha256": card["sha256"],
    }
    save_weights(path, {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}, about)
    card["validation"]["residuals"] = {"file": path.name}
    write_json_atomic(weights_path.with_suffix(".json"), card)
    return card


def load_residuals(weights_path: str | Path, card: dict) -> dict[str, np.ndarray]:
    """The residual arrays the card names; refused when their hash does not match their own card,
    or when they were measured on other weights."""
    entry = card.get("validation", {}).get("residuals")
    if entry is None:
        raise FileNotFoundError(f"{weights_path}: the card records no validation residuals")
    path = Path(weights_path).with_name(entry["file"])
    arrays, about = load_weights(path)
    if about.get("weights_sha256") != card.get("sha256"):
        raise WeightsHashError(f"{path}: measured on other weights than {Path(weights_path).name}")
    return arrays
