"""A params file is hostile input like any other (issue 29).

The spec, as tests: a file whose YAML aliases expand past what any params file holds (the
"billion laughs") is refused while it is read, in well under a second, naming the file; a
message shows a value cut to a few dozen characters with its size, whatever the value; a
`data.corpus` that cannot be a path says why; and every message names the params file that
was read (or the flag that set the value), not params.yaml.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_params_validation import refusal, with_values

from helpers import REPO, committed_params
from pipeline.config import ConfigError, data_config, load_params
from pipeline.data.metadata import MetadataError, read_metadata

# What the nine-level alias bomb is bound to: a marker replaced by the alias in the YAML text.
BOMB_LEVELS = "abcdefghi"


def write_params(path: Path, params: dict[str, Any], **literal: str) -> Path:
    """`params` as YAML at `path`, each quoted marker '@KEY@' replaced by the raw YAML
    `literal[KEY]` (aliases, numbers YAML must read itself)."""
    text = yaml.safe_dump(params, sort_keys=False)
    for marker, raw in literal.items():
        text = text.replace(f"'@{marker}@'", raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def alias_bomb() -> str:
    """A YAML list of nine levels of nine-fold aliases, each level defined in the list
    itself: the last stands for 9**9 (387 million) values."""
    levels = [f"&a [{', '.join(['x'] * 9)}]"]
    for before, level in zip(BOMB_LEVELS, BOMB_LEVELS[1:]):
        levels.append(f"&{level} [{', '.join([f'*{before}'] * 9)}]")
    return f"[{', '.join(levels)}]"


def load_in_a_bounded_child(path: Path) -> subprocess.CompletedProcess[str]:
    """load_params(path) in a fresh Python that the kernel stops once loading has taken a
    second or so of CPU (RLIMIT_CPU, set after the imports) or 1 GiB more memory, so that a
    regression (expanding the aliases, a repr of gigabytes) fails instead of hanging the
    suite or the machine. The child prints the refusal and exits 0; it exits 1 if loading
    passed."""
    script = textwrap.dedent(
        f"""
        import math, resource, sys
        from pipeline.config import ConfigError, load_params
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = math.ceil(used.ru_utime + used.ru_stime) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        memory = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize() + 2**30
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        try:
            load_params({str(path)!r})
        except ConfigError as e:
            print(e)
            sys.exit(0)
        sys.exit(1)
        """
    )
    # The wall-clock limit only catches a child that never gets the CPU on a busy machine.
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)


# --- aliases and nesting --------------------------------------------------------------------------


def test_an_alias_bomb_in_a_known_key_is_refused_within_a_second_naming_the_file_and_key(tmp_path: Path) -> None:
    path = write_params(tmp_path / "params.yaml", with_values(train__lr="@BOMB@"), BOMB=alias_bomb())
    done = load_in_a_bounded_child(path)
    assert done.returncode == 0, f"not refused in time (exit {done.returncode}): {done.stderr[-500:]}"
    assert done.stdout.startswith(f"{path}: train.lr expands to more than 100,000 values through the YAML alias *")
    assert len(done.stdout) < 300


def test_an_alias_inside_itself_is_refused_naming_the_key_and_the_alias(tmp_path: Path) -> None:
    path = write_params(tmp_path / "params.yaml", with_values(data__corpus="@LOOP@"), LOOP="&loop [*loop]")
    done = load_in_a_bounded_child(path)
    assert done.returncode == 0, f"not refused in time (exit {done.returncode}): {done.stderr[-500:]}"
    assert done.stdout.startswith(
        f"{path}: data.corpus expands to more than 100,000 values through the YAML alias *loop"
    )


def test_a_value_nested_too_deeply_to_read_is_refused_naming_the_file(tmp_path: Path) -> None:
    nested = "[" * 5000 + "]" * 5000
    path = write_params(tmp_path / "params.yaml", with_values(eval__sentences="@DEEP@"), DEEP=nested)
    with pytest.raises(ConfigError, match=r"params\.yaml: nested too deeply to read"):
        load_params(path)


def test_an_integer_too_long_for_python_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = write_params(tmp_path / "params.yaml", with_values(train__lr="@LONG@"), LONG="1" * 5000)
    with pytest.raises(ConfigError) as e:
        load_params(path)
    assert str(e.value).startswith(f"{path}: a value cannot be read: Exceeds the limit (4300 digits)")


# --- values shown in messages ---------------------------------------------------------------------

HUGE = 100_000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"data__corpus": "/very/long/" + "x" * HUGE},
            "data.corpus must be the path of a folder, got '/very/long/xxxxx",
        ),
        ({"data__corpus": ["x"] * HUGE}, "data.corpus must be a string, got ['x', 'x', "),
        ({"train__lr": "9" * HUGE}, "(100,000 characters) (text, not a number: write it without quotes)"),
        ({"train__lr": 16**5000}, "train.lr must be a number > 0, got an integer (about 6,021 digits)"),
        ({"train__device": "x" * HUGE}, "train.device must be auto, cpu, cuda or cuda:N, got 'xxxx"),
        ({"train__init_from": "elsewhere/" + "x" * HUGE}, "(100,010 characters)) must be a checkpoint under"),
        (
            {"train__freeze": ["encoder"] * HUGE},
            "got ['encoder', 'encoder', 'encoder', 'encoder', 'encoder', ...] (a list",
        ),
        ({"model__size": "x" * HUGE}, "(100,000 characters) is not one of ['base', "),
        ({"model__decoder": "x" * HUGE}, "model.decoder must be 'autoregressive' or 'parallel', got 'xxxx"),
        ({"data__speaker_regex": "(" + "x" * HUGE}, "(100,001 characters) is not a valid regular expression"),
        ({"data__demo__extra_voices": ["x" * HUGE]}, "' (100,000 characters) must be '<festival voice>:"),
        ({"train__" + "x" * HUGE: 1}, "train.'xxxxx"),
    ],
)
def test_a_huge_value_gives_a_one_line_message_cut_short_with_its_size(changes: dict[str, Any], message: str) -> None:
    refused = refusal(with_values(**changes))
    assert message in refused
    assert len(refused.splitlines()) == 1 and len(refused) < 1_000


def test_thousands_of_unknown_keys_are_counted_not_listed() -> None:
    refused = refusal(with_values(**{f"train__typo_{i}": 1 for i in range(HUGE)}))
    assert "and 99,995 more" in refused and len(refused) < 2_000


def test_an_integer_beyond_64_bits_is_refused_not_crashed() -> None:
    # 16**5000 is a valid YAML hex literal; as a sample rate it used to overflow a float.
    refused = refusal(with_values(features__sample_rate=16**5000))
    assert "features.sample_rate must be an integer >= 1, got an integer (about 6,021 digits)" in refused


def test_a_regular_expression_nested_too_deeply_is_refused_not_crashed() -> None:
    refused = refusal(with_values(data__speaker_regex="(" * 5000))
    assert "is not a valid regular expression: its groups are nested too deeply" in refused


# --- data.corpus ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("corpus", "why"),
    [
        ("", "it is empty (write . for the current folder)"),
        ("data/\x00corpus", "it contains a NUL byte, which no path can hold"),
        ("data/" + "c" * 300, "a name in it is 300 bytes long, and a file name can be at most 255"),
        ("a/" * 2100, "it is 4,200 bytes long, and a path can be at most 4,095"),
        ("data/\ud800", "it contains a character that no file name can hold (a lone UTF-16 surrogate)"),
    ],
)
def test_a_data_corpus_that_cannot_be_a_path_is_refused_saying_why(corpus: str, why: str) -> None:
    refused = refusal(with_values(data__corpus=corpus))
    assert refused.startswith("params.yaml: data.corpus must be the path of a folder, got ")
    assert refused.endswith(f": {why}") and len(refused) < 300


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("c" * 300, " characters) cannot be used: a name in it is 300 bytes long"),
        ("a-file", "is a file, not a folder"),
        ("data\x00corpus", "cannot be used: it contains a NUL byte"),
    ],
)
def test_a_corpus_that_is_not_a_folder_is_named_cut_short_saying_why(tmp_path: Path, name: str, why: str) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(MetadataError) as e:
        read_metadata(str(tmp_path / name), data_config(committed_params()))
    assert str(e.value).startswith("corpus '") and why in str(e.value) and len(str(e.value)) < 250


# --- which file a message names -------------------------------------------------------------------


def test_a_problem_in_a_params_file_at_another_path_names_that_file(tmp_path: Path) -> None:
    path = write_params(tmp_path / "experiments" / "fast.yaml", with_values(train__val_evry=5, eval__batch_size=0))
    with pytest.raises(ConfigError) as e:
        load_params(path)
    lines = str(e.value).splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{path}: ") for line in lines)
    assert "params.yaml" not in str(e.value)


@pytest.mark.parametrize(
    "command", ["corpus", "validate", "precompute", "train", "evaluate", "model_info", "lr_find", "doctor"]
)
def test_every_command_names_the_params_file_it_was_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = write_params(tmp_path / "experiments" / "fast.yaml", with_values(train__lr=0.0))
    assert importlib.import_module(f"pipeline.{command}").main(["--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: train.lr must be a number > 0, got 0.0" in err and "params.yaml" not in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--steps", "1", "--steps: lr_find.steps must be an integer >= 3, got 1"),
        ("--device", "gpu", "--device: train.device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    ],
)
def test_lr_find_names_the_flag_that_set_a_bad_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    from pipeline.lr_find import main

    path = write_params(tmp_path / "fast.yaml", committed_params())
    assert main(["--params", str(path), flag, value]) == 2
    assert f"lr-find: error: {message}" in capsys.readouterr().err
