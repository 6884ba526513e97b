"""``prunegym bench``: compare searchers (and importance criteria) on equal terms.

A bench is a matrix of cells, workloads x targets x ratios x importances x searchers x
seeds. Every cell is an ordinary search run directory; its selected policy is then
applied for real, fine-tuned with the workload's recipe and tested on the test split.
The bench directory::

    bench.yaml      the resolved bench config (rerun: prunegym bench --config it)
    dense/          dense models the bench trained (one per training workload)
    cells/<workload>/<target><ratio>-<importance>/<searcher>-s<seed>/
                    the cell's search run directory (and its export/)
    results.jsonl   one line per finished cell
    summary.md      mean +- std over seeds, paired differences with bootstrap intervals
    pareto.png      test top-1 after fine-tuning vs achieved ratio
    curves.png      best-so-far reward per episode

Rerunning the same command skips finished cells and continues cut ones. With
``bench.workers`` > 1 the cells run as Ray tasks (:mod:`.parallel`); with 1, one after
the other in this process, and Ray is never imported.
"""

from prunegym.experiments.bench.config import BenchConfig, load_bench_config
from prunegym.experiments.bench.runner import run_bench

__all__ = ["BenchConfig", "load_bench_config", "run_bench"]
