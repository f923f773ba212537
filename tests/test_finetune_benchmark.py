"""benchmarks/finetune.py: the same held-out utterances in every size, when a run has reached the target, and the preset docs/fine-tuning.md documents."""

from __future__ import annotations

import re

import pytest
import soundfile as sf

from benchmarks.finetune import FINETUNE, choose, extends, first_reaching, subset
from helpers import REPO, write_corpus
from pipeline.features.split import VAL, split_of


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(
        tmp_path / "voice", [(f"demo_{i:04d}", "The small dog slept near the door.") for i in range(60)]
    )


def train_seconds(corpus, rows, held) -> float:
    return sum(sf.info(str(corpus / "wavs" / f"{r[0]}.wav")).duration for r in rows if r[0] not in held)


def test_each_size_holds_the_same_held_out_utterances_and_its_minutes_of_training_audio(corpus) -> None:
    small, large = choose(corpus, 0.3, 0.2, "hamgara"), choose(corpus, 0.9, 0.2, "hamgara")
    held = {r[0] for r in large if split_of(r[0], 0.2, "hamgara") == VAL}
    assert held and held == {r[0] for r in small if split_of(r[0], 0.2, "hamgara") == VAL}
    assert {r[0] for r in small} < {r[0] for r in large}  # more minutes add utterances, never swap them
    assert 0.9 * 18 <= train_seconds(corpus, small, held) <= 18
    assert 0.9 * 54 <= train_seconds(corpus, large, held) <= 54


def test_a_corpus_too_small_for_the_minutes_asked_is_refused(corpus) -> None:
    with pytest.raises(SystemExit, match="raise --utterances"):
        choose(corpus, 30, 0.2, "hamgara")


def test_a_subset_is_a_corpus_of_exactly_those_rows(corpus, tmp_path) -> None:
    rows = choose(corpus, 0.3, 0.2, "hamgara")
    out = subset(corpus, rows, tmp_path / "sub")
    assert (out / "metadata.csv").read_text().splitlines() == ["|".join(r) for r in rows]
    assert sorted(p.stem for p in (out / "wavs").iterdir()) == sorted(r[0] for r in rows)


def test_the_first_point_at_or_under_the_target_is_the_one_reached() -> None:
    points = [{"step": 100, "wer_gap": 0.6}, {"step": 250, "wer_gap": None}, {"step": 500, "wer_gap": 0.25}]
    assert first_reaching(points, 0.25) == points[2]  # at the target counts; an unscored point does not
    assert first_reaching(points[:2], 0.25) is None


def test_more_eval_steps_extend_a_run_only_until_it_reaches_the_target() -> None:
    unreached = {"points": [{"step": 500, "wer_gap": 0.4}, {"step": 1000, "wer_gap": 0.31}]}
    reached = {"points": [{"step": 500, "wer_gap": 0.3}, {"step": 1000, "wer_gap": 0.14}]}
    assert extends(unreached, [100, 1000, 4000], 0.25, stop_at_target=True)
    assert not extends(unreached, [100, 1000], 0.25, stop_at_target=True)  # nothing past its last point
    assert not extends(reached, [100, 1000, 4000], 0.25, stop_at_target=True)
    assert extends(reached, [100, 1000, 4000], 0.25, stop_at_target=False)


def test_the_fine_tuning_page_documents_the_measured_fine_tuning_preset() -> None:
    # The preset is what the benchmark measured; the fine-tuning page's command must be that
    # preset, so a change to one without the other fails here.
    page = (REPO / "docs" / "fine-tuning.md").read_text(encoding="utf-8")
    line = next(line for line in page.splitlines() if line.rstrip().endswith("# the fine-tuning preset"))
    documented = dict(item.split("=", 1) for item in re.findall(r"-S (\S+)", line))
    assert documented == {"data.corpus": "/path/to/new_voice", "train.init_from": "pretrained/base.pt", **FINETUNE}
