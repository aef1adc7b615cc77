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
    """Write the held-out residual curves next to the weights (``<name>_residuals.safetensors``)
    and add their file name and sha256 to the card under ``validation.residuals``."""
    weights_path = Path(weights_path)
    path = weights_path.with_name(f"{weights_path.stem}_residuals.safetensors")
    save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()}, str(path))
    card = read_card(weights_path)
    card["validation"]["residuals"] = {"file": path.name, "sha256": sha256_of(path)}
    write_json_atomic(weights_path.with_suffix(".json"), card)
    return card


def load_residuals(weights_path: str | Path, card: dict) -> dict[str, np.ndarray]:
    """The residual arrays the card names, refusing a file whose hash does not match it."""
    entry = card.get("validation", {}).get("residuals")
    if entry is None:
        raise FileNotFoundError(f"{weights_path}: the card records no validation residuals")
    path = Path(weights_path).with_name(entry["file"])
    found = sha256_of(path)
    if found != entry["sha256"]:
        raise WeightsHashError(
            f"{path}: sha256 {found[:12]}… does not match the card's {entry['sha256'][:12]}…"
        )
    return load_file(str(path))
