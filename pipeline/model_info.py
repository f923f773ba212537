"""`hamgara model-info`: the model's parameter counts for every size preset and decoder.

The vocabulary (symbols, speakers, languages, mel channels) comes from data/features.zarr
when it exists, since it decides the embedding sizes; otherwise from --symbols and defaults.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.tts import HamgaraTTS, parameter_counts
from pipeline.common.cli_args import positive_int
from pipeline.common.stage import run_stage
from pipeline.config import load_params, model_config


def main(argv: list[str] | None = None) -> int:
    """Print a table of parameter counts; the configured model is marked with '*'."""
    ap = argparse.ArgumentParser(
        prog="hamgara model-info", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--features", default="data/features.zarr", help="features store giving the vocabulary")
    ap.add_argument("--symbols", type=positive_int, default=80, help="symbol count when there is no features store")
    args = ap.parse_args(argv)
    return run_stage("model-info", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    n_symbols, n_speakers, n_languages, n_mels = args.symbols, 1, 1, params["features"]["n_mels"]
    source = f"--symbols {args.symbols} (no {args.features})"
    if (Path(args.features) / "zarr.json").is_file():
        from pipeline.features.store import FeatureStore

        attrs = FeatureStore(args.features).attrs
        n_symbols, n_speakers = len(attrs["symbols"]), len(attrs["speakers"])
        n_languages, n_mels = len(attrs["languages"]), attrs["mel"]["n_mels"]
        source = args.features
    print(
        f"vocabulary: {n_symbols} symbols, {n_speakers} speaker(s), {n_languages} language(s), {n_mels} mels [{source}]"
    )
    configured = (params["model"]["size"], params["model"]["decoder"])
    header = f"{'':2}{'size':6} {'decoder':15} {'encoder':>11} {'reference':>10} {'duration':>9} {'decoder':>11} {'postnet':>10} {'total':>11}"
    print(header)
    for size in params["model"]["sizes"]:
        for decoder in ("autoregressive", "parallel"):
            p = {**params, "model": {**params["model"], "size": size, "decoder": decoder}}
            counts = parameter_counts(HamgaraTTS(model_config(p, n_symbols, n_speakers, n_languages, n_mels)))
            mark = "*" if (size, decoder) == configured else " "
            print(
                f"{mark:2}{size:6} {decoder:15} {counts['encoder']:>11,} {counts['reference']:>10,} "
                f"{counts['duration']:>9,} {counts['decoder']:>11,} {counts['postnet']:>10,} {counts['total']:>11,}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
