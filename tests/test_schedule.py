"""Iterative pruning schedules: budget semantics, the path of run directories, the agent
carried over (or restarted), kill -9 + resume, bad schedules refused before training."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_model

from prunegym import load_pruned
from prunegym.agents.sb3_internals import finished_episodes
from prunegym.experiments.checkpoint import load_checkpoint, save_checkpoint
from prunegym.experiments.cli import main
from prunegym.experiments.config import ConfigError, load_config
from prunegym.experiments.export import ExportOptions, export_run
from prunegym.experiments.schedule import run_schedule
from prunegym.experiments.schedule_plan import (
    STEP_MODEL_FILE,
    check_schedule,
    step_config,
    step_ratio,
)
from prunegym.pruners import LayerTable, PruningPolicy, count_cost
from prunegym.pruners.channel import ChannelPruner

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "configs" / "digits.yaml"
TINY = [
    "workload.train_epochs=1",
    "search.episodes=3",
    "search.options.warmup_episodes=1",
    "env.evaluator.subset_size=128",
    "run.progress=false",
    "run.tensorboard=false",
    "run.checkpoint_every=1",
    "run.threads=1",
    "run.epochs_per_step=1",
]
OPTIONS = ExportOptions(epochs=5, latency_batch=2, latency_repeats=1, progress=False)
STEP_FILES = {"config.yaml", "run.json", "history.csv", "best_policy.json", "summary.json",
              "checkpoint.zip", "agent.zip", "agent.json", "game.json",
              STEP_MODEL_FILE}  # fmt: skip
EXPORT_FILES = {"model.pt", "metrics.json", "report.md", "reward.png", "policy.png",
                "candidates.png"}  # fmt: skip


def _config(*extra: str):
    return load_config(DIGITS, [*TINY, *extra])


class FirstEpisodeAgent:
    """Each search's agent as it acts in its first episode, before any update."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self._taken = True

    def on_search_start(self, searcher) -> None:
        self._taken = False

    def on_episode(self, searcher, record) -> None:
        if self._taken:
            return
        agent = searcher.agent
        self.seen.append({
            "searcher": searcher.name,
            "params": {k: v.detach().clone() for k, v in agent.policy.state_dict().items()},
            "buffer_size": agent.buffer_size,
            "n_units": searcher.game.n_units,
            "warmup_left": agent.warmup_episodes - finished_episodes(agent),
            "noise_warmup_left": agent.action_noise.warmup_episodes - finished_episodes(agent),
        })  # fmt: skip
        self._taken = True


def _params(path: Path) -> dict[str, torch.Tensor]:
    from prunegym.agents.factory import ALGOS

    return dict(ALGOS["ddpg"].load(path, device="cpu").policy.state_dict())


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _files(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture
def no_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # each export skips ONNX: faster


@pytest.fixture(scope="module")
def carried(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, FirstEpisodeAgent]:
    """A 2-step DDPG schedule on digits, the agent carried over."""
    out = tmp_path_factory.mktemp("schedule") / "out"
    spy = FirstEpisodeAgent()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "onnxscript", None)
        metrics = run_schedule(_config("run.schedule=[0.7,0.5]", "run.step_warmup_episodes=2"),
                               out, OPTIONS,
                               command=["test"], extra_callbacks=[spy])  # fmt: skip
    return out, metrics, spy


