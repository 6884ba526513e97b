"""End-to-end runs: search -> apply for real -> fine-tune -> test -> save -> ONNX -> report."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

from prunegym import load_pruned
from prunegym.experiments.cli import main
from prunegym.experiments.config import load_config
from prunegym.experiments.demo import demo_config
from prunegym.experiments.export import ExportOptions, export_run
from prunegym.experiments.run import run_pipeline
from prunegym.experiments.training import evaluate
from prunegym.pruners import PruningPolicy, count_cost, onnx_max_abs_diff

ARTIFACTS = ["model.pt", "model.onnx", "metrics.json", "report.md", "reward.png", "policy.png",
             "candidates.png"]  # fmt: skip
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
OPTIONS = ExportOptions(epochs=1, latency_batch=8, latency_repeats=3, progress=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("e2e") / "run"
    cfg = demo_config(episodes=4, warmup=2, train_epochs=2, seed=0, progress=False)
    metrics = run_pipeline(cfg, run_dir, OPTIONS, command=["test"])
    return run_dir, metrics


def test_every_artifact_is_written(run) -> None:
    run_dir, _ = run
    for name in ["config.yaml", "history.csv", "best_policy.json", "agent.zip", "base_model.pt"]:
        assert (run_dir / name).is_file(), name
    for name in ARTIFACTS:
        assert (run_dir / "export" / name).stat().st_size > 0, name
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".export")]
    assert not (run_dir / "run.lock").exists()
    mode = (run_dir / "export").stat().st_mode & 0o777
    assert mode == (run_dir / "tb").stat().st_mode & 0o777 == run_dir.stat().st_mode & 0o777


def test_reloaded_model_reproduces_the_measured_numbers(run) -> None:
    from prunegym.experiments.checkpoint import load_checkpoint
    from prunegym.experiments.data import build_data_like

    run_dir, metrics = run
    model = load_pruned(run_dir / "export" / "model.pt")
    data = build_data_like(load_checkpoint(run_dir / "base_model.pt").metadata["dataset"])
    again = evaluate(model, data.loader("test", batch_size=256, shuffle=False))
    assert again.top1 == metrics["pruned"]["top1"]
    assert again.top5 == metrics["pruned"]["top5"]
    cost = count_cost(model, data.example_input)
    assert (cost.macs, cost.params) == (metrics["pruned"]["macs"], metrics["pruned"]["params"])
    assert cost.macs <= 0.5 * metrics["dense"]["macs"]  # the budget holds after rounding
    batch = torch.cat([data.example_input] * 3)
    assert onnx_max_abs_diff(run_dir / "export" / "model.onnx", model, batch) < 1e-4


def test_report_numbers_equal_the_measured_ones(run) -> None:
    run_dir, metrics = run
    report = (run_dir / "export" / "report.md").read_text()
    saved = json.loads((run_dir / "export" / "metrics.json").read_text())
    assert saved["pruned"]["top1"] == metrics["pruned"]["top1"]
    row = re.search(r"\| test top-1 \| ([\d.]+)% \| ([\d.]+)% \|", report)
    assert row is not None
    assert float(row.group(1)) == round(100 * metrics["dense"]["top1"], 2)
    assert float(row.group(2)) == round(100 * metrics["pruned"]["top1"], 2)
    for unit in metrics["policy"]["units"]:
        assert f"| `{unit['name']}` | {unit['kept']} / {unit['channels']} |" in report
    lat = metrics["pruned"]["latency_ms"]["8"]["median_ms"]
    assert f"{lat:.3f}" in report


def test_export_reports_what_the_search_scored(run) -> None:
    """Recalibrated as the search's evaluator did, the pruned model scores on the reward
    split what the search scored for the policy (digits: the whole split, so equal up to
    masked-vs-physical rounding of one sample); report.md says so with honest labels."""
    run_dir, metrics = run
    before = metrics["pruned"]["before_fine_tune"]
    assert before["recalibrated"] and (before["bn_batches"], before["bn_batch_size"]) == (4, 64)
    proxy = PruningPolicy.from_json(run_dir / "best_policy.json").meta["accuracy"]
    assert metrics["search"]["proxy_accuracy"] == proxy
    reward = before["reward_val"]
    assert reward["samples"] == metrics["search"]["proxy_samples"]
    assert abs(reward["top1"] - proxy) <= 1 / reward["samples"] + 1e-12
    test = before["test"]
    assert test["samples"] == metrics["test_samples"]
    assert metrics["pruned"]["top1_before_fine_tune"] == test["top1"]
    report = (run_dir / "export" / "report.md").read_text()
    row = (f"| pruned, batch-norm recalibrated as the search did (4 batches of 64 training "
           f"images), before fine-tuning | {100 * reward['top1']:.2f}% | "
           f"{100 * test['top1']:.2f}% |")  # fmt: skip
    assert row in report
    assert "after 1 epoch(s) of fine-tuning" in report
    assert f"the search scored this policy {100 * proxy:.2f}% on {reward['samples']}" in report


def test_report_command_rebuilds_from_saved_figures(run, capsys) -> None:
    run_dir, _ = run
    report = run_dir / "export" / "report.md"
    before = report.read_text()
    report.unlink()
    (run_dir / "export" / "policy.png").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert report.read_text() == before
    assert (run_dir / "export" / "policy.png").is_file()


def test_failed_export_keeps_the_previous_one(run, monkeypatch) -> None:
    run_dir, _ = run
    before = (run_dir / "export" / "metrics.json").read_text()

    def broken(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("prunegym.pruners.export_onnx", broken)
    with pytest.raises(OSError, match="disk full"):
        export_run(run_dir, ExportOptions(epochs=0, latency_repeats=1, progress=False))
    assert (run_dir / "export" / "metrics.json").read_text() == before
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".export")]


def test_without_the_onnx_extra_export_skips_onnx_with_a_note(
    run, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run_dir, _ = run
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    assert main(["export", str(run_dir), "--epochs", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert (
        "ONNX:          skipped, onnxscript is not installed (pip install 'prunegym[onnx]')" in out
    )
    assert "model.onnx" not in out
    assert sorted(p.name for p in (run_dir / "export").iterdir()) == sorted(
        set(ARTIFACTS) - {"model.onnx"}
    )
    metrics = json.loads((run_dir / "export" / "metrics.json").read_text())
    assert metrics["onnx"] == {
        "skipped": "onnxscript is not installed (pip install 'prunegym[onnx]')"
    }
    assert (
        "ONNX export skipped: onnxscript is not installed"
        in (run_dir / "export" / "report.md").read_text()
    )


def test_run_switches_agent_and_prints_one_line_per_phase(tmp_path, capsys) -> None:
    """The README's `--set search.agent=random` on a DDPG config, with --no-progress."""
    out = tmp_path / "run"
    sets = ["workload.train_epochs=1", "search.episodes=3", "run.tensorboard=false"]
    argv = ["run", "--config", str(CONFIGS / "digits.yaml"), "--set", "search.agent=random",
            *[a for s in sets for a in ("--set", s)], "--out", str(out), "--no-progress",
            "--epochs", "1", "--latency-batch", "4"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    phases = [line.split(" ")[1] for line in captured.err.strip().splitlines()]
    assert phases == ["note:", "training", "searching", "search", "applying", "fine-tuning",
                      "timing", "writing"], captured.err  # fmt: skip
    assert "search.options (warmup_episodes) belong to agent 'ddpg'" in captured.err
    assert "test top-1" in captured.out
    assert load_config(out / "config.yaml").search.options == {}


def test_demo_runs_reduced_and_meets_the_budget(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    code = main(["demo", "--episodes", "3", "--warmup", "1", "--train-epochs", "1",
                 "--epochs", "0", "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "test top-1" in printed and "latency, batch 64 (ms)" in printed
    assert str(out / "export" / "report.md") in printed
    metrics = json.loads((out / "export" / "metrics.json").read_text())
    assert metrics["pruned"]["macs"] <= 0.5 * metrics["dense"]["macs"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("prunegym: error: ")
    return err[0]


def test_cli_bad_inputs_exit_2_with_one_line(run, tmp_path, capsys) -> None:
    run_dir, _ = run
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "does not exist" in _one_error_line(capsys)

    no_policy = tmp_path / "no-policy"
    no_policy.mkdir()
    shutil.copy(run_dir / "config.yaml", no_policy / "config.yaml")
    assert main(["export", str(no_policy)]) == 2
    assert "no best policy yet" in _one_error_line(capsys)
    assert sorted(p.name for p in no_policy.iterdir()) == ["config.yaml"]

    assert main(["report", str(no_policy)]) == 2
    assert "no export yet" in _one_error_line(capsys)

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["demo", "--episodes", "1", "--train-epochs", "1", "--out",
                 str(blocker / "demo"), "--no-progress"]) == 2  # fmt: skip
    _one_error_line(capsys)

    assert main(["export", str(run_dir), "--epochs", "-1"]) == 2
    assert "--epochs" in _one_error_line(capsys)
