"""The workload a config describes: the model, its data splits and the pruning env.

The model is a zoo name, ``tv:<name>`` or the user's own ``package.module:function``
(called with ``workload.model_kwargs``); the dataset a registered name or the user's own
``package.module:function`` (called with ``workload.dataset_options``). A config that
names a function is the user's own code intent: prunegym imports its module and calls
it, as ``python -c "from package.module import function"`` would (see
:mod:`~prunegym.experiments.user_code`). The weights come from ``workload.checkpoint``
(see :func:`load_trained`) or from training the model here.

:func:`prepare_workload` does everything that can fail cheaply first: it loads the
checkpoint (or builds the untrained model), checks the model's output against the data's
classes, traces the model and checks the budget by building the env, and checks the
searcher's options by building it. Only then may the caller train the dense model (hours
on a real dataset) with :func:`train_dense`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunegym.experiments.config import Config, ConfigError
from prunegym.experiments.user_code import check_trusted, is_import_path, load_function

RL_AGENTS = ("ddpg", "td3", "sac", "ppo")
#: The model keywords that come from the data unless ``workload.model_kwargs`` sets them.
SHAPE_KEYS = ("in_channels", "num_classes")


@dataclass
class Workload:
    """A model and its data; ``env`` is the pruning env when the model is final (it
    needs no training), else ``None``. ``spec`` holds the arguments of ``build_model``
    that rebuild the model; ``in_train_file`` says whether ``workload.checkpoint`` is a
    ``prunegym train`` file that rebuilds model and data on its own (else a run keeps
    its own copy of the dense model: see :func:`save_dense`)."""

    model: Any
    data: Any
    needs_training: bool
    env: Any = None
    spec: dict[str, Any] = field(default_factory=dict)
    in_train_file: bool = False


def check_config(cfg: Config) -> None:
    """Errors that need no model or data, found before anything is built or written."""
    from prunegym.agents import SEARCHERS

    if cfg.search.agent not in SEARCHERS:
        raise ConfigError(
            f"unknown agent {cfg.search.agent!r} (search.agent); known: {', '.join(SEARCHERS)}"
        )
    if cfg.search.episodes < 1:
        raise ConfigError(f"search.episodes must be >= 1, got {cfg.search.episodes}")
    if cfg.search.workloads:
        raise ConfigError(
            "search.workloads trains one agent on several workloads: only "
            "prunegym search runs it (then transfer the agent)"
        )
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


def _render(key: str, value: Any) -> str:
    import json
    import shlex

    return shlex.quote(f"{key}={value if isinstance(value, str) else json.dumps(value)}")


def train_command_for(cfg: Config) -> str:
    """The ``prunegym train`` command that makes the checkpoint ``cfg`` names."""
    w = cfg.workload
    path = Path(str(w.checkpoint))
    parts = ["prunegym train", f"--model {w.model or 'MODEL'}", f"--dataset {w.dataset}"]
    parts += [f"--model-kwarg {_render(k, v)}" for k, v in w.model_kwargs.items()]
    parts += [f"--dataset-option {_render(k, v)}" for k, v in w.dataset_options.items()]
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


# ----------------------------------------------------------------------------- building
def shape_arguments(
    name: str, in_channels: int, num_classes: int, model_kwargs: Mapping[str, Any]
) -> dict[str, int]:
    """The ``in_channels`` / ``num_classes`` that ``build_model(name, ...)`` gets from the data.

    Zoo and torchvision models take both; a ``package.module:function`` model gets only
    those its function takes (by name or ``**kwargs``), so ``def my_vgg(): ...`` works.
    A keyword that ``model_kwargs`` sets itself is not taken from the data.
    """
    given = dict(zip(SHAPE_KEYS, (in_channels, num_classes), strict=True))
    given = {k: v for k, v in given.items() if k not in model_kwargs}
    if not is_import_path(name):
        return given
    try:
        params = inspect.signature(load_function(name, "model")).parameters
    except (TypeError, ValueError):  # no signature to read: pass nothing it may not take
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return given
    return {k: v for k, v in given.items() if k in params}


def build_model_for(
    name: str, data: Any, model_kwargs: Mapping[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """Model ``name`` sized for ``data`` (random init) and its spec: the arguments of
    ``build_model`` that rebuild it, as :meth:`Checkpoint.model_spec` reads them back."""
    from prunegym.experiments.models import build_model

    kwargs = dict(model_kwargs or {})
    shape = shape_arguments(name, data.in_channels, data.num_classes, kwargs)
    shape.update({k: kwargs.pop(k) for k in SHAPE_KEYS if k in kwargs})  # set by the config
    model = build_model(name, **shape, **kwargs)
    spec: dict[str, Any] = {"name": name, "in_channels": shape.get("in_channels"),
                            "num_classes": shape.get("num_classes")}  # fmt: skip
    if kwargs:
        spec["kwargs"] = kwargs
    return model, spec


def builder_kwargs(spec: Mapping[str, Any]) -> dict[str, Any]:
    """All keywords of ``build_model`` in a spec (its ``kwargs`` spelled out): what a
    pruned model file records so that ``load_pruned`` rebuilds the dense architecture."""
    spec = dict(spec)
    kwargs = spec.pop("kwargs", None) or {}
    return {**kwargs, **spec}


def save_dense(path: Path, model: Any, spec: Mapping[str, Any], data: Any, **extra: Any) -> Path:
    """Save ``model`` as a prunegym checkpoint that rebuilds it (``spec``, with its model
    keywords) and its data splits (``data.describe()``); ``extra``: ``save_checkpoint``'s
    ``metrics`` / ``extra``."""
    from prunegym.experiments.checkpoint import save_checkpoint

    return save_checkpoint(
        path, model, model_name=spec["name"], in_channels=spec.get("in_channels"),
        num_classes=spec.get("num_classes"), model_kwargs=spec.get("kwargs"),
        dataset=data.describe(), **extra,
    )  # fmt: skip


def configured_data(cfg: Config) -> Any:
    """The data splits ``cfg.workload`` names (with its ``dataset_options``)."""
    from prunegym.experiments.data import build_data

    w = cfg.workload
    return build_data(w.dataset, w.reward_val_size, w.split_seed, w.data_dir,
                      **w.dataset_options)  # fmt: skip


def load_trained(cfg: Config) -> tuple[Any, Any, dict[str, Any], bool]:
    """The model in ``workload.checkpoint`` (eval mode), its data, its spec, and whether
    the file rebuilds both on its own (a ``prunegym train`` checkpoint).

    A ``prunegym train`` file rebuilds its model and its exact dataset split. A plain
    ``state_dict`` file or a training checkpoint (``state_dict`` / ``model_state_dict``
    key) gets ``workload.model`` (with ``model_kwargs``) and ``workload.dataset`` (with
    ``dataset_options``) built from the config; its weights must fit that model exactly.
    Every file is read with ``weights_only=True``; mistakes are one-line ConfigErrors.
    """
    from prunegym.experiments.checkpoint import Checkpoint, read_weights

    w = cfg.workload
    path = Path(str(w.checkpoint))
    if not path.is_file():
        raise ConfigError(
            f"checkpoint {w.checkpoint} (workload.checkpoint) does not exist; make it with: "
            f"{train_command_for(cfg)}"
        )
    try:
        weights = read_weights(path)
    except ValueError as exc:
        raise ConfigError(f"workload.checkpoint: {exc}") from None
    if weights.kind == "prunegym":
        ckpt = Checkpoint(weights.state_dict, dict(weights.metadata or {}), path)
        return (*_from_train_file(cfg, ckpt), True)
    return (*_from_weights(cfg, weights), False)


def _from_train_file(cfg: Config, ckpt: Any) -> tuple[Any, Any, dict[str, Any]]:
    from prunegym.experiments.data import build_data_like

    w = cfg.workload
    spec = ckpt.model_spec
    name = spec.get("name")
    if w.model is not None and name is not None and name != w.model:
        raise ConfigError(f"workload.model is {w.model!r} but {w.checkpoint} holds {name!r}")
    wanted = dict(w.model_kwargs)
    built = {**{k: spec.get(k) for k in SHAPE_KEYS if k in wanted}, **(spec.get("kwargs") or {})}
    if wanted and wanted != built:
        raise ConfigError(f"workload.model_kwargs are {wanted} but {w.checkpoint} was built "
                          f"with {built}")  # fmt: skip
    described = ckpt.metadata.get("dataset")
    if not described:
        raise ConfigError(f"{w.checkpoint} records no dataset; cannot rebuild its splits")
    # a checkpoint is data: code it names runs only when this config names it too
    check_trusted(dict(described).get("name"), (w.dataset,), str(w.checkpoint),
                  "workload.dataset")  # fmt: skip
    try:
        model = ckpt.build_model(trusted_code=(w.model,) if w.model else ())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return model.eval(), build_data_like(described, w.data_dir), spec


_WEIGHTS_KINDS = {"state_dict": "a plain state_dict", "training": "a training checkpoint"}


def _from_weights(cfg: Config, weights: Any) -> tuple[Any, Any, dict[str, Any]]:
    from prunegym.experiments.checkpoint import check_fits
    from prunegym.experiments.models import check_model_name

    w = cfg.workload
    if w.model is None:
        raise ConfigError(
            f"{weights.path} holds weights only ({_WEIGHTS_KINDS[weights.kind]}), no model: set "
            "workload.model to the model they belong to (a zoo name, tv:NAME or "
            "package.module:function)"
        )
    check_model_name(w.model)
    data = configured_data(cfg)
    model, spec = build_model_for(w.model, data, w.model_kwargs)
    source = f"workload.checkpoint {weights.path} does not fit workload.model {w.model}"
    try:
        check_fits(model, weights.state_dict, source)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    model.load_state_dict(weights.state_dict, strict=True)
    return model.eval(), data, spec


def _untrained_workload(cfg: Config) -> tuple[Any, Any, dict[str, Any]]:
    import torch

    from prunegym.experiments.models import check_model_name

    w = cfg.workload
    check_model_name(str(w.model))
    data = configured_data(cfg)
    torch.manual_seed(w.train_seed)
    model, spec = build_model_for(str(w.model), data, w.model_kwargs)
    return model, data, spec


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
        device=e.device, seed=cfg.seed,
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
    in_train_file = False
    if cfg.workload.checkpoint is not None:
        model, data, spec, in_train_file = load_trained(cfg)
        needs_training = False
    else:
        model, data, spec = _untrained_workload(cfg)
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
    return Workload(model, data, needs_training, env, spec, in_train_file)


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