# ------------------------------------------------------------------ budget semantics
def test_step_ratio_keeps_the_budget_of_the_original_network_exactly() -> None:
    assert step_ratio(0.5, 1000, 700) == float(Fraction(500, 700))
    assert step_ratio(0.7, 1000, 1000) == 0.7  # nothing pruned yet: the target itself
    assert step_ratio(0.3, 1000, 250) == 1.0  # already within: the network may not grow
    rng = np.random.default_rng(0)
    for _ in range(2000):
        dense = int(rng.integers(10, 10**9))
        current = int(rng.integers(1, dense))
        target = float(rng.uniform(0.01, 1.0))
        r = step_ratio(target, dense, current)
        allowed = math.floor(Fraction(target) * dense)
        assert 0 < r <= 1
        if allowed >= current:
            assert r == 1.0
            continue
        assert math.floor(Fraction(r) * current) == allowed  # the env's budget, exactly
        assert math.floor(Fraction(math.nextafter(r, 0)) * current) < allowed  # the smallest


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["run.schedule=[]"], "run.schedule is empty"),
        (["run.schedule=[0.5,0.7]"], "strictly decreasing: step 2 (0.7) does not go below"),
        (["run.schedule=[0.5,0.5]"], "strictly decreasing"),
        (["run.schedule=[0.7,0]"], "step 2 is 0; every budget must be a ratio"),
        (["run.schedule=[1.5,0.5]"], "step 1 is 1.5"),
        (["run.schedule=[0.7,0.5]", "env.granularity=weight"], "needs env.granularity channel"),
        (["run.schedule=[0.7,0.5]", "env.target=latency"], "needs env.target macs or params"),
        (["run.schedule=[0.7,0.5]", "run.epochs_per_step=-1"], "epochs_per_step must be >= 0"),
        (
            ["run.schedule=[0.7,0.5]", "run.step_warmup_episodes=-1"],
            "step_warmup_episodes must be >= 0",
        ),
    ],
)
def test_bad_schedules_are_one_line_errors(overrides, message) -> None:
    with pytest.raises(ConfigError) as err:
        check_schedule(load_config(DIGITS, overrides))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_later_steps_carry_the_agent_over_unless_restarted(tmp_path) -> None:
    base = load_config(DIGITS, ["run.schedule=[0.7,0.5]", "search.options.replay_episodes=50"])
    previous = tmp_path / "step-1-0.70"
    first = step_config(base, 1, 0.7, previous, None)
    assert (first.search.agent, first.env.ratio, first.run.schedule) == ("ddpg", 0.7, None)
    assert first.workload == base.workload and first.run.out == str(previous)

    carried = step_config(base, 2, 0.74, tmp_path / "step-2-0.50", previous)
    assert carried.search.agent == "transfer"
    assert carried.search.options == {
        "replay_episodes": 50,
        "source": str(previous),
        "warmup_episodes": 5,
    }  # run.step_warmup_episodes' default
    short = step_config(base.replace(**{"run.step_warmup_episodes": 0}), 2, 0.74,
                        tmp_path / "step-2-0.50", previous)  # fmt: skip
    assert short.search.options["warmup_episodes"] == 0
    assert carried.workload.checkpoint == str(previous / STEP_MODEL_FILE)
    assert carried.env.ratio == 0.74

    restarted = step_config(base.replace(**{"run.restart_agent": True}), 2, 0.74,
                            tmp_path / "step-2-0.50", previous)  # fmt: skip
    assert restarted.search == base.search
    baseline = base.replace(**{"search.agent": "random", "search.options": {}})
    assert step_config(baseline, 2, 0.74, tmp_path / "s", previous).search == baseline.search


def test_a_pruned_checkpoint_rebuilds_the_pruned_network(tmp_path, example_input) -> None:
    model = make_model("resnet20")
    table = LayerTable.from_model(model, example_input)
    pruned = ChannelPruner(model, table).apply(PruningPolicy.uniform(table, 0.5)).eval()
    path = save_checkpoint(tmp_path / "p.pt", pruned, model_name="resnet20", in_channels=3,
                           num_classes=10, pruned=True)  # fmt: skip
    again = load_checkpoint(path).build_model()
    assert count_cost(again, example_input) == count_cost(pruned, example_input)
    assert count_cost(again, example_input).macs < table.total_macs
    with torch.no_grad():
        assert torch.equal(again(example_input), pruned(example_input))
    dense = save_checkpoint(tmp_path / "d.pt", pruned, model_name="resnet20", in_channels=3,
                            num_classes=10)  # fmt: skip
    with pytest.raises(ValueError, match="weights do not fit resnet20"):
        load_checkpoint(dense).build_model()  # without the sizes it cannot be rebuilt


