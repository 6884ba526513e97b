"""Experiment configs: one YAML file -> frozen dataclasses.

Unknown keys and values of the wrong type are errors (:class:`ConfigError`, a
``ValueError``: one line and exit status 2 on the command line). ``--set a.b=c``
overrides any key; the value is parsed as YAML (``--set search.episodes=50``,
``--set env.evaluator={batch_size: 256}``). The mappings ``search.options``,
``env.reward_weights`` and ``env.evaluator`` are passed through to the searcher / env,
which check them. ``search.options`` belong to the agent the same file names: an
override that switches ``search.agent`` drops them (with a note), so
``--set search.agent=random`` works on a config written for DDPG.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """YAML 1.1 without its surprise: ``1e-4`` (no dot) is a float, not a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


class ConfigError(ValueError):
    """A config that cannot be used (unknown key, wrong type, bad override, bad YAML)."""


@dataclass(frozen=True)
class WorkloadConfig:
    """The trained model and its data.

    ``model``: a zoo name, ``tv:<name>`` or ``package.module:function``; ``dataset``: a
    registered name or ``package.module:function``. A config that names a function is
    the user's own code intent: prunegym imports its module and calls it (with
    ``model_kwargs`` / ``dataset_options``), so use only configs you would run yourself.

    ``checkpoint``: a ``model.pt`` written by ``prunegym train`` (its dataset split is
    rebuilt exactly, so ``reward_val`` stays held out), a plain ``state_dict`` file or a
    training checkpoint with a ``state_dict`` / ``model_state_dict`` key (``model`` and
    ``dataset`` are built from this config and the weights must fit exactly); all are
    read with ``weights_only=True``. Without it, ``model`` is built and trained for
    ``train_epochs`` on ``dataset`` first (the zero-setup digits demo).
    """

    checkpoint: str | None = None
    model: str | None = None
    dataset: str = "digits"
    data_dir: str | None = None
    reward_val_size: int | None = None
    split_seed: int = 0
    train_epochs: int = 0
    train_seed: int = 0
    #: Keywords of ``build_model`` (for a ``package.module:function`` model: all it gets).
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    #: Options of ``build_data``: image options (``image_size``, ``channels`` ...), the
    #: dataset's own, or the keywords of a ``package.module:function`` dataset.
    dataset_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EnvConfig:
    """Keyword arguments of :class:`prunegym.envs.PruningEnv` (``evaluator`` is its
    ``evaluator_options``). ``null`` (the default of most keys) lets the env decide: its
    own default, or the ``preset``'s value (``preset: amc`` reproduces the AMC reference's
    choices); the resolved values are in the env's ``settings``. ``reconstruction: null``
    means least-squares reconstruction wherever the data has a train split; ``reward:
    null`` means ``retention`` (accuracy / dense accuracy, the same scale on every model).
    """

    granularity: str = "channel"
    target: str = "macs"
    ratio: float = 0.5
    preset: str | None = None
    min_sparsity: float | None = None
    max_sparsity: float | None = None
    importance: str | None = None
    round_to: int | None = None
    reward: str | None = None
    reward_weights: dict[str, float] = field(default_factory=dict)
    evaluator: dict[str, Any] = field(default_factory=dict)
    reconstruction: bool | None = None
    device: str = "cpu"


@dataclass(frozen=True)
class SearchConfig:
    """Who searches and for how long: ``agent`` is a searcher name (``ddpg``, ``td3``,
    ``sac``, ``ppo``, ``uniform``, ``random`` (fills the budget), ``random-raw``,
    ``evolution``, ``cmaes``, ``profile`` / ``transfer`` (option ``source``)); ``options``
    go to it (e.g. ``warmup_episodes``, ``noise``, ``population``, ``select_top``).

    ``workers`` > 1 evaluates candidates on that many Ray workers (``distributed``; 1:
    serial, Ray is not imported); the black-box searchers propose ``batch_size``
    candidates at a time (the same ``batch_size`` gives the same search with any number
    of workers; set it to at least ``workers`` to keep them all busy); an off-policy
    agent (ddpg, td3, sac) plays rounds of one episode per worker (what that changes:
    ``docs/rewards-and-searchers.md``, parallel workers).

    ``workloads``: train one off-policy agent on several workloads in turn (a generalist
    to transfer); each entry holds ``workload`` / ``env`` sections merged over this
    config's and an optional ``name`` (:mod:`prunegym.experiments.generalist`)."""

    agent: str = "ddpg"
    episodes: int = 100
    options: dict[str, Any] = field(default_factory=dict)
    workers: int = 1
    batch_size: int = 1
    workloads: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RunConfig:
    """Where and how the run is written.

    ``schedule`` makes ``prunegym run`` prune iteratively: one search, apply and
    fine-tune per budget, each a ratio of the ORIGINAL dense cost, strictly decreasing
    (``[0.7, 0.5, 0.3]``; see :mod:`prunegym.experiments.schedule`). ``epochs_per_step``:
    fine-tuning epochs after each step (``None``: the export's ``--epochs``).
    ``restart_agent``: each step starts a fresh RL agent, with the config's full warm-up,
    instead of carrying the previous step's agent over. ``step_warmup_episodes``: the
    short warm-up of a carried-over agent (off-policy agents): the episodes of uniform
    random actions, without an update, that fill its fresh replay buffer on the new
    network before it learns again.
    """

    out: str | None = None
    checkpoint_every: int = 10
    tensorboard: bool = True
    progress: bool = True
    threads: int | None = None
    schedule: list[float] | None = None
    epochs_per_step: int | None = None
    restart_agent: bool = False
    step_warmup_episodes: int = 5


