"""The game contract: what a searcher may use of a pruning environment.

Both sides import this module and nothing else of each other: the environments of
:mod:`prunegym.envs` implement :class:`PruningGame` and fill the infos below; the
searchers of :mod:`prunegym.agents` rely on nothing more. A game is a Gymnasium env
with ``Box(-1, 1, (1,))`` actions and at most one step per prunable unit (a unit the
budget leaves a single choice is applied without a step); each action picks one of the
rounded levels the budget allows the unit, so no action is ever clipped. The episode's
score is the last step's reward. :func:`game_of` reads the game through Gymnasium
wrappers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable

import gymnasium as gym

if TYPE_CHECKING:
    from prunegym.pruners import PruningPolicy


class ResetInfo(TypedDict):
    """``info`` of ``reset``: the first unit to decide."""

    unit: str
    index: int
    n_units: int
    levels: int  # the rounded levels the budget allows that unit
    skipped: list[int]  # units before it applied without a step (a single level each)


class StepInfo(TypedDict):
    """``info`` of every step: what was asked for unit ``index`` and what it got."""

    unit: str
    index: int
    requested_sparsity: float  # where the action points in [min_allowed, max_sparsity]
    sparsity: float  # the sparsity applied: the level the action picked
    kept: int  # channels (or weights) the unit keeps, after rounding
    levels: int  # how many rounded levels the budget allowed the unit
    skipped: list[int]  # the units after it applied without a step (a single level each)
    next_index: int  # the unit the next step decides (n_units when the episode is over)


class TargetInfo(TypedDict):
    """The budget of the episode and what the policy achieved, in the target's unit."""

    kind: str  # macs, params or latency
    ratio: float
    budget: float
    achieved: float


class EvaluationInfo(TypedDict):
    """How the terminal policy was scored."""

    mode: str  # masked, physical (or the name of a stand-in scorer)
    cached: bool  # True when the score came from the evaluator's cache


class _Metrics(TypedDict):
    accuracy: float
    macs_ratio: float
    params_ratio: float


class Metrics(_Metrics, total=False):
    """``info["metrics"]``: accuracy and ratios always; the rest when the env measures them."""

    loss: float
    dense_accuracy: float
    macs: float
    params: float
    achieved_ratio: float
    eval_samples: float
    latency_estimate_ms: float
    latency_ms: float
    dense_latency_ms: float
    latency_ratio: float


class _TerminalInfo(StepInfo):
    accuracy: float
    macs_ratio: float
    params_ratio: float
    policy: PruningPolicy  # the walled sparsities, unit names in execution order
    requested_sparsities: list[float]
    sparsities: list[float]
    kept_counts: list[int]
    metrics: Metrics
    reward: float
    reward_name: str
    reward_terms: dict[str, float]
    target: TargetInfo
    evaluation: EvaluationInfo
    seconds: dict[str, float]
    skipped_units: list[int]  # every unit applied without a step in this episode


class TerminalInfo(_TerminalInfo, total=False):
    """``info`` of the last step: the step's keys plus the episode's outcome."""

    latency_ratio: float  # when the real latency is measured


class HeldoutScore(TypedDict):
    """A policy scored on the held-out slice of the reward split (never the test split,
    never the slice the search is scored on)."""

    accuracy: float
    reward: float  # the env's reward with the held-out accuracies
    samples: int


#: Names of :class:`PruningGame`, the only attributes a searcher reads.
GAME_ATTRIBUTES = (
    "action_mapping",
    "n_units",
    "unit_names",
    "target_ratio",
    "min_sparsity",
    "max_sparsity",
    "sparsity_for_action",
    "action_for_sparsity",
    "cost_ratio",
    "within_budget",
    "score_heldout",
)


