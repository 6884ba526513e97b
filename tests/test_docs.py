"""The docs do not rot: every relative link in README.md and docs/ reaches an existing
file (and heading), every config they name exists, and every searcher, reward,
subcommand, run-directory file and history.csv column the code has is described."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def _slug(title: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading."""
    text = re.sub(r"<[^>]+>", "", title).replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    return {_slug(m["title"]) for m in HEADING.finditer(FENCE.sub("", page.read_text()))}


def broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` whose file (or heading anchor) does not exist."""
    broken = []
    for match in LINK.finditer(FENCE.sub("", page.read_text())):
        target = match["target"]
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
            continue
        if anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(target)
    return broken


def _section(page: str, heading: str) -> str:
    """The text of ``page`` under ``heading`` up to the next heading of any level."""
    text = (DOCS / page).read_text()
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start : end if end >= 0 else None]


def test_the_link_checker_finds_a_broken_file_and_a_broken_anchor(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# Title\n\n## A `code` heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-code-heading) [ok](#here) [web](https://x.org)\n"
        "[gone](missing.md#x) [bad anchor](there.md#nowhere)\n\n## Here\n"
        "```\n[in a code block](ignored.md)\n```\n"
    )
    assert broken_links(page) == ["missing.md#x", "there.md#nowhere"]


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_every_relative_link_reaches_an_existing_file(page: Path) -> None:
    assert broken_links(page) == []


def test_the_readme_points_to_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    linked = {m["target"].partition("#")[0] for m in LINK.finditer(readme)}
    pages = {p.relative_to(ROOT).as_posix() for p in DOCS.glob("*.md")} - {"docs/coverage.md"}
    assert pages - linked == set()


def test_every_config_the_docs_name_exists() -> None:
    named = {n for page in PAGES for n in re.findall(r"configs/[\w.-]+\.yaml", page.read_text())}
    assert named, "the docs name no example config at all?"
    assert sorted(n for n in named if not (ROOT / n).is_file()) == []


def test_every_searcher_and_reward_has_advice() -> None:
    from prunegym.agents import SEARCHERS
    from prunegym.envs import REWARDS

    searchers = _section("rewards-and-searchers.md", "### Which searcher fits")
    rewards = _section("rewards-and-searchers.md", "### Which reward fits")
    assert [s for s in SEARCHERS if f"**`{s}`**" not in searchers] == []
    assert [r for r in REWARDS if f"**`{r}`**" not in rewards] == []


def test_every_subcommand_has_a_section_with_an_example() -> None:
    from prunegym.experiments.commands import COMMANDS

    for name in COMMANDS:
        section = _section("cli.md", f"\n## {name}\n")
        assert f"prunegym {name}" in section, name
        assert f"<!-- generated: help {name} -->" in section, name


def test_every_file_of_a_run_directory_is_described() -> None:
    from prunegym.agents import metadata
    from prunegym.experiments import rundir, runlock

    text = (DOCS / "run-directory.md").read_text()
    files = [getattr(rundir, n) for n in dir(rundir) if n.endswith(("_FILE", "_DIR"))]
    files += [metadata.AGENT_FILE, metadata.METADATA_FILE, metadata.GAME_FILE, runlock.LOCK_FILE]
    assert len(files) > 10
    undescribed = [f for f in files if f"| `{f}" not in text and f"`{f}/`" not in text]
    assert undescribed == []
    assert [k for k in rundir.RESUMABLE_KEYS if f"`{k}`" not in text] == []


def test_every_history_column_is_described() -> None:
    from prunegym.agents.results import METRIC_KEYS, EpisodeRecord

    record = EpisodeRecord(0, (0.5,), 1.0, {k: 0.5 for k in METRIC_KEYS}, {"NAME": 1.0},
                           kept=(8,))  # fmt: skip
    columns = record.row(["UNIT"])
    shown = {c.replace("NAME", "<name>").replace("UNIT", "<unit>") for c in columns}
    table = _section("run-directory.md", "### `history.csv`")
    assert sorted(c for c in shown if f"`{c}`" not in table) == []
