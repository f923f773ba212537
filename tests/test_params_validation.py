"""params.yaml is checked when it is loaded, before any stage does work (issue 14).

The spec, as tests: every value has the type its config's annotation says (YAML's own types:
true is not a number, "16" is not an integer, `1e-5` without a dot is text), lies within the
limit its field declares (positive counts, 0 only where it means something, 0 < lr,
probabilities in [0, 1], choices), and keys that depend on each other agree (window <= FFT,
hop <= window, fmin < fmax <= Nyquist, min < max). Each problem is one line naming the key;
a section's problems come together. `dvc exp run -S` writes its overrides into params.yaml,
so the same check covers them: the tests apply overrides with DVC's own function.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc.utils.hydra import apply_overrides
from test_house import demo_overrides

from benchmarks.decoders import setup_array
from helpers import REPO, committed_params
from pipeline import config as cfg
from pipeline.config import ConfigError, check_params, load_params
from pipeline.demo.sentences import MAX_SUPPORTED_WORDS, MIN_SUPPORTED_WORDS

SECTION_CONFIGS = [cfg.DemoConfig, cfg.ValidateConfig, cfg.DataConfig, cfg.FeaturesConfig, cfg.AlignConfig]
SECTION_CONFIGS += [cfg.TrainConfig, cfg.EvalConfig]


def with_values(**changes: Any) -> dict[str, Any]:
    """The committed params with `a__b__c=value` set at params.yaml key a.b.c."""
    params = committed_params()
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = params
        for part in path:
            node = node[part]
        node[last] = value
    return params


def refusal(params: dict[str, Any]) -> str:
    """The message check_params raises for `params` (failing the test when it passes)."""
    with pytest.raises(ConfigError) as e:
        check_params(params)
    return str(e.value)


def numeric_keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of every number in `tree` (size presets included)."""
    out = []
    for k, v in tree.items():
        if isinstance(v, dict):
            out += numeric_keys(v, f"{prefix}{k}.")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(f"{prefix}{k}")
    return out


# --- what passes ----------------------------------------------------------------------------------


def last_value_per_key(items: list[str]) -> list[str]:
    """setup.sh's last_value_per_key, run by bash."""
    script = 'source <(sed -n "/^last_value_per_key()/,/^}/p" setup.sh); last_value_per_key "$@"'
    done = subprocess.run(["bash", "-c", script, "_", *items], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def setup_sh_overrides(*arrays: str) -> list[str]:
    """The KEY=VALUE items setup.sh's run_demo passes for these arrays, one per key (its own
    last_value_per_key, on the arrays as setup_array reads them)."""
    return last_value_per_key([f"{k}={v}" for name in arrays for k, v in setup_array(name).items()])


def test_setup_sh_passes_each_key_once_with_its_last_value() -> None:
    # A preset given after CPU_DEMO overrides its keys: dvc takes one -S per key.
    items = last_value_per_key(["train.lr=1.7e-3", "train.seed=7", "model.x=a=b", "train.lr=1e-3"])
    assert items == ["train.lr=1e-3", "train.seed=7", "model.x=a=b"]  # first-seen order, last value


def setup_sh_check_overrides(items: list[str]) -> subprocess.CompletedProcess[str]:
    """setup.sh's check_overrides (what `./setup.sh repro KEY=VALUE ...` runs first), run by bash."""
    script = 'source <(sed -n "/^check_overrides()/,/^}/p" setup.sh); check_overrides "$@"'
    return subprocess.run(["bash", "-c", script, "_", *items], cwd=REPO, capture_output=True, text=True)


def test_setup_sh_accepts_the_users_key_value_overrides() -> None:
    assert setup_sh_check_overrides(["train.seed=7", "data.demo.voices=[a,b]", "model.x=a=b"]).returncode == 0


def test_setup_sh_names_an_override_that_is_not_key_value() -> None:
    for bad in ["seed=7", "train.seed", "-S", "train..seed=7"]:
        done = setup_sh_check_overrides(["train.seed=7", bad])
        assert done.returncode == 2, bad
        assert f"'{bad}' is not a KEY=VALUE override" in done.stderr


def test_setup_sh_refuses_an_override_holding_a_newline() -> None:
    # Passed on, it would become two overrides: train.seed=7 and model.decoder=parallel.
    done = setup_sh_check_overrides(["train.seed=7\nmodel.decoder=parallel"])
    assert done.returncode == 2
    assert "holds a newline or another control character" in done.stderr


def test_setup_sh_refuses_an_override_holding_a_control_character() -> None:
    done = setup_sh_check_overrides(["train.seed=7\r", "train.lr=1e-3"])
    assert done.returncode == 2
    assert "$'train.seed=7\\r' holds a newline or another control character" in done.stderr


def test_the_multi_speaker_demo_passes_every_key_once() -> None:
    items = setup_sh_overrides("CPU_DEMO", "MULTI_DEMO")
    keys = [item.split("=", 1)[0] for item in items]
    assert len(keys) == len(set(keys))
    assert keys[: len(setup_array("CPU_DEMO"))] == list(setup_array("CPU_DEMO"))


def test_every_committed_value_passes() -> None:
    check_params(committed_params())


def test_the_cpu_demo_overrides_of_setup_sh_pass(tmp_path: Path) -> None:
    # Applied the way `dvc exp run -S` applies them (train.lr=1.7e-3 becomes the float 0.0017).
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(committed_params(), sort_keys=False), encoding="utf-8")
    apply_overrides(path, [f"{k}={v}" for k, v in demo_overrides().items()])
    params = load_params(path)
    assert params["train"]["lr"] == 1.7e-3 and params["model"]["reduction"] == 3


