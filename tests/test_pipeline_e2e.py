"""End to end: `dvc repro precompute` on a tiny user corpus, in a git+dvc copy of the project."""

from __future__ import annotations

import json

from helpers import TEXTS, VENV_BIN, ran_stages, run, set_params, write_corpus
from pipeline.features.store import FeatureStore


def test_dvc_repro_builds_features_and_reruns_only_what_changed(tmp_path, repo_copy):
    repo = repo_copy
    corpus = write_corpus(tmp_path / "my_corpus", [(f"utt_{i:03d}", t) for i, t in enumerate(TEXTS)])
    (repo / "dvc.lock").unlink(missing_ok=True)  # a fresh pipeline, not the working copy's last run
    run(repo, "git", "init", "-q")
    run(repo, str(VENV_BIN / "dvc"), "init", "-q")
    # A user corpus, one worker, and an aligner trained for a token number of steps. One worker:
    # what is tested is what DVC runs and skips; a pool would start two more processes in each
    # of the three stage runs (the pools have their own tests: test_validate's command test,
    # test_precompute's pool tests, test_process_pool).
    set_params(repo, data={"corpus": str(corpus)}, features={"workers": 1}, align={"steps": 2, "device": "cpu"})
    run(repo, "git", "add", "-A")
    run(repo, "git", "-c", "user.email=test@hamgara", "-c", "user.name=test", "commit", "-qm", "tiny corpus")
    dvc = str(VENV_BIN / "dvc")

    # 1. A user corpus: validate and precompute run; the demo corpus stage is not built.
    first = run(repo, dvc, "repro", "precompute")
    assert ran_stages(first) == ["validate", "precompute"]
    assert not (repo / "data" / "corpus").exists()
    assert (repo / "data" / "features.zarr" / "zarr.json").is_file()
    report = json.loads((repo / "reports" / "precompute.json").read_text())
    assert report["utterances"] == len(TEXTS)
    assert json.loads((repo / "reports" / "validation.json").read_text())["accepted"] == len(TEXTS)
    store = FeatureStore(repo / "data" / "features.zarr")
    assert len(store) == len(TEXTS) and store.group["mel"].shape[1] == 80

    # 2. Nothing changed: nothing runs.
    second = run(repo, dvc, "repro", "precompute")
    assert ran_stages(second) == []
    assert "Stage 'precompute' didn't change, skipping" in second
    assert "Data and pipelines are up to date." in second

    # 3. A features knob changed: precompute reruns, validate (which does not read it) does not.
    manifest_before = (repo / "data" / "manifest.parquet").read_bytes()
    set_params(repo, features={"n_mels": 64})
    status = run(repo, dvc, "status", "validate", "precompute")
    assert "precompute:" in status and "validate:" not in status
    third = run(repo, dvc, "repro", "precompute")
    assert ran_stages(third) == ["precompute"]
    assert "Stage 'validate' didn't change, skipping" in third
    assert (repo / "data" / "manifest.parquet").read_bytes() == manifest_before
    assert FeatureStore(repo / "data" / "features.zarr").group["mel"].shape[1] == 64
