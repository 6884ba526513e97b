"""The workload a config describes: the model, its data splits and the pruning env.

:func:`prepare_workload` does everything that can fail cheaply first: it loads the
checkpoint (or builds the untrained model), checks the model's output against the data's
classes, traces the model and checks the budget by building the env, and checks the
searcher's options by building it. Only then may the caller train the dense model (hours
on a real dataset) with :func:`train_dense`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunegym.experiments.config import Config, ConfigError

RL_AGENTS = ("ddpg", "td3", "sac", "ppo")


@dataclass
class Workload:
    """A model and its data; ``env`` is the pruning env when the model is final (it
    needs no training), else ``None``."""

    model: Any
    data: Any
    needs_training: bool
    env: Any = None


def check_config(cfg: Config) -> None:
    """Errors that need no model or data, found before anything is built or written."""
    from prunegym.agents import SEARCHERS

    if cfg.search.agent not in SEARCHERS:
        raise ConfigError(
            f"unknown agent {cfg.search.agent!r} (search.agent); known: {', '.join(SEARCHERS)}"
        )
    if cfg.search.episodes < 1:
        raise ConfigError(f"search.episodes must be >= 1, got {cfg.search.episodes}")
    if cfg.run.checkpoint_every < 1:
        raise ConfigError(f"run.checkpoint_every must be >= 1, got {cfg.run.checkpoint_every}")
    if cfg.run.threads is not None and cfg.run.threads < 1:
        raise ConfigError(f"run.threads must be >= 1, got {cfg.run.threads}")
    w = cfg.workload
    if w.checkpoint is None:
        if w.model is None:
            raise ConfigError("workload needs a checkpoint (model.pt) or a model to train")
        if w.train_epochs < 1:
            raise ConfigError("workload.model without workload.checkpoint needs train_epochs >= 1")


def train_command_for(cfg: Config) -> str:
    """The ``prunegym train`` command that makes the checkpoint ``cfg`` names."""
    w = cfg.workload
    path = Path(str(w.checkpoint))
    parts = ["prunegym train", f"--model {w.model or 'MODEL'}", f"--dataset {w.dataset}"]
    if w.data_dir is not None:
        parts.append(f"--data-dir {w.data_dir}")
    if w.split_seed != 0:
        parts.append(f"--split-seed {w.split_seed}")
    if w.reward_val_size is not None:
        parts.append(f"--reward-val-size {w.reward_val_size}")
    parts.append(f"--out {path.parent}")
    command = " ".join(parts)
    if path.name != "model.pt":
        command += f" (it writes {path.parent / 'model.pt'}: point workload.checkpoint there)"
    return command


def _load_checkpoint_workload(cfg: Config) -> tuple[Any, Any]:
    from prunegym.experiments.checkpoint import load_checkpoint
    from prunegym.experiments.data import build_data_like

    w = cfg.workload
    if not Path(str(w.checkpoint)).is_file():
        raise ConfigError(
            f"checkpoint {w.checkpoint} (workload.checkpoint) does not exist; make it with: "
            f"{train_command_for(cfg)}"
        )
    ckpt = load_checkpoint(str(w.checkpoint))
    name = ckpt.model_spec.get("name")
    if w.model is not None and name is not None and name != w.model:
        raise ConfigError(f"workload.model is {w.model!r} but {w.checkpoint} holds {name!r}")
    if not ckpt.metadata.get("dataset"):
        raise ConfigError(f"{w.checkpoint} records no dataset; cannot rebuild its splits")
    model = ckpt.build_model().eval()
    return model, build_data_like(ckpt.metadata["dataset"], w.data_dir)


def _untrained_workload(cfg: Config) -> tuple[Any, Any]:
    import torch

    from prunegym.experiments.data import build_data
    from prunegym.experiments.models import build_model, check_model_name

    w = cfg.workload
    check_model_name(str(w.model))
    data = build_data(w.dataset, w.reward_val_size, w.split_seed, w.data_dir)
    torch.manual_seed(w.train_seed)
    return build_model(str(w.model), data.in_channels, data.num_classes), data


def check_classes(model: Any, data: Any) -> None:
    """The model's output has one logit per class of the data (one forward pass)."""
    import torch

    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(data.example_input)
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"the model must return logits of shape (batch, classes), got {shape}")
    if out.shape[1] != data.num_classes:
        raise ConfigError(f"the model outputs {out.shape[1]} classes but {data.name} has "
                          f"{data.num_classes}")  # fmt: skip


def build_env(cfg: Config, model: Any, data: Any) -> Any:
    """The pruning env of ``cfg.env`` on ``model`` (copied) and ``data``."""
    from prunegym.envs import make_pruning_env

    e = cfg.env
    return make_pruning_env(
        model, data, granularity=e.granularity, target=e.target, ratio=e.ratio,
        min_sparsity=e.min_sparsity, max_sparsity=e.max_sparsity, importance=e.importance,
        round_to=e.round_to, reward=e.reward, reward_weights=dict(e.reward_weights) or None,
        evaluator_options=dict(e.evaluator) or None, reconstruction=e.reconstruction,
        device=e.device, seed=cfg.seed, preset=e.preset,
    )  # fmt: skip


def make_configured_searcher(cfg: Config, env: Any) -> Any:
    """The searcher ``cfg.search`` names, with its options, on ``env`` (an RL searcher
    builds its agent now, so bad options fail here)."""
    from prunegym.agents import RLSearcher, make_searcher

    searcher = make_searcher(cfg.search.agent, env, seed=cfg.seed, **dict(cfg.search.options))
    if isinstance(searcher, RLSearcher):
        searcher.make(env)
    return searcher


def prepare_workload(cfg: Config) -> Workload:
    """Load or build the model and data, and check the whole setup before any training
    or evaluation: output classes, trace, budget, evaluator and searcher options."""
    check_config(cfg)
    if cfg.workload.checkpoint is not None:
        model, data = _load_checkpoint_workload(cfg)
        needs_training = False
    else:
        model, data = _untrained_workload(cfg)
        needs_training = True
    check_classes(model, data)
    env = build_env(cfg, model, data)
    try:
        make_configured_searcher(cfg, env)  # a throwaway: only its construction counts
    except BaseException:
        env.close()
        raise
    if needs_training:
        env.close()
        env = None
    return Workload(model, data, needs_training, env)


def train_dense(cfg: Config, workload: Workload, progress: bool = False) -> Any:
    """Train the workload's model as ``cfg.workload`` says; returns the env on it."""
    from prunegym.experiments.training import train

    w = cfg.workload
    if workload.needs_training:
        train(workload.model, workload.data, w.train_epochs, seed=w.train_seed,
              progress=progress)  # fmt: skip
        workload.model.eval()
        workload.needs_training = False
    if workload.env is None:
        workload.env = build_env(cfg, workload.model, workload.data)
    return workload.env


def build_workload(cfg: Config, progress: bool = False) -> tuple[Any, Any]:
    """The trained model (eval mode) and its data splits (trains when the config says)."""
    workload = prepare_workload(cfg)
    if workload.needs_training:
        train_dense(cfg, workload, progress=progress)
    if workload.env is not None:
        workload.env.close()
    return workload.model, workload.data