@runtime_checkable
class PruningGame(Protocol):
    """Everything besides ``reset``/``step`` a searcher may call on a pruning env."""

    @property
    def action_mapping(self) -> str:
        """Name and version of the action -> sparsity rule (an agent relies on it)."""
        ...

    @property
    def n_units(self) -> int:
        """Steps per episode: one per prunable unit."""
        ...

    @property
    def unit_names(self) -> list[str]:
        """The units in execution order (the order of the steps)."""
        ...

    @property
    def target_ratio(self) -> float:
        """The budget: the fraction of the dense target metric the result may keep."""
        ...

    @property
    def min_sparsity(self) -> float: ...

    @property
    def max_sparsity(self) -> float: ...

    def sparsity_for_action(self, action: Any) -> float:
        """Where ``action`` in [-1, 1] points for the unit being decided, in the interval
        the budget allows it (before it is mapped to one of the unit's levels)."""
        ...

    def action_for_sparsity(self, sparsity: float) -> float:
        """The action giving the unit being decided the rounded count of ``sparsity`` (or
        the most the budget allows, when that is fewer); valid during an episode."""
        ...

    def cost_ratio(self, sparsities: Any) -> float:
        """Target metric of per-unit ``sparsities`` (after rounding) over the dense one."""
        ...

    def within_budget(self, sparsities: Any) -> bool:
        """Whether per-unit ``sparsities`` meet the budget exactly (no evaluation)."""
        ...

    def score_heldout(self, policy: PruningPolicy) -> HeldoutScore | None:
        """``policy`` (a finished episode's) scored on the held-out slice; None when the
        env has none (then candidates can only be compared by their search reward)."""
        ...


class _WrappedGame:
    """A :class:`PruningGame` read through Gymnasium wrappers with ``get_wrapper_attr``."""

    def __init__(self, env: gym.Env) -> None:
        self._env = env

    def _get(self, name: str) -> Any:
        return self._env.get_wrapper_attr(name)

    @property
    def action_mapping(self) -> str:
        return str(self._get("action_mapping"))

    @property
    def n_units(self) -> int:
        return int(self._get("n_units"))

    @property
    def unit_names(self) -> list[str]:
        return list(self._get("unit_names"))

    @property
    def target_ratio(self) -> float:
        return float(self._get("target_ratio"))

    @property
    def min_sparsity(self) -> float:
        return float(self._get("min_sparsity"))

    @property
    def max_sparsity(self) -> float:
        return float(self._get("max_sparsity"))

    def sparsity_for_action(self, action: Any) -> float:
        return float(self._get("sparsity_for_action")(action))

    def action_for_sparsity(self, sparsity: float) -> float:
        return float(self._get("action_for_sparsity")(sparsity))

    def cost_ratio(self, sparsities: Any) -> float:
        return float(self._get("cost_ratio")(sparsities))

    def within_budget(self, sparsities: Any) -> bool:
        return bool(self._get("within_budget")(sparsities))

    def score_heldout(self, policy: PruningPolicy) -> HeldoutScore | None:
        score: HeldoutScore | None = self._get("score_heldout")(policy)
        return score


def game_of(env: gym.Env) -> PruningGame:
    """The :class:`PruningGame` that ``env`` (wrapped or not) plays.

    A ``TypeError`` names the first missing attribute when ``env`` plays another game.
    """
    if not isinstance(env, gym.Wrapper) and isinstance(env, PruningGame):
        return env
    for name in GAME_ATTRIBUTES:
        try:
            env.get_wrapper_attr(name)
        except AttributeError:
            raise TypeError(
                f"{type(env).__name__} does not play the pruning game: it has no {name!r} "
                "(see prunegym.envs.contract.PruningGame)"
            ) from None
    return _WrappedGame(env)


# transfer: what an agent trained on a game depends on ---------------------------------
class GameDescription(TypedDict):
    """What an agent trained on a game depends on, and what the game's units are.

    Recorded beside a saved agent and checked against the game it is transferred to
    (``prunegym.agents.metadata``). ``unit_kinds`` (conv, depthwise, linear) and
    ``unit_channels`` (prunable elements) are per unit, in execution order.
    """

    action_mapping: str
    feature_version: int
    observation_features: list[str]
    granularity: str
    round_to: int
    target_kind: str
    target_ratio: float
    reward_name: str
    min_sparsity: float
    max_sparsity: float
    unit_kinds: list[str]
    unit_channels: list[int]


def describe_game(env: gym.Env) -> GameDescription:
    """The :class:`GameDescription` of ``env`` (wrapped or not): its ``game_description()``.

    A ``TypeError`` when the env does not describe its game (then no agent can be
    checked against it).
    """
    try:
        describe = env.get_wrapper_attr("game_description")
    except AttributeError:
        raise TypeError(
            f"{type(env).__name__} does not describe its game (no game_description()); "
            "transferring an agent or a profile needs it"
        ) from None
    return describe()  # type: ignore[no-any-return]
