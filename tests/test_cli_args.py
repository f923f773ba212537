"""Every command's number options refuse a value no run can use with a usage error naming the
option, before anything loads (pipeline/common/cli_args.py)."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("corpus", "--workers", "-3"),  # 0 means all cores; a negative count meant it silently
        ("doctor", "--min-symbol-count", "-1"),
        ("doctor", "--min-speaker-minutes", "nan"),
        ("doctor", "--overfit-steps", "-5"),
        ("doctor", "--overfit-lr", "0"),
        ("model_info", "--symbols", "0"),
        ("synth", "--batch-size", "0"),
    ],
)
def test_a_number_option_out_of_its_range_is_a_usage_error_naming_it(capsys, command, option, value):
    main = importlib.import_module(f"pipeline.{command}").main
    args = ["Hello.", option, value] if command == "synth" else [option, value]
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {value!r} is not" in err