@dataclass(frozen=True)
class DistributedConfig:
    """Where the workers of ``search.workers > 1`` run (Ray).

    ``address``: null starts a local Ray instance sized to the workers; ``auto`` joins
    the cluster this machine belongs to; ``host:port`` or ``ray://host:port`` an existing
    cluster (unreachable: one line, exit 2, before anything is built).
    ``resources_per_worker``: Ray resources of each worker (``num_cpus``, ``num_gpus``,
    ``memory``, custom names); ``threads_per_worker``: torch threads in each (null:
    ``num_cpus``, else this machine's cores / workers). A worker whose process dies is
    restarted up to ``max_restarts`` times and its episode retried up to
    ``max_task_retries`` times.
    """

    address: str | None = None
    resources_per_worker: dict[str, float] = field(default_factory=dict)
    threads_per_worker: int | None = None
    max_restarts: int = 3
    max_task_retries: int = 3


@dataclass(frozen=True)
class Config:
    seed: int = 0
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    run: RunConfig = field(default_factory=RunConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)

    def replace(self, **changes: Any) -> Config:
        """A copy with dotted-key changes: ``cfg.replace(**{"search.episodes": 5})``."""
        return from_dict(apply_overrides(self.to_dict(), changes))


def from_dict(data: Mapping[str, Any] | None, cls: type = Config, where: str = "") -> Any:
    """Build ``cls`` from a mapping, checking keys and types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {_type(data)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]}; known keys"
            f"{' of ' + where if where else ''}: {', '.join(sorted(known))}"
        )
    values = {}
    for name in known:
        if name not in data:
            continue
        key = f"{where}.{name}" if where else name
        values[name] = _check(data[name], hints[name], key)
    return cls(**values)


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check(value: Any, hint: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(value, typing.cast(type, hint), key)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check(value, inner, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_check(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {_type(value)}")
        return {str(k): v for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=c"`` -> ``("a.b", yaml value of c)``."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set expects key=value with a dotted key, got {text!r}")
    try:
        value = parse_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"--set {key}: the value is not valid YAML ({_first_line(exc)})"
        ) from None
    return key, value


def _override_items(overrides: Mapping[str, Any] | Sequence[str]) -> list[tuple[str, Any]]:
    if isinstance(overrides, Mapping):
        return list(overrides.items())
    return [parse_override(o) for o in overrides]


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any] | Sequence[str]) -> dict:
    """Set dotted keys in a (deep-copied) config mapping."""
    import copy

    out = copy.deepcopy(dict(data))
    for key, value in _override_items(overrides):
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a mapping")
            node = child
        node[parts[-1]] = value
    return out


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _drop_options_of_a_switched_agent(
    data: Mapping[str, Any], items: list[tuple[str, Any]], notes: list[str] | None
) -> Mapping[str, Any]:
    """``data`` without ``search.options`` when an override switches ``search.agent``."""
    search = data.get("search")
    agents = [value for key, value in items if key == "search.agent"]
    if not agents or not isinstance(search, Mapping) or "options" not in search:
        return data
    old, new = search.get("agent", SearchConfig.agent), agents[-1]
    if new == old:
        return data
    dropped = search["options"]
    if dropped and notes is not None:
        keys = ", ".join(map(str, dropped)) if isinstance(dropped, Mapping) else repr(dropped)
        notes.append(
            f"search.options ({keys}) belong to agent {old!r} and are dropped for {new!r}; "
            f"give {new!r} options with --set search.options.KEY=VALUE"
        )
    return {**data, "search": {k: v for k, v in search.items() if k != "options"}}


def load_config(
    path: str | os.PathLike | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    notes: list[str] | None = None,
) -> Config:
    """Read a YAML config (or start from the defaults), apply ``--set`` overrides, check.

    An override that switches ``search.agent`` drops the file's ``search.options`` (they
    belong to the agent the file names); a line saying so is appended to ``notes``.
    """
    data: Any = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = parse_yaml(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p} is not valid YAML: {_first_line(exc)}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p} is not a text file") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{p} must hold a mapping of config keys, got {_type(data)}")
    items = _override_items(overrides)
    data = _drop_options_of_a_switched_agent(data, items, notes)
    return from_dict(apply_overrides(data, overrides))


def flat_dict(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"a.b.c": value}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flat_dict(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(a: Config, b: Config, ignore: Sequence[str] = ()) -> list[str]:
    """The dotted keys whose values differ between ``a`` and ``b`` (sorted), except those
    under a key of ``ignore``."""
    fa, fb = flat_dict(a.to_dict()), flat_dict(b.to_dict())
    return [k for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k) and not any(
        k == i or k.startswith(i + ".") for i in ignore)]  # fmt: skip
