"""Hostile writes: every output goes through `atomic_path`, and it must never delete what is not
ours (a user's folder at an output path), must clean what a killed writer left, and must say a
full disk plainly, keeping the old output. Each test plants the fault and checks that nothing of
the user's or of earlier results was lost."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.common import atomic
from pipeline.common.atomic import (
    MARKER,
    DiskFullError,
    OutputPathError,
    atomic_path,
    clean_stale_temps,
    write_text,
    write_wav,
)
from pipeline.common.stage import EXIT_BAD_INPUT, run_stage
from pipeline.synth import main as synth_main

WORDS = "The small dog slept."  # words of the tiny store's texts: its symbol table covers them


def _users_folder(path: Path) -> Path:
    """A folder of the user's with a file in it, as found at an output path."""
    path.mkdir(parents=True)
    (path / "take1.wav").write_bytes(b"the user's take")
    return path


def _leftovers(folder: Path) -> list[str]:
    """Temporary siblings (hidden names) left in `folder`."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _dead_pid() -> int:
    """The pid of a process that has exited (a killed writer)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_users_folder_at_a_file_target_survives_and_the_error_names_it(tmp_path: Path) -> None:
    takes = _users_folder(tmp_path / "takes.wav")
    with pytest.raises(OutputPathError) as error:
        write_text(takes, "new")
    assert str(takes) in str(error.value) and "is a folder" in str(error.value)
    assert (takes / "take1.wav").read_bytes() == b"the user's take"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["link to a folder", "named pipe"])
def test_a_link_to_a_folder_or_a_special_file_at_a_file_target_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out.json"
    if kind == "link to a folder":
        target.symlink_to(_users_folder(tmp_path / "mine"), target_is_directory=True)
    else:
        os.mkfifo(target)
    with pytest.raises(OutputPathError, match=kind):
        write_text(target, "new")
    assert (target.is_symlink() and (target / "take1.wav").is_file()) or target.is_fifo()


def test_a_foreign_folder_at_a_folder_target_survives_and_no_work_starts(tmp_path: Path) -> None:
    corpus = _users_folder(tmp_path / "data" / "corpus")
    started = False
    with pytest.raises(OutputPathError, match="was not written by Hamgara; move it away") as error:
        with atomic_path(corpus, folder=True) as tmp:
            started = True
            tmp.mkdir()
    assert str(corpus) in str(error.value) and not started
    assert sorted(p.name for p in corpus.iterdir()) == ["take1.wav"]
    assert _leftovers(corpus.parent) == []


def test_our_own_folder_output_is_replaced_atomically(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for name in ("old.txt", "new.txt"):
        with atomic_path(corpus, folder=True) as tmp:
            tmp.mkdir()
            (tmp / name).write_text(name, encoding="utf-8")
    assert sorted(p.name for p in corpus.iterdir()) == sorted([MARKER, "new.txt"])
    assert _leftovers(tmp_path) == []


def test_an_empty_folder_at_a_folder_target_is_replaced(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()  # `mkdir data/corpus` by hand holds nothing to lose
    with atomic_path(corpus, folder=True) as tmp:
        tmp.mkdir()
        (tmp / "metadata.csv").write_text("a|b|c\n", encoding="utf-8")
    assert (corpus / "metadata.csv").is_file() and (corpus / MARKER).is_file()


def test_a_killed_writers_stale_temps_are_removed_on_the_next_write_and_a_live_ones_kept(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getppid()
    (tmp_path / f".best.pt.tmp-{dead}").write_bytes(b"half a checkpoint")
    (tmp_path / f".corpus.old-{dead}").mkdir()
    (tmp_path / f".best.pt.tmp-{live}").write_bytes(b"another run, still writing")
    write_text(tmp_path / "best.pt", "new")
    assert _leftovers(tmp_path) == sorted([f".best.pt.tmp-{live}", f".corpus.old-{dead}"])  # only best.pt's
    assert clean_stale_temps(tmp_path) == [tmp_path / f".corpus.old-{dead}"]
    assert _leftovers(tmp_path) == [f".best.pt.tmp-{live}"]
    assert (tmp_path / "best.pt").read_text(encoding="utf-8") == "new"


def _full_disk(monkeypatch: pytest.MonkeyPatch, free: int = 1_234_567) -> None:
    """Writes fail half-way with ENOSPC, and the filesystem reports `free` bytes left."""

    def write_bytes(self: Path, data: bytes) -> int:
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    usage = SimpleNamespace(total=10**9, used=10**9 - free, free=free)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _: usage)


def test_a_full_disk_keeps_the_old_target_leaves_no_temp_and_names_path_and_free_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "samples" / "utt.wav"
    write_wav(target, [0.1] * 100, 22050)
    before = target.read_bytes()
    _full_disk(monkeypatch)
    with pytest.raises(DiskFullError) as error:
        write_wav(target, [0.2] * 1000, 22050)
    message = str(error.value)
    assert str(target) in message and "1.2 MB free" in message and "\n" not in message
    assert target.read_bytes() == before
    assert _leftovers(target.parent) == []


def test_a_full_disk_is_one_clear_line_and_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "utt.wav"
    _full_disk(monkeypatch)
    rc = run_stage("evaluate", lambda: write_wav(target, [0.2] * 1000, 22050) or 0)
    err = capsys.readouterr().err
    assert rc == EXIT_BAD_INPUT and err.count("\n") == 1
    assert str(target) in err and "no space left" in err and "1.2 MB free" in err and "Errno" not in err


@pytest.mark.parametrize("named", [True, False], ids=["path-known", "path-unknown"])
def test_a_full_disk_met_by_a_library_is_said_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], named: bool
) -> None:
    chunk = tmp_path / "features.zarr.partial" / "mel" / "c" / "7"
    _full_disk(monkeypatch)

    def zarr_write() -> int:  # a write outside atomic_path, as zarr does into the partial store
        raise OSError(errno.ENOSPC, "No space left on device", *([str(chunk)] if named else []))

    rc = run_stage("precompute", zarr_write)
    err = capsys.readouterr().err
    assert rc == EXIT_BAD_INPUT and err.count("\n") == 1
    assert "no space left" in err and "1.2 MB free" in err and "Errno" not in err
    assert (str(chunk) in err) == named


def test_synth_onto_a_users_folder_returns_2_and_keeps_its_files(tiny_runs, tmp_path, capsys) -> None:
    takes = _users_folder(tmp_path / "takes.wav")
    checkpoint = str(tiny_runs["parallel"] / "models" / "best.pt")
    rc = synth_main([WORDS, "--checkpoint", checkpoint, "-o", str(takes), "--griffin-lim-iters", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and str(takes) in err and "is a folder" in err
    assert sorted(p.name for p in takes.iterdir()) == ["take1.wav"]
    assert (takes / "take1.wav").read_bytes() == b"the user's take"


def test_synth_of_several_lines_onto_a_file_returns_2_and_keeps_it(tiny_runs, tmp_path, capsys) -> None:
    takes = tmp_path / "takes"
    takes.write_bytes(b"the user's notes")
    lines = tmp_path / "lines.txt"
    lines.write_text(f"{WORDS}\nThe old shop was cold.\n", encoding="utf-8")
    checkpoint = str(tiny_runs["parallel"] / "models" / "best.pt")
    rc = synth_main(["--file", str(lines), "--checkpoint", checkpoint, "-o", str(takes)])
    err = capsys.readouterr().err
    assert rc == 2 and str(takes) in err and "not a folder" in err
    assert takes.read_bytes() == b"the user's notes"