def test_the_multi_speaker_demo_overrides_of_setup_sh_pass(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(committed_params(), sort_keys=False), encoding="utf-8")
    apply_overrides(path, setup_sh_overrides("CPU_DEMO", "MULTI_DEMO"))
    params = load_params(path)
    assert params["train"]["lr"] == 1.7e-3  # CPU_DEMO's: the multi-speaker demo trains as the single voice
    assert params["data"]["demo"]["extra_voices"] == ["kal_diphone:120", "ked_diphone:120"]
    assert params["data"]["speaker_regex"] == r"^(p\d+|demo)_"
    demo = cfg.data_config(params).demo
    assert [v[0] for v in demo.speakers()] == ["cmu_us_slt_arctic_hts", "kal_diphone", "ked_diphone"]


@pytest.mark.parametrize(
    "changes",
    [
        {"features__workers": 0},  # 0 = all cores
        {"eval__utterances": 0},  # 0 = all of them
        {"eval__samples": 0, "eval__figures": 0, "align__figures": 0},  # 0 = none
        {"train__num_workers": 0, "train__warmup_steps": 0, "train__kl_warmup_steps": 0},
        {"train__huber_delta": None},  # null = plain L1
        {"data__speaker_regex": r"^(p\d+)_"},
        {"train__device": "cuda:1", "align__device": "cpu", "eval__device": "cuda"},
        {"eval__vocoder": "models/hifigan.ts"},  # a path is a vocoder too
        {"train__lr": 1},  # an int where a float belongs is a number
        {"train__warmup_steps": 5000, "train__max_steps": 2000},  # a short run may be all warm-up
        {"train__min_lr": 0.0},
        {"features__win_length": 1024, "features__hop_length": 1024},  # the edges of the STFT rules
    ],
)
def test_sensible_values_at_the_edges_pass(changes: dict[str, Any]) -> None:
    check_params(with_values(**changes))


def test_a_whole_float_in_an_integer_field_is_kept_as_the_integer() -> None:
    built = cfg.train_config(with_values(train__batch_size=16.0))
    assert built.batch_size == 16 and type(built.batch_size) is int


# --- types ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.lr", "fast", "params.yaml: train.lr must be a number > 0, got 'fast'"),
        ("train.lr", True, "train.lr must be a number > 0, got True"),
        ("train.lr", float("nan"), "train.lr must be a number > 0, got nan"),
        ("train.batch_size", 16.5, "train.batch_size must be an integer >= 1, got 16.5"),
        ("train.batch_size", True, "train.batch_size must be an integer >= 1, got True"),
        ("train.batch_size", None, "train.batch_size must be an integer >= 1, got None"),
        ("train.batch_size", "16", "got '16' (text, not a number: write 16 without quotes)"),
        ("train.mixed_precision", 1, "train.mixed_precision must be true or false, got 1"),
        ("features.split_salt", 5, "features.split_salt must be a string, got 5"),
        ("data.speaker_regex", 5, "data.speaker_regex must be a string or null, got 5"),
        ("train.huber_delta", "0.6", "train.huber_delta must be a number > 0 or null, got '0.6'"),
        ("eval.sentences", "One sentence.", "eval.sentences must be a list of strings, got 'One sentence.'"),
        ("eval.sentences", ["Fine.", 7], "eval.sentences must be a list of strings"),
        ("model.dropout", "0.1", "model.dropout must be a number, got '0.1'"),
        ("model.sizes.tiny.d_model", 128.5, "model.sizes.tiny.d_model must be an integer, got 128.5"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(key: str, value: Any, message: str) -> None:
    assert message in refusal(with_values(**{key.replace(".", "__"): value}))


@pytest.mark.parametrize("key", numeric_keys(committed_params()))
def test_text_in_any_number_is_refused_naming_its_key(key: str) -> None:
    assert f"params.yaml: {key} must be " in refusal(with_values(**{key.replace(".", "__"): "text"}))


def test_yaml_1e_minus_5_is_text_and_the_message_says_how_to_write_it(tmp_path: Path) -> None:
    # PyYAML reads a float only with a dot and a signed exponent: `1e-5` is the string '1e-5'.
    assert yaml.safe_load("lr: 1e-5") == {"lr": "1e-5"}
    params = with_values(train__lr="@LR@")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False).replace("'@LR@'", "1e-5"), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_params(path)
    assert "train.lr must be a number > 0, got '1e-5'" in str(e.value)
    assert "1.0e-5" in str(e.value)
    (tmp_path / "fixed.yaml").write_text(path.read_text().replace("lr: 1e-5", "lr: 1.0e-5"), encoding="utf-8")
    assert load_params(tmp_path / "fixed.yaml")["train"]["lr"] == 1e-5


