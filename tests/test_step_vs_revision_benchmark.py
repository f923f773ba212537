"""benchmarks/step_vs_revision.py: each side times its own checkout's demo configuration."""

from __future__ import annotations

import yaml

from benchmarks.step_vs_revision import REPO, demo_params


def test_a_side_gets_its_checkouts_demo_overrides_then_its_own(tmp_path) -> None:
    out = tmp_path / "params.yaml"
    applied = demo_params(REPO, ["model.attention_dropout=0", "train.batch_size=8"], out)
    written = yaml.safe_load(out.read_text())
    assert written["train"]["lr"] == 0.0017  # setup.sh's CPU_DEMO, read as DVC reads 1.7e-3
    assert written["train"]["batch_size"] == 8  # the side's own override wins over the demo's 16
    assert written["model"]["attention_dropout"] == 0
    assert applied["train.max_steps"] == "4400"
