"""docs/params.md, the reference of every params.yaml key, cannot drift from what it documents (issue 30).

The page is made by pipeline/common/params_doc.py: each key's default from params.yaml, what it
may be from its typed config, its meaning from its comment. These tests hold the page to that:
it is exactly what the generator makes, every key is in it once with a meaning, and the
"allowed" column says what the config says when it refuses a value.

Which params.yaml: the committed one, as everywhere in the suite (tests/helpers.py
`committed_params`): `dvc exp run -S` rewrites the values of the workspace copy, and the page
documents the defaults, so comparing it with the workspace copy would fail after every
experiment. The generator itself reads the workspace file (the one a developer edits), so
after changing params.yaml or a config: rerun it and commit params.yaml with the page, or point
HAMGARA_TEST_PARAMS at the edited params.yaml until then.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import typing
from collections import Counter
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml

from helpers import REPO
from model.config import ModelConfig
from pipeline import config as cfg
from pipeline.common import params_doc

PAGE = REPO / "docs" / "params.md"

# The section configs and the params.yaml section each reads; model is ModelConfig's.
SECTION_CONFIGS = {
    "data": cfg.DataConfig,
    "data.demo": cfg.DemoConfig,
    "data.validate": cfg.ValidateConfig,
    "features": cfg.FeaturesConfig,
    "align": cfg.AlignConfig,
    "train": cfg.TrainConfig,
    "vocoder": cfg.VocoderConfig,
    "eval": cfg.EvalConfig,
    "lr_find": cfg.LrFindConfig,
}


def committed_params_text(repo: Path = REPO) -> str:
    """params.yaml's text as committed at HEAD (comments included): `committed_params`'s rule,
    with its HAMGARA_TEST_PARAMS override and its fallback outside a git checkout."""
    override = os.environ.get("HAMGARA_TEST_PARAMS")
    if override:
        return Path(override).read_text(encoding="utf-8")
    try:
        return subprocess.run(
            ["git", "-C", str(repo), "show", "HEAD:params.yaml"], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return (repo / "params.yaml").read_text(encoding="utf-8")


TEXT = committed_params_text()


def all_keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key of params.yaml that holds a value, the presets' keys included."""
    out = []
    for k, v in tree.items():
        out += all_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


KEYS = all_keys(yaml.safe_load(TEXT))


@dataclasses.dataclass
class Entry:
    key: str
    allowed: str
    meaning: str