# --- ranges and choices ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        # counts
        ("train.max_steps", 0, "train.max_steps must be an integer >= 1, got 0"),
        ("train.batch_size", -4, "train.batch_size must be an integer >= 1, got -4"),
        ("features.n_fft", 0, "features.n_fft must be an integer >= 1, got 0"),
        ("features.hop_length", 0, "features.hop_length must be an integer >= 1"),
        ("features.n_mels", 0, "features.n_mels must be an integer >= 1"),
        ("features.sample_rate", 0, "features.sample_rate must be an integer >= 1"),
        ("align.steps", 0, "align.steps must be an integer >= 1"),
        ("data.demo.utterances", 0, "data.demo.utterances must be an integer >= 1"),
        ("train.restart_period", 0, "train.restart_period must be an integer >= 1"),
        ("model.reduction", 0, "model.reduction must be an integer >= 1, got 0"),
        ("model.attention_window", 0, "model.attention_window must be an integer >= 1, got 0"),
        ("model.sizes.tiny.encoder_layers", 0, "model.sizes.tiny.encoder_layers must be an integer >= 1"),
        # 0 means something here, below 0 does not
        ("features.workers", -1, "features.workers must be an integer >= 0 (0 = all cores), got -1"),
        ("eval.utterances", -1, "eval.utterances must be an integer >= 0 (0 = all of them)"),
        ("align.figures", -2, "align.figures must be an integer >= 0 (0 = none)"),
        ("train.seed", -1, "train.seed must be an integer >= 0"),
        # learning rates and other positive amounts
        ("train.lr", 0.0, "train.lr must be a number > 0, got 0.0"),
        ("align.lr", -0.002, "align.lr must be a number > 0"),
        ("train.grad_clip", 0.0, "train.grad_clip must be a number > 0"),
        ("features.log_clamp", 0.0, "features.log_clamp must be a number > 0"),
        ("train.huber_delta", 0.0, "train.huber_delta must be a number > 0 or null"),
        ("align.blank_logprob", 0.5, "align.blank_logprob must be a number <= 0"),
        ("model.max_length_factor", 0.5, "model.max_length_factor must be a number >= 1"),
        # probabilities and shares
        ("model.dropout", 1.5, "model.dropout must be a number in [0, 1), got 1.5"),
        ("model.prenet_dropout", -0.1, "model.prenet_dropout must be a number in [0, 1)"),
        ("features.val_share", 1.0, "features.val_share must be a number in [0, 1), got 1.0"),
        ("train.mel_label_smoothing", 1.5, "train.mel_label_smoothing must be a number in [0, 1]"),
        ("train.stop_label_smoothing", -0.1, "train.stop_label_smoothing must be a number in [0, 1]"),
        ("data.validate.max_clip_share", 2.0, "data.validate.max_clip_share must be a number in [0, 1]"),
        ("train.adaptive_strength", 1.5, "train.adaptive_strength must be a number in [0, 1] (0 = no rebalancing)"),
        ("eval.curve_smoothing", 0.0, "eval.curve_smoothing must be a number in (0, 1]"),
        # choices
        ("features.frontend", "graphemes", "features.frontend must be one of phonemes, characters, got 'graphemes'"),
        ("model.decoder", "diffusion", "model.decoder must be 'autoregressive' or 'parallel', got 'diffusion'"),
        ("train.lr_schedule", "step", "train.lr_schedule must be one of cosine_restarts, noam, got 'step'"),
        ("eval.recognizer", "whisper", "eval.recognizer must be one of pocketsphinx, none, got 'whisper'"),
        ("train.device", "gpu", "train.device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("align.device", "cuda:x", "align.device must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_a_value_out_of_range_is_refused_naming_the_key_and_the_range(key: str, value: Any, message: str) -> None:
    assert message in refusal(with_values(**{key.replace(".", "__"): value}))


def test_every_number_of_every_section_declares_its_limit() -> None:
    # One place per knob: the field itself says which values it takes.
    bare = [
        f"{c.SECTION}.{f.name}"
        for c in SECTION_CONFIGS
        for f in dataclasses.fields(c)
        if f.type in ("int", "float", "float | None") and "limit" not in f.metadata
    ]
    assert not bare, bare


def test_the_demo_word_limits_are_the_sentence_grammars() -> None:
    limits = {f.name: f.metadata["limit"] for f in dataclasses.fields(cfg.DemoConfig) if f.name.endswith("_words")}
    assert {(lim.low, lim.high) for lim in limits.values()} == {(MIN_SUPPORTED_WORDS, MAX_SUPPORTED_WORDS)}


# --- cross-key rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"features__win_length": 2048}, "features.win_length (2048) must be <= n_fft (1024)"),
        ({"features__hop_length": 2000}, "features.hop_length (2000) must be <= win_length (1024)"),
        ({"features__fmin": 8000.0}, "features.fmin (8000) must be below fmax (8000)"),
        ({"features__fmax": 12000.0}, "features.fmax (12000) must be <= half the sample rate (Nyquist, 11025)"),
        ({"data__validate__min_duration": 20.0}, "data.validate.min_duration (20) must be below max_duration (20)"),
        (
            {"data__demo__min_words": 20, "data__demo__max_words": 5},
            "data.demo.min_words (20) must be <= max_words (5)",
        ),
        ({"train__min_lr": 1.0e-3}, "train.min_lr (0.001) must be <= lr (8e-05)"),
        ({"model__sizes__tiny__heads": 3}, "model.sizes.tiny.heads must divide d_model (128), got 3"),
        ({"data__speaker_regex": "^(p\\d+_"}, "data.speaker_regex '^(p\\\\d+_' is not a valid regular expression"),
    ],
)
def test_keys_that_depend_on_each_other_must_agree(changes: dict[str, Any], message: str) -> None:
    assert message in refusal(with_values(**changes))


