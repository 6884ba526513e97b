"""benchmarks/bench_schedule.py compares pruning in steps with pruning at once at equal
cost: the same evaluated candidates, warm-up share and fine-tuning epochs in all."""

from __future__ import annotations

from pathlib import Path

from bench_scripts import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def test_every_arm_costs_the_same_as_the_schedule():
    from prunegym.experiments.config import load_config

    bench = load_benchmark("bench_schedule")
    base = load_config(ROOT / "configs" / "schedule-resnet20-fmnist.yaml",
                       ["search.episodes=30", "search.options.warmup_episodes=10"])  # fmt: skip
    steps = len(base.run.schedule)
    arms = {arm: bench.arm_config(base, arm, seed=2, uniform_round_to=1) for arm in bench.ARMS}
    schedule, epochs = arms["schedule"]
    assert (schedule.run.schedule, schedule.seed, epochs) == (base.run.schedule, 2, 2 * steps)
    one_shot, one_shot_epochs = arms["one-shot"]
    assert one_shot.run.schedule is None and one_shot.env.ratio == base.run.schedule[-1]
    assert one_shot.search.episodes == steps * schedule.search.episodes == 90
    assert one_shot.search.options["warmup_episodes"] == 30 < one_shot.search.episodes
    assert one_shot_epochs == epochs
    for arm in ("one-shot-uniform", "schedule-uniform"):
        cfg, arm_epochs = arms[arm]
        assert (cfg.search.agent, cfg.search.episodes, cfg.env.round_to) == ("uniform", 1, 1)
        assert arm_epochs == epochs
    assert arms["schedule"][0].env.round_to == base.env.round_to  # only the control changes
