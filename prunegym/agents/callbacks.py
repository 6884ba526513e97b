"""Search callbacks: best policy so far, TensorBoard, periodic checkpoints, progress.

A :class:`SearchCallback` sees every finished episode (``on_episode``) and every *safe
point*, a moment where the searcher's whole state is consistent and can be saved
(between episodes for the baselines, between an RL agent's update and its next
episode). The RL searcher bridges SB3's own callback hooks to these. ``close`` runs
at the very end, also when the search failed.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prunegym.agents.results import EpisodeRecord, SearchResult
from prunegym.utils.files import write_json

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from prunegym.agents.searcher import Searcher


class SearchCallback:
    """Hooks called by :meth:`Searcher.search`; every method is optional (an object
    with only some of them is a callback too)."""

    def on_search_start(self, searcher: Searcher) -> None:
        pass

    def on_episode(self, searcher: Searcher, record: EpisodeRecord) -> None:
        pass

    def on_safe_point(self, searcher: Searcher) -> None:
        pass

    def on_search_end(self, searcher: Searcher, result: SearchResult) -> None:
        pass

    def close(self) -> None:
        """Release what the callback holds (files, bars); runs after a failure too."""


class BestPolicyCallback(SearchCallback):
    """Follows the searcher's best episode and, with ``path``, writes its policy as JSON
    (atomically, units in execution order) whenever it changes. Its ``meta`` holds the
    episode, the search ``reward`` and metrics and, once the answer is picked on the
    held-out slice, ``heldout_accuracy`` and ``heldout_reward``."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.best: EpisodeRecord | None = None

    def on_search_start(self, searcher: Searcher) -> None:
        self.best = searcher.best

    def on_episode(self, searcher: Searcher, record: EpisodeRecord) -> None:
        self._follow(searcher.best)

    def on_search_end(self, searcher: Searcher, result: SearchResult) -> None:
        self._follow(result.best)

    def _follow(self, best: EpisodeRecord | None) -> None:
        if best is None or best is self.best:
            return
        self.best = best
        if self.path is not None and best.policy is not None:
            meta = {"episode": best.episode, "reward": best.reward, **best.metrics}
            meta.update({f"heldout_{k}": v for k, v in best.heldout.items()})
            write_json(self.path, {**best.policy.to_dict(), "meta": meta})


class TensorBoardCallback(SearchCallback):
    """Per-episode scalars (reward, its terms, metrics, seconds, best so far), per-unit
    sparsity histograms and, at the end, the hyper-parameters with the best reward."""

    def __init__(
        self, log_dir: str | os.PathLike, hparams: dict[str, Any] | None = None,
        histogram_every: int = 1,
    ) -> None:  # fmt: skip
        self.log_dir = Path(log_dir)
        self.hparams = dict(hparams or {})
        self.histogram_every = max(1, int(histogram_every))
        self.writer: SummaryWriter | None = None

    def on_search_start(self, searcher: Searcher) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a resumed run is about to write again
        self.writer = SummaryWriter(str(self.log_dir), purge_step=len(searcher.history) or None)

    def on_episode(self, searcher: Searcher, record: EpisodeRecord) -> None:
        if self.writer is None:
            return
        w, step = self.writer, record.episode
        w.add_scalar("episode/reward", record.reward, step)
        best = searcher.best
        w.add_scalar("episode/best_reward", record.reward if best is None else best.reward, step)
        w.add_scalar("episode/seconds", record.seconds, step)
        for k, v in record.metrics.items():
            w.add_scalar(f"episode/{k}", v, step)
        for k, v in record.terms.items():
            w.add_scalar(f"reward_terms/{k}", v, step)
        sigma = searcher.exploration_sigma()
        if not math.isnan(sigma):
            w.add_scalar("episode/noise_sigma", sigma, step)
        if step % self.histogram_every == 0 and record.sparsities:
            w.add_histogram("sparsity/units", np.asarray(record.sparsities), step)
            for name, s in zip(searcher.unit_names, record.sparsities, strict=True):
                w.add_scalar(f"sparsity/{name}", s, step)

    def on_search_end(self, searcher: Searcher, result: SearchResult) -> None:
        if self.writer is None:
            return
        best = result.best
        if best is not None and self.hparams:
            hp = {k: v if isinstance(v, int | float | str | bool) else str(v)
                  for k, v in self.hparams.items()}  # fmt: skip
            metrics = {"hparam/best_reward": best.reward}
            metrics.update({f"hparam/best_{k}": v for k, v in best.metrics.items()})
            self.writer.add_hparams(hp, metrics, run_name=".")
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class CheckpointCallback(SearchCallback):
    """Saves the searcher's full state every ``every`` episodes (and when a stop was
    requested, e.g. by Ctrl-C), atomically, at the next safe point."""

    def __init__(self, path: str | os.PathLike, every: int = 10) -> None:
        self.path = Path(path)
        self.every = max(1, int(every))
        self.saved_at = -1

    def on_search_start(self, searcher: Searcher) -> None:
        self.saved_at = len(searcher.history)

    def on_safe_point(self, searcher: Searcher) -> None:
        done = len(searcher.history)
        due = done - self.saved_at >= self.every or searcher.stop_requested
        if due and done != self.saved_at:
            searcher.save_checkpoint(self.path)
            self.saved_at = done

    def on_search_end(self, searcher: Searcher, result: SearchResult) -> None:
        if len(searcher.history) != self.saved_at:
            searcher.save_checkpoint(self.path)
            self.saved_at = len(searcher.history)


class ProgressBarCallback(SearchCallback):
    """A tqdm bar: episodes done, best reward and best accuracy so far."""

    def __init__(self, total: int, disable: bool | None = None) -> None:
        self.total = int(total)
        self.disable = disable
        self.bar: tqdm | None = None

    def on_search_start(self, searcher: Searcher) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, initial=len(searcher.history), unit="ep",
                        desc=f"search {searcher.name}", disable=self.disable)  # fmt: skip
        self._postfix(searcher)

    def _postfix(self, searcher: Searcher) -> None:
        best = searcher.best
        if self.bar is not None and best is not None:
            acc = max((r.accuracy for r in searcher.history if not math.isnan(r.accuracy)),
                      default=math.nan)  # fmt: skip
            self.bar.set_postfix(best_reward=f"{best.reward:.4g}", best_acc=f"{acc:.4g}")

    def on_episode(self, searcher: Searcher, record: EpisodeRecord) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self._postfix(searcher)

    def on_search_end(self, searcher: Searcher, result: SearchResult) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