# ------------------------------------------------------------------ bad schedules: CLI
@pytest.mark.parametrize("command", ["search", "transfer"])
def test_commands_that_run_one_search_refuse_a_schedule(tmp_path, capsys, command) -> None:
    out = tmp_path / "out"
    sets = ["--set", "run.schedule=[0.7,0.5]"]
    argv = {"search": ["search", "--config", str(DIGITS), *sets, "--out", str(out)],
            "transfer": ["transfer", "--from", str(tmp_path / "absent"), "--config",
                         str(DIGITS), *sets, "--out", str(out)]}[command]  # fmt: skip
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"prunegym: error: run.schedule is set, but prunegym {command} runs one "
                    "search at one budget; prune iteratively with prunegym run (or unset "
                    "run.schedule)")  # fmt: skip
    assert not out.exists()


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("[0.5,0.7]", "run.schedule must be strictly decreasing"),
        ("[0.7,0]", "every budget must be a ratio of the dense cost in (0, 1]"),
        ("[0.7,0.3,0.05]", "run.schedule step 3 (0.05) is below the rounding floor: the "
                           "smallest macs ratio reachable from the original network is 0.06374"),
    ],
)  # fmt: skip
def test_cli_refuses_a_bad_schedule_before_any_training(
    tmp_path, capsys, monkeypatch, schedule, message
) -> None:
    import prunegym.experiments.training as training

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the schedule was checked")

    monkeypatch.setattr(training, "train", no_training)
    out = tmp_path / "out"
    argv = ["run", "--config", str(DIGITS), *[a for s in TINY for a in ("--set", s)],
            "--set", f"run.schedule={schedule}", "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prunegym: error: ") and message in err[0], err
    assert not out.exists()


# ------------------------------------------------------------------ a whole schedule
def test_the_last_model_meets_the_final_budget_and_its_macs_are_the_tables(carried) -> None:
    out, metrics, _ = carried
    dense = metrics["dense"]["macs"]
    model = load_pruned(out / "export" / "model.pt")
    step2 = out / "step-2-0.50"
    source = load_checkpoint(out / "step-1-0.70" / STEP_MODEL_FILE)
    d = source.metadata["dataset"]
    example = torch.zeros(1, d["in_channels"], *d["image_size"])
    macs = count_cost(model, example).macs
    assert macs <= math.floor(Fraction(0.5) * dense)
    # the count of the step's own unit table, from its best policy, on its network
    table = LayerTable.from_model(source.build_model(), example)
    policy = PruningPolicy.from_json(step2 / "best_policy.json")
    assert table.cost(policy).macs == macs == metrics["steps"][-1]["macs"]
    assert [s["table_cost"] for s in metrics["steps"]] == [s["macs"] for s in metrics["steps"]]
    assert table.total_macs == metrics["steps"][0]["macs"] <= math.floor(Fraction(0.7) * dense)
    ratio = load_config(step2 / "config.yaml").env.ratio
    assert ratio == step_ratio(0.5, dense, metrics["steps"][0]["macs"]) > 0.5
    assert [s["fine_tune_epochs"] for s in metrics["steps"]] == [1, 1]  # run.epochs_per_step


def test_every_step_is_a_complete_exportable_run_directory(carried, tmp_path, no_onnx) -> None:
    out, metrics, _ = carried
    assert {p.name for p in out.iterdir()} == {"config.yaml", "run.json", "schedule.json",
                                               "export", "step-1-0.70", "step-2-0.50"}  # fmt: skip
    for step in ("step-1-0.70", "step-2-0.50"):
        names = {p.name for p in (out / step).iterdir()}
        assert names >= STEP_FILES and "run.lock" not in names, names
        assert {p.name for p in (out / step / "export").iterdir()} >= EXPORT_FILES
    assert load_config(out / "step-2-0.50" / "config.yaml").workload.checkpoint == str(
        out / "step-1-0.70" / STEP_MODEL_FILE
    )
    copy = tmp_path / "step-2"
    shutil.copytree(out / "step-2-0.50", copy)
    again = export_run(copy, ExportOptions(epochs=0, latency_batch=2, latency_repeats=1,
                                           progress=False))  # fmt: skip
    assert again["pruned"]["macs"] == metrics["steps"][-1]["macs"]
    assert again["dense"]["macs"] == metrics["steps"][0]["macs"]  # it pruned step 1's network
    assert again["pruned"]["top1_before_fine_tune"] == metrics["steps"][-1]["top1_before_fine_tune"]
    assert (out / "export" / "model.pt").read_bytes() == (
        out / "step-2-0.50" / "export" / "model.pt"
    ).read_bytes()