def _cells(line: str) -> list[str]:
    """A markdown table row's cells, unescaped (`\\|` is a | inside a cell)."""
    return [c.strip().replace(r"\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def entries(page: str) -> list[Entry]:
    """Each key row of the page's tables, read here without the generator's help: a section
    table's row is one key; a preset table's row is its key in every preset."""
    out: list[Entry] = []
    columns: list[str] = []
    for line in page.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = _cells(line)
        if cells[0] == "key" or cells[0].startswith("key under"):
            columns = cells
            continue
        if not cells[0]:
            continue  # a note that introduces the keys after it
        row = dict(zip(columns, cells))
        name = cells[0].strip("`")
        if columns[0] == "key":
            out.append(Entry(name, row["allowed"], row["meaning"]))
        else:
            prefix = re.fullmatch(r"key under `(.+)\.<preset>`", columns[0])[1]  # type: ignore[index]
            presets = [c.strip("`") for c in columns[1:-2]]
            out += [Entry(f"{prefix}.{p}.{name}", row["allowed"], row["meaning"]) for p in presets]
    return out


@pytest.fixture(scope="module")
def page() -> str:
    """The page the generator makes from the committed params.yaml."""
    return params_doc.render(TEXT)


def _set_line(text: str, key: str, new_line: str, section: str = "train") -> str:
    """`text` with the line of `key:`, indented two spaces, in `section` replaced (train and
    vocoder share names such as max_steps and grad_clip)."""
    start = re.search(rf"^{section}:$", text, flags=re.MULTILINE)
    assert start is not None, f"no {section}: section in params.yaml"
    after = re.search(r"^\S", text[start.end() :], flags=re.MULTILINE)
    end = start.end() + (after.start() if after else len(text) - start.end())
    changed, n = re.subn(rf"^  {key}:.*$", new_line, text[start.end() : end], flags=re.MULTILINE)
    assert n == 1, f"expected one line for {key} in params.yaml's {section}, found {n}"
    return text[: start.end()] + changed + text[end:]


# --- (1) the page is what the generator makes -------------------------------------------------------


def test_the_page_is_what_the_generator_makes_from_the_committed_params(page: str) -> None:
    on_disk = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else None
    said = params_doc.difference(on_disk, page, "docs/params.md")
    assert not said, (
        f"{said}\n(the page is compared with what the generator makes from the committed params.yaml: "
        "commit params.yaml with the rewritten page, or set HAMGARA_TEST_PARAMS=params.yaml until then)"
    )


def test_a_changed_default_is_caught_naming_the_key_and_the_command(page: str) -> None:
    # The planted fault: a default changed in params.yaml without rewriting the page.
    changed = _set_line(TEXT, "max_steps", "  max_steps: 123457          # optimizer steps of the whole run")
    said = params_doc.difference(page, params_doc.render(changed), "docs/params.md")
    assert "the rows of train.max_steps differ" in said and params_doc.COMMAND in said
    assert "123457" in said  # the diff shows the new row


# --- (2) every key once -----------------------------------------------------------------------------


def test_every_params_key_appears_exactly_once(page: str) -> None:
    counts = Counter(e.key for e in entries(page))
    assert sorted(set(KEYS) - set(counts)) == [], "params.yaml keys missing from the page"
    assert sorted(set(counts) - set(KEYS)) == [], "page rows for keys params.yaml does not have"
    assert [k for k, n in counts.items() if n > 1] == [], "keys with more than one row"


def test_a_row_written_twice_is_counted_twice(page: str) -> None:
    # The check above can fail: a duplicated row is seen as one.
    row = next(line for line in page.splitlines() if line.startswith("| `train.lr` |"))
    doubled = page.replace(row, f"{row}\n{row}")
    assert Counter(e.key for e in entries(doubled))["train.lr"] == 2


# --- (3) every key has a meaning --------------------------------------------------------------------


def test_every_key_has_a_meaning(page: str) -> None:
    assert [e.key for e in entries(page) if not e.meaning] == []


def test_a_key_without_a_comment_is_refused_naming_it() -> None:
    # The planted fault: grad_clip's comment removed (it has none above it).
    bare = _set_line(TEXT, "grad_clip", "  grad_clip: 0.8")
    with pytest.raises(ValueError, match=r"without a meaning: train\.grad_clip \(line \d+\)"):
        params_doc.render(bare)


def test_a_comment_inside_a_value_is_refused_naming_its_line() -> None:
    # A comment between list items documents no key: refused rather than silently dropped.
    lines = TEXT.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("    - "))
    stray = "\n".join([*lines[:at], "    # a stray comment", *lines[at:]])
    with pytest.raises(ValueError, match=rf"params.yaml:{at + 1}: this comment is inside a value"):
        params_doc.render(stray)


# --- (4) the allowed column is what the config declares ---------------------------------------------


def test_the_allowed_column_is_each_section_fields_declared_limit(page: str) -> None:
    allowed = {e.key: e.allowed for e in entries(page)}
    declared = {}
    for section, config in SECTION_CONFIGS.items():
        hints = typing.get_type_hints(config)
        for f in dataclasses.fields(config):
            if "section" not in f.metadata:
                declared[f"{section}.{f.name}"] = cfg.expected(hints[f.name], f.metadata.get("limit"))
    assert {k: allowed[k] for k in declared} == declared
    # Every key is either a section config's or the model's (checked below): none is unchecked.
    assert [k for k in KEYS if k not in declared and not k.startswith("model.")] == []


def refusals(params: dict[str, Any], key: str) -> list[str]:
    """What check_params says `key` must be, for each line of its refusal that says it."""
    try:
        cfg.check_params(params)
    except cfg.ConfigError as e:
        return re.findall(rf"^params\.yaml: {re.escape(key)} must be (.*?), got ", str(e), flags=re.MULTILINE)
    return []


def with_value(key: str, value: Any) -> dict[str, Any]:
    params = yaml.safe_load(TEXT)
    *path, last = key.split(".")
    node = params
    for part in path:
        node = node[part]
    node[last] = value
    return params


# Values no key accepts, of each key's own type first (the model checks a range only once the
# type is right), then of the wrong type (the refusal then says the type and its limit).
PROBES: dict[type, tuple[Any, ...]] = {int: (-(10**9), 10**9), float: (-1e9, 1e9), str: ("x",)}


@pytest.mark.parametrize("key", [k for k in KEYS if k != "model.size"])
def test_the_allowed_column_is_what_the_config_says_when_it_refuses(key: str, page: str) -> None:
    allowed = {e.key: e.allowed for e in entries(page)}[key]
    default = yaml.safe_load(TEXT)
    for part in key.split("."):
        default = default[part]
    for probe in [*PROBES.get(type(default), ()), {"not": "a value"}]:
        said = refusals(with_value(key, probe), key)
        if said:
            assert said == [allowed], (
                f"{key} = {probe!r} is refused saying it must be {said}, the page says {allowed!r}"
            )
            return
    pytest.fail(f"no probe value was refused for {key}")


def test_the_model_size_column_names_every_preset(page: str) -> None:
    allowed = {e.key: e.allowed for e in entries(page)}["model.size"]
    presets = list(yaml.safe_load(TEXT)["model"]["sizes"])
    with pytest.raises(cfg.ConfigError) as e:
        cfg.check_params(with_value("model.size", "x"))
    assert all(f"'{p}'" in str(e.value) for p in presets)  # the refusal lists the presets ...
    assert allowed == f"one of {', '.join(presets)} (a preset of model.sizes)"  # ... and so does the page


def test_a_changed_limit_changes_the_page(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The planted fault: train.lr's declared limit changed (here, in a copy of its field).
    lr = next(f for f in dataclasses.fields(cfg.TrainConfig) if f.name == "lr")
    monkeypatch.setattr(lr, "metadata", MappingProxyType({"limit": cfg.Limit(low=1e-9, low_open=True)}))
    made = params_doc.render(TEXT)
    assert {e.key: e.allowed for e in entries(made)}["train.lr"] == "a number > 1e-09"
    said = params_doc.difference(page, made, "docs/params.md")
    assert "the rows of train.lr differ" in said


def test_a_changed_model_limit_changes_the_page(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The model declares its limits in ModelConfig's checks: a stricter check shows on the page.
    checks = ModelConfig.__post_init__

    def stricter(self: ModelConfig) -> None:
        if not 0 <= self.dropout < 0.5:
            raise ValueError(f"dropout must be a number in [0, 0.5), got {self.dropout!r}")
        checks(self)

    monkeypatch.setattr(ModelConfig, "__post_init__", stricter)
    made = params_doc.render(TEXT)
    assert {e.key: e.allowed for e in entries(made)}["model.dropout"] == "a number in [0, 0.5)"
    assert "the rows of model.dropout differ" in params_doc.difference(page, made, "docs/params.md")


# --- the command ------------------------------------------------------------------------------------


def test_the_command_writes_the_page_and_check_names_what_is_out_of_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params, out = tmp_path / "params.yaml", tmp_path / "docs" / "params.md"
    params.write_text(TEXT, encoding="utf-8")
    args = ["--params", str(params), "--out", str(out)]
    assert params_doc.main([*args, "--check"]) == 4  # no page yet
    assert "does not exist" in capsys.readouterr().err
    assert params_doc.main(args) == 0
    assert out.read_text(encoding="utf-8") == params_doc.render(TEXT, str(params))
    assert params_doc.main([*args, "--check"]) == 0
    params.write_text(_set_line(TEXT, "grad_clip", "  grad_clip: 0.8  # a new meaning"), encoding="utf-8")
    assert params_doc.main([*args, "--check"]) == 4
    err = capsys.readouterr().err
    assert "the rows of train.grad_clip differ" in err and params_doc.COMMAND in err
    params.write_text(_set_line(TEXT, "grad_clip", "  grad_clip: 0"), encoding="utf-8")  # refused by its config
    assert params_doc.main(args) == 2
    assert "train.grad_clip must be a number > 0, got 0" in capsys.readouterr().err


def test_the_help_says_what_the_command_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        params_doc.main(["--help"])
    assert e.value.code == 0 and "docs/params.md" in capsys.readouterr().out
