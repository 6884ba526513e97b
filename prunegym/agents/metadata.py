"""What a saved agent was trained on (``agent.json`` beside ``agent.zip``), and the checks
that decide whether it may act on another game.

An agent depends on what it observes and how its actions are read: the observation
feature list and :data:`~prunegym.envs.observation.FEATURE_VERSION`, the action mapping
and the granularity must be the target game's, or the agent is an
:class:`IncompatibleAgentError` (one line naming the mismatch, before anything is
evaluated). The budget, the reward, the sparsity bounds, ``round_to`` and the target
kind may differ: they are listed as differences.

Stable-Baselines3 agent zips are cloudpickle by SB3's design: loading one runs code
from the file. An agent file must come from a trusted source. The checks here read
only ``agent.json`` and the zip's list of entries before anything is unpickled.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm

from prunegym.agents.buffers import EpisodeCreditReplayBuffer
from prunegym.agents.callbacks import SearchCallback
from prunegym.agents.factory import ALGOS
from prunegym.agents.multimodel import MultiModelEnv
from prunegym.envs.contract import describe_game
from prunegym.utils.files import atomic_write_bytes, write_json

if TYPE_CHECKING:
    from prunegym.agents.results import SearchResult
    from prunegym.agents.searcher import Searcher

AGENT_FILE = "agent.zip"
METADATA_FILE = "agent.json"
GAME_FILE = "game.json"  # every run's game description (a profile's unit kinds)
FORMAT = 1
#: An agent acts on a game only when these equal the game's.
REQUIRED = ("feature_version", "observation_features", "action_mapping", "granularity")
#: These may differ; a difference is reported.
REPORTED = ("target_kind", "reward_name", "min_sparsity", "max_sparsity", "round_to")
_SB3_ENTRIES = ("data", "policy.pth")


class IncompatibleAgentError(ValueError):
    """An agent that cannot act on a game: not an agent file, or trained for another game."""


@dataclass(frozen=True)
class LoadedAgent:
    """An agent loaded onto a game, its metadata, and how the game differs from its own."""

    agent: BaseAlgorithm
    metadata: dict[str, Any]
    differences: list[str]
    path: Path


# ------------------------------------------------------------------------ writing
def game_descriptions(env: gym.Env) -> list[dict[str, Any]]:
    """Every game ``env`` plays: one, or each game of a :class:`MultiModelEnv`."""
    base = env.unwrapped
    if isinstance(base, MultiModelEnv):
        return [dict(d) for d in base.game_descriptions()]
    return [dict(describe_game(env))]


def _sources(descriptions: list[dict[str, Any]], source: Any) -> list[dict[str, Any]]:
    given = [] if source is None else [source] if isinstance(source, Mapping) else list(source)
    if len(given) not in (0, 1, len(descriptions)):
        raise ValueError(f"source: one mapping or one per game ({len(descriptions)}), "
                         f"got {len(given)}")  # fmt: skip
    out = []
    for i, d in enumerate(descriptions):
        extra = dict(given[i if len(given) > 1 else 0]) if given else {}
        out.append({**extra, "n_units": len(d["unit_kinds"]), "target_ratio": d["target_ratio"],
                    "unit_kinds": list(d["unit_kinds"])})  # fmt: skip
    return out


def agent_metadata(agent: BaseAlgorithm, env: gym.Env, source: Any = None) -> dict[str, Any]:
    """``agent.json`` for ``agent`` trained on ``env``; ``source`` (a mapping, or one per
    game) says what the caller knows of the source, e.g. ``{"model": ..., "dataset": ...}``."""
    from prunegym import __version__

    algo = next((name for name, cls in ALGOS.items() if type(agent) is cls), None)
    if algo is None:
        raise ValueError(f"{type(agent).__name__} is not one of prunegym's agents "
                         f"({', '.join(ALGOS)})")  # fmt: skip
    games = game_descriptions(env)
    first = games[0]
    buffer = getattr(agent, "replay_buffer", None)
    baseline = buffer.baseline if isinstance(buffer, EpisodeCreditReplayBuffer) else None
    return {
        "format": FORMAT,
        "algo": algo,
        **{key: first[key] for key in (*REQUIRED, *REPORTED)},
        "target_ratios": [d["target_ratio"] for d in games],
        "reward_baseline": None if baseline is None else float(baseline),
        "timesteps": int(agent.num_timesteps),
        "sources": _sources(games, source),
        "prunegym_version": __version__,
    }


def _agent_and_env(searcher_or_agent: Any, env: gym.Env | None) -> tuple[BaseAlgorithm, gym.Env]:
    agent = getattr(searcher_or_agent, "agent", searcher_or_agent)
    if not isinstance(agent, BaseAlgorithm):
        raise ValueError(f"no agent to save in {type(searcher_or_agent).__name__}")
    env = env if env is not None else getattr(searcher_or_agent, "env", None)
    if env is None:
        vec = agent.get_env()
        if vec is None:
            raise ValueError("saving an agent's metadata needs the env it was trained on")
        env = next(iter(getattr(vec, "envs", [])), None)  # a DummyVecEnv's env
    if env is None:
        raise ValueError("saving an agent's metadata needs the env it was trained on")
    return agent, env


def save_agent(
    searcher_or_agent: Any,
    path: str | os.PathLike[str],
    env: gym.Env | None = None,
    source: Any = None,
) -> Path:
    """Write the agent (of an RL searcher, or an SB3 agent) to ``path`` (``agent.zip``)
    and its metadata beside it (``agent.json``), both atomically; returns the zip's path.

    ``env`` defaults to the searcher's (or the agent's) env; ``source`` is recorded as
    the source model(s) and dataset (see :func:`agent_metadata`).
    """
    agent, env = _agent_and_env(searcher_or_agent, env)
    meta = agent_metadata(agent, env, source)
    path = Path(path)
    buf = io.BytesIO()
    agent.save(buf)
    atomic_write_bytes(path, lambda fh: fh.write(buf.getvalue()))
    write_json(metadata_path(path), meta)
    return path


def metadata_path(agent_path: str | os.PathLike[str]) -> Path:
    """``agent.json`` beside ``agent.zip``."""
    return Path(agent_path).with_suffix(".json")


class RunMetadataCallback(SearchCallback):
    """Writes ``game.json`` (the game(s) searched, and ``source``) when a search starts and,
    for an RL searcher, ``agent.json`` when it ends (``agent.zip`` is written beside it)."""

    def __init__(self, run_dir: str | os.PathLike[str], source: Any = None) -> None:
        self.run_dir = Path(run_dir)
        self.source = source

    def on_search_start(self, searcher: Searcher) -> None:
        if searcher.env is not None:
            games = game_descriptions(searcher.env)
            write_json(self.run_dir / GAME_FILE,
                       {"games": games, "sources": _sources(games, self.source)})  # fmt: skip

    def on_search_end(self, searcher: Searcher, result: SearchResult) -> None:
        agent = getattr(searcher, "agent", None)
        if isinstance(agent, BaseAlgorithm) and searcher.env is not None:
            meta = agent_metadata(agent, searcher.env, self.source)
            write_json(self.run_dir / METADATA_FILE, meta)


# ------------------------------------------------------------------------ reading
def agent_path(source: str | os.PathLike[str]) -> Path:
    """The agent zip of ``source``: a run directory (its ``agent.zip``) or the zip itself."""
    path = Path(source)
    if path.is_dir():
        if not (path / AGENT_FILE).is_file():
            raise IncompatibleAgentError(f"{path} holds no agent ({AGENT_FILE}): only RL "
                                         "searches save one (a profile needs none)")  # fmt: skip
        return path / AGENT_FILE
    if not path.is_file():
        raise IncompatibleAgentError(f"agent {path} does not exist")
    return path


def read_metadata(source: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """``(agent zip, metadata)`` of ``source``, checked without unpickling anything."""
    path = agent_path(source)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError):
        raise IncompatibleAgentError(f"{path} is not an agent (not a zip file)") from None
    if not all(entry in names for entry in _SB3_ENTRIES):
        raise IncompatibleAgentError(f"{path} is not a Stable-Baselines3 agent zip "
                                     f"(no {' or '.join(_SB3_ENTRIES)})")  # fmt: skip
    meta_file = metadata_path(path)
    if not meta_file.is_file():
        raise IncompatibleAgentError(f"{path} has no {meta_file.name} beside it: what it was "
                                     "trained on is unknown, it cannot be checked")  # fmt: skip
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IncompatibleAgentError(f"{meta_file} is not valid JSON ({exc})") from None
    return path, _checked(meta, meta_file)


def _checked(meta: Any, where: Path) -> dict[str, Any]:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise IncompatibleAgentError(f"{where} has format {found!r}; expected {FORMAT}")
    missing = [k for k in ("algo", *REQUIRED, *REPORTED, "target_ratios", "sources")
               if k not in meta]  # fmt: skip
    if missing:
        raise IncompatibleAgentError(f"{where} records no {missing[0]!r}")
    if meta["algo"] not in ALGOS:
        raise IncompatibleAgentError(f"{where}: unknown agent {meta['algo']!r}; known: "
                                     f"{', '.join(ALGOS)}")  # fmt: skip
    return meta


def check_agent(meta: Mapping[str, Any], env: gym.Env, where: str = "the agent") -> list[str]:
    """The differences between the game ``meta`` was trained on and ``env``'s; an
    :class:`IncompatibleAgentError` names the first :data:`REQUIRED` field that differs."""
    game = describe_game(env)
    target: dict[str, Any] = dict(game)
    for key in REQUIRED:
        if meta[key] != target[key]:
            if key == "observation_features":
                extra = sorted(set(meta[key]) ^ set(target[key]))
                detail = f"{', '.join(extra) or 'their order'} differ"
            else:
                detail = f"trained with {meta[key]!r}, the target has {target[key]!r}"
            raise IncompatibleAgentError(f"{where} cannot act on this game: {key} {detail}")
    differences = [f"{key}: {meta[key]!r} (agent) -> {target[key]!r} (target)"
                   for key in REPORTED if meta[key] != target[key]]  # fmt: skip
    ratios = [float(r) for r in meta["target_ratios"]]
    if ratios != [game["target_ratio"]]:
        shown = ratios[0] if len(ratios) == 1 else ratios
        differences.append(f"target_ratio: {shown!r} (agent) -> {game['target_ratio']!r} (target)")
    return differences


def load_agent(source: str | os.PathLike[str], env: gym.Env, **overrides: Any) -> LoadedAgent:
    """Load the agent of ``source`` (a run directory or an agent zip) onto ``env``.

    Its metadata is checked first (:func:`check_agent`); ``overrides`` replace saved
    settings of the agent (SB3's ``load(**kwargs)``), e.g. ``learning_starts``.
    """
    path, meta = read_metadata(source)
    differences = check_agent(meta, env, where=f"agent {path}")
    agent = ALGOS[meta["algo"]].load(path, env=env, device="cpu", **overrides)
    return LoadedAgent(agent, meta, differences, path)


def describe_sources(meta: Mapping[str, Any]) -> str:
    """A short text of what an agent was trained on, e.g. ``resnet20 on digits (12 units)``."""
    parts = []
    for s in meta.get("sources", []):
        model = s.get("model") or s.get("checkpoint") or "a model"
        dataset = f" on {s['dataset']}" if s.get("dataset") else ""
        parts.append(f"{model}{dataset} ({s.get('n_units', '?')} units, "
                     f"ratio {s.get('target_ratio', '?')})")  # fmt: skip
    return "; ".join(parts) or "unknown sources"