def test_the_agent_of_step_2_starts_from_step_1s(carried) -> None:
    out, _, spy = carried
    first, second = spy.seen
    final_of_step_1 = _params(out / "step-1-0.70" / "agent.zip")
    assert (first["searcher"], second["searcher"]) == ("ddpg", "transfer")
    assert not _same(first["params"], final_of_step_1)  # step 1 learnt something
    assert _same(second["params"], final_of_step_1)
    assert second["buffer_size"] == 100 * second["n_units"]  # fresh, sized to this network
    # step 1: the config's warm-up; step 2: run.step_warmup_episodes random episodes
    # after its zero-shot one, the noise decaying only after them
    assert (first["warmup_left"], second["warmup_left"]) == (1, 2)
    assert second["noise_warmup_left"] == 2
    report = json.loads((out / "step-2-0.50" / "transfer.json").read_text())
    assert report["from"] == str((out / "step-1-0.70").resolve())
    assert report["fine_tune"]["warmup_episodes"] == 2
    assert "2 warm-up episode(s) at each later step" in (out / "export" / "report.md").read_text()


def test_the_report_shows_the_whole_path(carried, capsys) -> None:
    out, metrics, _ = carried
    report = (out / "export" / "report.md").read_text()
    for s in metrics["steps"]:
        row = (f"| {s['index']} | {s['target_ratio']:g} | {s['step_ratio']:.4g} | {s['agent']} "
               f"| 3 |")  # fmt: skip
        assert row in report
        assert f"| {s['macs_ratio']:.3f} | {s['params_ratio']:.3f} | " in report
        assert f"{100 * s['top1']:.2f}% |" in report
    assert "| dense | 1 |" in report and f"{100 * metrics['dense']['top1']:.2f}%" in report
    png = out / "export" / "trajectory.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    png.unlink()
    assert main(["report", str(out)]) == 0  # rebuilt from the saved figures
    assert png.is_file() and (out / "export" / "report.md").read_text() == report
    capsys.readouterr()


def test_restart_agent_starts_step_2_from_a_fresh_agent(carried, tmp_path, no_onnx) -> None:
    out, _, spy = carried
    here = tmp_path / "out"  # the schedule as it stood after step 1, restart_agent chosen
    shutil.copytree(out, here, ignore=lambda d, names: [
        n for n in names if Path(d) == out and n in ("step-2-0.50", "export")])  # fmt: skip
    state = json.loads((here / "schedule.json").read_text())
    state["steps"], state["restart_agent"] = state["steps"][:1], True
    (here / "schedule.json").write_text(json.dumps(state))
    cfg = load_config(here / "config.yaml", ["run.restart_agent=true"])
    (here / "config.yaml").write_text(cfg.to_yaml())
    (here / "step-1-0.70" / "agent.zip").unlink()  # a restarted agent needs none
    fresh = FirstEpisodeAgent()
    metrics = run_schedule(cfg, here, OPTIONS, resume=True, extra_callbacks=[fresh])
    (second,) = fresh.seen
    assert second["searcher"] == "ddpg" and metrics["steps"][1]["agent"] == "ddpg"
    assert second["warmup_left"] == 1  # the config's full warm-up, not the step's short one
    assert _same(second["params"], spy.seen[0]["params"])  # the same fresh start as step 1
    assert not (here / "step-2-0.50" / "transfer.json").exists()
    assert "a fresh agent at every step" in (here / "export" / "report.md").read_text()


