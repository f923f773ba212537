"""The docs keep themselves honest (issue 30): README.md and docs/*.md link only to files and
headings that exist, every `hamgara <command>` and `python -m <module>` their code blocks name
exists and parses `--help`, every kept benchmark result is reachable from the measurements page,
and the README stays a front door of at most 250 lines."""

from __future__ import annotations

import re
import runpy
import sys
import warnings
from pathlib import Path

import pytest

from helpers import REPO
from pipeline import cli

README = REPO / "README.md"
DOCS = REPO / "docs"
MEASUREMENTS = DOCS / "measurements.md"
RESULTS = REPO / "benchmarks" / "results"
README_MAX_LINES = 250

PAGES = [README, *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$")
# `hamgara synth ...`, `.venv/bin/hamgara synth ...`, `... | hamgara synth -`
HAMGARA = re.compile(r"(?:^|[\s|;&(/])hamgara[ \t]+([A-Za-z][\w-]*)")
# `python -m pipeline.train`, `python3 -m ...`, `torchrun --standalone ... -m pipeline.train`; a
# placeholder (`python -m benchmarks.<name>`) names no module.
PYTHON_M = re.compile(r"\b(?:python3?|torchrun)\b[^\n]*?[ \t]-m[ \t]+([A-Za-z_][\w.]*)(?![\w.<])")


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def split_fences(text: str) -> tuple[str, list[str]]:
    """(the prose with every fenced code block left out, the blocks' contents)."""
    prose, blocks, block = [], [], None
    for line in text.splitlines():
        if FENCE.match(line):
            if block is None:
                block = []
            else:
                blocks.append("\n".join(block))
                block = None
        elif block is None:
            prose.append(line)
        else:
            block.append(line)
    return "\n".join(prose), blocks


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text without markup, lowercased, with everything but
    letters, digits, `_`, `-` and spaces removed and each space a hyphen."""
    text = CODE_SPAN.sub(lambda m: m[2].strip(), heading)
    text = LINK.sub(lambda m: m[1], text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a markdown page; a repeated heading gets -1, -2, ... as on GitHub."""
    prose, _ = split_fences(page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for line in prose.splitlines():
        m = HEADING.match(line)
        if m:
            slug = github_slug(m[1])
            out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return out


def relative_links(page: Path) -> list[str]:
    """The targets of the page's links that are not URLs, outside code blocks and code spans."""
    prose, _ = split_fences(page.read_text(encoding="utf-8"))
    targets = [m[2] for m in LINK.finditer(CODE_SPAN.sub("", prose))]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def code_blocks() -> list[str]:
    return [block for page in PAGES for block in split_fences(page.read_text(encoding="utf-8"))[1]]


def named(pattern: re.Pattern[str]) -> list[str]:
    return sorted({m[1] for block in code_blocks() for m in pattern.finditer(block)})


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_points_at_a_file_that_exists(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path = target.split("#", 1)[0]
        if path:
            resolved = (page.parent / path).resolve()
            if not resolved.exists() or not resolved.is_relative_to(REPO):
                broken.append(target)
    assert not broken, f"{rel(page)} links to files that do not exist in the repository: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_link_anchor_names_a_heading_of_the_page_it_points_at(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        if "#" not in target:
            continue
        path, anchor = target.split("#", 1)
        linked = (page.parent / path).resolve() if path else page
        if linked.suffix != ".md" or not linked.exists() or anchor not in anchors(linked):
            broken.append(target)
    assert not broken, f"{rel(page)} links to headings that do not exist: {broken}"


def test_anchors_are_the_slugs_github_gives_headings(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# The CUDA path, measured (one H200)\n\n"
        "## The model (`model/`): a mel decoder\n\n"
        '## What "converged" means\n\n'
        "```\n# not a heading\n```\n\n"
        "## Notes\n\n## Notes\n",
        encoding="utf-8",
    )
    assert anchors(page) == {
        "the-cuda-path-measured-one-h200",
        "the-model-model-a-mel-decoder",
        "what-converged-means",
        "notes",
        "notes-1",
    }


@pytest.mark.parametrize("command", named(HAMGARA))
def test_every_hamgara_command_in_a_code_block_exists_and_its_help_parses(command: str) -> None:
    assert command in cli.STAGES, f"`hamgara {command}` is named in the docs but is not a command"
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0


@pytest.mark.parametrize("module", named(PYTHON_M))
def test_every_python_module_in_a_code_block_imports_and_its_help_exits_0(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as done, warnings.catch_warnings():
        # runpy warns when another test already imported the module; running it again is the point.
        warnings.simplefilter("ignore", RuntimeWarning)
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    assert done.value.code in (0, None), f"python -m {module} --help exited {done.value.code}"


def test_the_readme_is_at_most_250_lines() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to a docs/ page"


def test_the_readme_links_every_docs_page() -> None:
    linked = {(README.parent / t.split("#", 1)[0]).resolve() for t in relative_links(README)}
    unlisted = [rel(page) for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not unlisted, f"docs pages missing from the README's table: {unlisted}"


def test_every_kept_benchmark_result_is_linked_from_the_measurements_page() -> None:
    linked = {(DOCS / t.split("#", 1)[0]).resolve() for t in relative_links(MEASUREMENTS)}
    unlinked = [rel(f) for f in sorted(RESULTS.iterdir()) if f.is_file() and f.resolve() not in linked]
    assert not unlinked, f"results no section of docs/measurements.md links to: {unlinked}"
