"""PINN trainer: Adam on resampled collocation points, then L-BFGS; checkpoints; progress bar.

The trainer knows nothing about a particular system. A *problem* supplies

- ``sample(n, generator) -> Tensor``: fresh collocation inputs (physical units);
- ``physics_loss(model, x) -> Tensor``: mean squared residual at those inputs;
- ``data_loss(model, batch) -> Tensor``: mean squared error against reference solutions
  (only called when ``config.data_weight > 0``);
- ``data_batches(n, generator)``: a minibatch of the reference data.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

__all__ = ["TrainConfig", "hardware_description", "resolve_device", "train", "training_versions"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    hidden: tuple[int, ...] = (96, 96, 96, 96)
    adam_steps: int = 20_000
    lr_start: float = 3e-3
    lr_end: float = 3e-5
    collocation_batch: int = 4096
    data_batch: int = 4096
    lbfgs_steps: int = 1_500
    lbfgs_collocation: int = 32_768
    lbfgs_data: int = 65_536
    lbfgs_resample_every: int = 250
    lbfgs_line_search_evals: int = 25
    physics_weight: float = 1.0
    data_weight: float = 1.0
    n_trajectories: int = 3_000
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 1_000

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible to torch")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device: found {device!r}, expected auto, cpu or cuda")
    return torch.device(device)


def hardware_description(device: str) -> str:
    """The GPU's name, or the CPU model and the number of torch threads, for the model card."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next(
            line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.machine()
    return f"{model}, {torch.get_num_threads()} torch threads"


def training_versions() -> dict[str, str]:
    """The library versions a model card records."""
    import jax
    import scipy

    return {
        "torch": torch.__version__,
        "jax": jax.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }


def _lr(config: TrainConfig, step: int) -> float:
    # Cosine from lr_start to lr_end: the late small steps are what takes Adam below 1e-3.
    frac = min(step / max(config.adam_steps, 1), 1.0)
    return config.lr_end + 0.5 * (config.lr_start - config.lr_end) * (1 + math.cos(math.pi * frac))


def _loss(problem: Any, model, config: TrainConfig, x, batch) -> tuple[torch.Tensor, dict]:
    parts = {}
    total = 0.0
    if config.physics_weight > 0:
        parts["physics"] = problem.physics_loss(model, x)
        total = total + config.physics_weight * parts["physics"]
    if config.data_weight > 0:
        parts["data"] = problem.data_loss(model, batch)
        total = total + config.data_weight * parts["data"]
    return total, parts