# ------------------------------------------------------------------ export and report
def test_export_on_a_schedule_exports_its_final_step_again(carried, tmp_path, capsys, no_onnx):
    out, metrics, _ = carried
    here = tmp_path / "out"  # a copy: the steps' configs still read step 1's network there
    shutil.copytree(out, here)
    step1_before = _files(here / "step-1-0.70")
    argv = ["export", str(here), "--epochs", "0", "--latency-batch", "2", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"model:              {here / 'export' / 'model.pt'}" in printed
    again = json.loads((here / "export" / "metrics.json").read_text())
    step = json.loads((here / "step-2-0.50" / "export" / "metrics.json").read_text())
    last = again["steps"][-1]
    assert step["fine_tune"]["epochs"] == last["fine_tune_epochs"] == 0  # these options
    assert last["top1"] == step["pruned"]["top1"] == last["top1_before_fine_tune"]
    assert last["macs"] == metrics["steps"][-1]["macs"]  # the same policy, on the same network
    assert again["steps"][0] == metrics["steps"][0]
    assert again["export_command"] == ["prunegym", *argv]
    assert json.loads((here / "schedule.json").read_text())["steps"][-1] == last
    assert (here / "export" / "model.pt").read_bytes() == (
        here / "step-2-0.50" / "export" / "model.pt"
    ).read_bytes()
    handed = load_checkpoint(here / "step-2-0.50" / STEP_MODEL_FILE)
    assert handed.metadata["metrics"]["test_top1"] == last["top1"]  # the new network
    assert _files(here / "step-1-0.70") == step1_before  # earlier steps untouched
    assert " ".join(["prunegym", *argv]) in (here / "export" / "report.md").read_text()


def test_export_refuses_an_unfinished_schedule(carried, tmp_path, capsys) -> None:
    out, _, _ = carried
    here = tmp_path / "out"
    shutil.copytree(out, here, ignore=lambda d, names: [
        n for n in names if Path(d) == out and n in ("step-2-0.50", "export")])  # fmt: skip
    state = json.loads((here / "schedule.json").read_text())
    state["steps"] = state["steps"][:1]
    (here / "schedule.json").write_text(json.dumps(state))
    before = _files(here)
    assert main(["export", str(here), "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"prunegym: error: the schedule in {here} stopped after step 1 of 2; "
                    f"finish it first: prunegym run --resume {here}")  # fmt: skip
    assert _files(here) == before
    with pytest.raises(ConfigError, match="is a schedule's directory: prunegym export"):
        export_run(here, OPTIONS)


# ------------------------------------------------------------------ kill -9, resume
def test_kill_during_step_2_then_resume_finishes_without_redoing_step_1(tmp_path, no_onnx):
    out = tmp_path / "out"
    sets = [*[s for s in TINY if "warmup" not in s], "search.agent=random", "search.episodes=4",
            "run.schedule=[0.7,0.5]"]  # fmt: skip
    argv = ["run", "--config", str(DIGITS), *[a for s in sets for a in ("--set", s)],
            "--out", str(out), "--latency-batch", "2"]  # fmt: skip
    code = ("import sys; sys.modules['onnxscript'] = None; from prunegym.experiments.cli "
            f"import main; sys.exit(main({argv!r}))")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    step2 = out / "step-2-0.50"
    try:
        deadline = time.monotonic() + 600
        # history.csv follows checkpoint.zip at the same safe point: both, then kill
        while not (step2 / "checkpoint.zip").is_file() or not (step2 / "history.csv").is_file():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert not (step2 / "export").exists()  # killed inside step 2's search
    step1 = _files(out / "step-1-0.70")
    done = (step2 / "history.csv").read_text().splitlines()

    resume = ["run", "--resume", str(out), "--no-progress", "--latency-batch", "2"]
    assert main(resume) == 0
    assert _files(out / "step-1-0.70") == step1  # not one byte, not one mtime
    state = json.loads((out / "schedule.json").read_text())
    assert [s["dir"] for s in state["steps"]] == ["step-1-0.70", "step-2-0.50"]
    rows = (step2 / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and rows[: len(done)] == done  # continued, not restarted
    assert json.loads((step2 / "run.json").read_text())["resumed"]
    assert (out / "export" / "model.pt").is_file()
