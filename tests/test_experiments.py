"""`dvc exp run -S train.mel_loss_weight=...` and `dvc metrics diff` compare training runs."""

from __future__ import annotations

import json

from helpers import TEXTS, TINY_VOCODER, VENV_BIN, ran_stages, run, set_params, table_steps, write_corpus
from helpers import TINY_SIZE as TINY


def test_an_experiment_with_another_mel_weight_trains_afresh_and_metrics_differ(tmp_path, repo_copy):
    repo = repo_copy
    corpus = write_corpus(tmp_path / "corpus", [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS)])
    (repo / "dvc.lock").unlink(missing_ok=True)
    dvc = str(VENV_BIN / "dvc")
    run(repo, "git", "init", "-q")
    run(repo, dvc, "init", "-q")
    set_params(
        repo,
        data={"corpus": str(corpus)},
        features={"workers": 1, "val_share": 0.25},
        align={"steps": 2, "device": "cpu"},
        model={"sizes": {"tiny": TINY, "small": TINY, "base": TINY}},
        train={
            "max_steps": 4,
            "batch_size": 3,
            "grad_accumulation": 1,
            "num_workers": 0,
            "val_every": 2,
            "checkpoint_every": 100,
            "device": "cpu",
            "lr": 1e-3,
            "warmup_steps": 2,
        },
        vocoder={**TINY_VOCODER, "max_steps": 3, "val_every": 3},
        # Three evaluations run here, each a fresh process: one validation utterance each, and
        # no recognizer (its word error rates are tests/test_evaluate.py's; here they would be
        # most of the evaluate stage's time, and no assertion reads them).
        eval={
            "griffin_lim_iters": 4,
            "device": "cpu",
            "utterances": 1,
            "recognizer": "none",
            "samples": 1,
            "figures": 1,
            "sentences": ["The small dog slept."],
        },
    )
    run(repo, "git", "add", "-A")
    run(repo, "git", "-c", "user.email=t@hamgara", "-c", "user.name=t", "commit", "-qm", "tiny")

    first = run(repo, dvc, "repro", "evaluate")
    assert ran_stages(first) == ["validate", "precompute", "train", "vocoder", "evaluate"]
    assert (repo / "reports" / "summary.md").is_file() and list((repo / "reports" / "samples").glob("*.wav"))
    run(repo, "git", "add", "-A")
    run(repo, "git", "-c", "user.email=t@hamgara", "-c", "user.name=t", "commit", "-qm", "baseline run")
    base = json.loads((repo / "dvclive" / "metrics.json").read_text())

    exp = run(repo, dvc, "exp", "run", "evaluate", "-S", "train.mel_loss_weight=35")
    assert ran_stages(exp) == ["train", "evaluate"]  # only the stages downstream of the changed param
    assert "not resuming" in exp  # the baseline's checkpoint is kept aside, the run starts fresh
    other = json.loads((repo / "dvclive" / "metrics.json").read_text())
    assert other["step"] == base["step"]
    assert other["train"]["weighted"]["mel"] != base["train"]["weighted"]["mel"]

    diff = run(repo, dvc, "metrics", "diff", "--json")
    changed = json.loads(diff)["dvclive/metrics.json"]
    assert "train.weighted.mel" in changed
    assert "mcd.model" in json.loads(diff)["reports/eval.json"]
    assert (repo / "models" / "vocoder.pt").is_file()  # eval.vocoder: trained heard the run through it

    # Fine-tuning from the run just made: setting train.init_from reruns train (and what
    # follows), which starts from the base's weights instead of resuming or starting from zero.
    (repo / "pretrained" / "base.pt").write_bytes((repo / "models" / "best.pt").read_bytes())
    vocoder_history = table_steps(repo / "dvclive_vocoder")
    tuned = run(repo, dvc, "exp", "run", "evaluate", "-S", "train.init_from=pretrained/base.pt")
    # The vocoder stage depends on pretrained/ too (vocoder.init_from's bases live there): it
    # reruns, finds its run complete and rewrites nothing — its history included, which DVC
    # would delete before the rerun were it not persisted.
    assert ran_stages(tuned) == ["train", "vocoder", "evaluate"]
    assert "starting from the weights of pretrained/base.pt" in tuned
    assert_history_kept(vocoder_history, table_steps(repo / "dvclive_vocoder"))

    # A finished run rerun for a code dependency that changes nothing (DVC cannot know that):
    # train resumes last.pt with no step left to log, and its history must still be there.
    train_history = table_steps(repo / "dvclive")
    with open(repo / "pipeline" / "common" / "run_log.py", "a", encoding="utf-8") as f:
        f.write("# an edit that changes no behaviour\n")
    rerun = run(repo, dvc, "repro", "train")
    assert ran_stages(rerun) == ["train"]
    assert table_steps(repo / "dvclive") == train_history


def assert_history_kept(before: dict[str, list[int]], after: dict[str, list[int]]) -> None:
    """Every dvclive table of `before` is still there with its rows (a rerun may add rows)."""
    assert before, "no history to compare"
    for name, steps in before.items():
        assert after.get(name, [])[: len(steps)] == steps, f"{name}: {steps} -> {after.get(name)}"