def test_every_size_preset_is_checked_not_only_the_chosen_one() -> None:
    # `-S model.size=base` must not be the moment a broken preset is found.
    assert "model.sizes.base.ff must be an integer >= 1, got 0" in refusal(with_values(model__sizes__base__ff=0))


# --- how problems are reported --------------------------------------------------------------------


def test_every_problem_is_reported_at_once_one_line_each() -> None:
    params = with_values(
        train__lr="fast",
        train__batch_size=0,
        features__frontend="graphemes",
        eval__samples=-1,
        data__validate__max_silence_share=1.5,
        model__dropout=2.0,
    )
    lines = refusal(params).splitlines()
    keys = ["train.lr", "train.batch_size", "features.frontend", "eval.samples", "data.validate.max_silence_share"]
    keys += ["model.dropout"]
    assert len(lines) == len(keys)
    for key in keys:
        assert sum(line.startswith(f"params.yaml: {key} must be") for line in lines) == 1, key


def test_an_unknown_section_names_the_nearest_known_one() -> None:
    params = committed_params()
    params["trian"] = params.pop("train")
    assert "trian (did you mean train?)" in refusal(params)


def test_a_config_changed_in_code_is_checked_too() -> None:
    # dataclasses.replace builds the config again: a bad value cannot slip in after loading.
    with pytest.raises(ConfigError, match=r"train\.batch_size must be an integer >= 1, got 0"):
        dataclasses.replace(cfg.train_config(committed_params()), batch_size=0)


def test_load_params_checks_before_returning(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_values(eval__batch_size=0), sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"eval\.batch_size must be an integer >= 1, got 0"):
        load_params(path)


# --- dvc exp run -S -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.batch_size=0", "params.yaml: train.batch_size must be an integer >= 1, got 0"),
        ('train.batch_size="16"', "train.batch_size must be an integer >= 1, got '16' (text, not a number"),
        ("train.batch_size=true", "train.batch_size must be an integer >= 1, got True"),
        ("train.lr=fast", "params.yaml: train.lr must be a number > 0, got 'fast'"),
        ("+train.val_evry=5", "train.val_evry (did you mean train.val_every?)"),
    ],
)
def test_an_override_from_dvc_exp_run_is_checked_like_any_value(tmp_path: Path, override: str, message: str) -> None:
    # What `dvc exp run -S <override>` does before the stages run: rewrite params.yaml.
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(committed_params(), sort_keys=False), encoding="utf-8")
    apply_overrides(path, [override])
    with pytest.raises(ConfigError) as e:
        load_params(path)
    assert message in str(e.value)