def _save_checkpoint(path: Path, model, phase: str, step: int, history: list) -> None:
    tmp = path.with_suffix(".tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"phase": phase, "step": str(step), "history": json.dumps(history)})
    tmp.replace(path)


def _load_checkpoint(path: Path, model) -> tuple[str, int, list]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    state = load_file(str(path))
    # L-BFGS and finished checkpoints hold float64 weights; a float32 model would round them.
    if any(v.dtype == torch.float64 for v in state.values()):
        model.double()
    model.load_state_dict(state)
    return meta["phase"], int(meta["step"]), json.loads(meta["history"])


def train(
    problem: Any,
    model: torch.nn.Module,
    config: TrainConfig,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> dict:
    """Train ``model`` in place; returns a record (loss history, wall time, device, steps)."""
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed + 1)
    model.to(device)
    phase, start, history = "adam", 0, []
    if checkpoint is not None and Path(checkpoint).exists():
        phase, start, history = _load_checkpoint(Path(checkpoint), model)
        model.to(device)
    # Each history record carries the training time so far, so a resumed run reports its total.
    t0 = time.perf_counter() - (history[-1].get("elapsed_s", 0.0) if history else 0.0)
    if phase == "done":  # a finished run is a result to reuse, not a start for more L-BFGS
        return {"history": history, "wall_time_s": history[-1].get("elapsed_s", 0.0), "device": str(device)}
    if phase == "adam":
        start = _adam(problem, model, config, gen, device, start, history, checkpoint, progress, t0)
        phase, start = "lbfgs", 0
    _lbfgs(problem, model, config, gen, device, start, history, checkpoint, progress, t0)
    history.append({"phase": "done", "elapsed_s": time.perf_counter() - t0})
    if checkpoint is not None:
        _save_checkpoint(Path(checkpoint), model, "done", 0, history)
    return {"history": history, "wall_time_s": history[-1]["elapsed_s"], "device": str(device)}


def _adam(problem, model, config, gen, device, start, history, checkpoint, progress, t0) -> int:
    model.float()  # Adam runs in float32 (a later stage may start from float64 L-BFGS weights)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr_start)
    bar = tqdm(range(start, config.adam_steps), desc="adam", disable=not progress, mininterval=2.0)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr(config, step)
        # unweighted physics is not sampled: it would draw from ``gen`` and move the data batches
        x = problem.sample(config.collocation_batch, gen).to(device) if config.physics_weight > 0 else None
        batch = problem.data_batch(config.data_batch, gen, device) if config.data_weight > 0 else None
        opt.zero_grad(set_to_none=True)
        loss, parts = _loss(problem, model, config, x, batch)
        loss.backward()
        opt.step()
        if step % 100 == 0:
            loss = loss.detach()
            record = {
                "phase": "adam",
                "step": step,
                "loss": loss.item(),
                "elapsed_s": time.perf_counter() - t0,
            }
            record.update({k: v.detach().item() for k, v in parts.items()})
            history.append(record)
            bar.set_postfix(loss=f"{loss.item():.3e}")
        if checkpoint is not None and (step + 1) % config.checkpoint_every == 0:
            _save_checkpoint(Path(checkpoint), model, "adam", step + 1, history)
    return config.adam_steps


def _lbfgs_optimizer(model, config: TrainConfig) -> torch.optim.LBFGS:
    # One iteration per call so that progress and checkpoints come every step. torch derives
    # max_eval from max_iter (1·5//4 = 1), which leaves the strong-Wolfe search no evaluation
    # to shrink a step: every rejected first step would then be a silent no-op. Its absolute
    # tolerances (1e-7 on the gradient, 1e-9 on the loss change) would also stop a PINN whose
    # loss is 1e-5 long before it converges.
    return torch.optim.LBFGS(
        model.parameters(),
        lr=1.0,
        max_iter=1,
        max_eval=config.lbfgs_line_search_evals,
        history_size=50,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )


def _lbfgs(problem, model, config, gen, device, start, history, checkpoint, progress, t0) -> None:
    # L-BFGS needs a fixed objective between resamples; float64 keeps its line search honest
    # once the loss is near float32 round-off. The model stays in float64 afterwards: the
    # shipped weights are float64 so that torch and JAX agree to round-off.
    model.double()
    opt = None
    bar = tqdm(range(start, config.lbfgs_steps), desc="l-bfgs", disable=not progress, mininterval=2.0)
    for step in bar:
        if opt is None or step % config.lbfgs_resample_every == 0:
            x = (
                problem.sample(config.lbfgs_collocation, gen).to(device, torch.float64)
                if config.physics_weight > 0
                else None
            )
            batch = (
                problem.data_batch(config.lbfgs_data, gen, device, torch.float64)
                if config.data_weight > 0
                else None
            )
            opt = _lbfgs_optimizer(model, config)

        def closure(opt=opt, x=x, batch=batch):
            opt.zero_grad(set_to_none=True)
            loss, _ = _loss(problem, model, config, x, batch)
            loss.backward()
            return loss

        loss = opt.step(closure)
        if step % 50 == 0:
            _, parts = _loss(problem, model, config, x, batch)
            parts = {k: v.detach() for k, v in parts.items()}
            record = {
                "phase": "lbfgs",
                "step": step,
                "loss": loss.item(),
                "elapsed_s": time.perf_counter() - t0,
            }
            record.update({k: v.item() for k, v in parts.items()})
            history.append(record)
            bar.set_postfix(loss=f"{loss.item():.3e}")
        if checkpoint is not None and (step + 1) % config.checkpoint_every == 0:
            _save_checkpoint(Path(checkpoint), model, "lbfgs", step + 1, history)
