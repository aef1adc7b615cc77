"""The train, validate and surrogates commands, end to end on a smoke-sized run."""

import json

import pytest
import torch

from bayespinn.cli import main
from surrogates.pinn.card import load_weights


def test_train_quick_then_validate(tmp_path, capsys):
    out = tmp_path / "smib.safetensors"
    assert main(["train", "power.smib", "--quick", "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    _, card = load_weights(out)  # raises if the card's sha256 does not match
    assert card["training"]["device"] == "cpu"
    assert card["training"]["config"]["adam_steps"] == 100
    assert (tmp_path / "smib.ckpt.safetensors").exists(), "the default checkpoint sits beside the weights"
    capsys.readouterr()

    assert main(["validate", "power.smib", "--weights", str(out), "--points", "16"]) == 0
    printed = json.loads(capsys.readouterr().out)
    # A 200-step network is far from the reference, but its error is finite and measured.
    for stats in printed["rmse"].values():
        assert 0 < stats["median"] <= stats["p95"] <= stats["max"] < 10


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_train_on_missing_cuda_is_a_user_error(tmp_path, capsys):
    assert main(["train", "power.smib", "--device", "cuda", "--out", str(tmp_path / "w.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cuda" in err[0]
    assert not list(tmp_path.iterdir())


def test_surrogates_lists_domain_and_errors(capsys):
    assert main(["surrogates"]) == 0
    text = capsys.readouterr().out
    assert "power.smib" in text and "power.smib:reference" in text
    assert "m in [0.1, 1]" in text and "RMSE vs reference" in text
