"""Precompute throughput against a plain serial librosa loop, and peak memory vs corpus size.

    python -m benchmarks.precompute_throughput [--manifest data/manifest.parquet] [--throughput-repeat 4] [--repeat 10]

1. Throughput: the feature half of Hamgara's precompute (parallel: phonemes, audio, mels
   into zarr; `features_seconds` of its report, the aligner excluded) and a serial librosa
   loop (load+resample, trim, peak-normalize, mel, log) over the same files, in one run, on
   the corpus repeated `--throughput-repeat` times (so that start-up costs, a second or so
   for the worker pool, do not dominate a 3-second job); reports utterances/s, seconds of
   audio per second and the ratio.
2. Memory: peak resident memory of the whole precompute (features + aligner training and
   extraction; main process and the largest worker) on the corpus and on the corpus
   repeated `--repeat` times, each in a fresh subprocess; bounded memory means the ratio
   stays near 1 while the data grows `--repeat`-fold.
Prints a table and writes JSON (default benchmarks/results/precompute.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd

from pipeline.common.atomic import write_json
from pipeline.config import align_config, features_config, load_params
from pipeline.features.build import precompute

REPO = Path(__file__).resolve().parents[1]


def librosa_serial(paths: list[str], cfg) -> float:
    """The baseline: one file after another with librosa only. Returns seconds of audio made."""
    audio_seconds = 0.0
    for p in paths:
        y, _ = librosa.load(p, sr=cfg.sample_rate, mono=True)
        y, _ = librosa.effects.trim(y, top_db=cfg.trim_top_db, frame_length=1024, hop_length=256)
        y = y * (cfg.peak_norm / max(float(np.abs(y).max()), 1e-9))
        pad = (cfg.n_fft - cfg.hop_length) // 2
        mel = librosa.feature.melspectrogram(
            y=np.pad(y, (pad, pad), mode="reflect"),
            sr=cfg.sample_rate,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            center=False,
            power=1.0,
            n_mels=cfg.n_mels,
            fmin=cfg.fmin,
            fmax=cfg.fmax,
        )
        np.log(np.maximum(mel, cfg.log_clamp))
        audio_seconds += len(y) / cfg.sample_rate
    return audio_seconds


def repeated_manifest(manifest: Path, repeat: int, out: Path) -> Path:
    """The manifest with every row repeated `repeat` times under new ids (same audio files)."""
    df = pd.read_parquet(manifest)
    parts = [df.assign(id=df["id"] + (f"_r{k}" if k else "")) for k in range(repeat)]
    pd.concat(parts, ignore_index=True).to_parquet(out, index=False)
    return out


def peak_memory_run(manifest: Path, params: Path, workdir: Path) -> dict:
    """Run precompute in a fresh subprocess; its peak RSS (self + workers) in MiB."""
    code = (
        "import json,resource,sys;from pathlib import Path;"
        "from pipeline.config import align_config,features_config,load_params;"
        "from pipeline.common.runtime import limit_heap_fragmentation;from pipeline.features.build import precompute;limit_heap_fragmentation();"
        f"p=load_params({str(params)!r});"
        f"r=precompute(Path({str(manifest)!r}),Path({str(workdir / 'f.zarr')!r}),features_config(p),align_config(p),progress=False);"
        "s=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024;c=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024;"
        "print(json.dumps({'utterances':r['utterances'],'seconds':r['seconds'],'main_peak_mib':round(s,1),'worker_peak_mib':round(c,1)}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", default=str(REPO / "data/manifest.parquet"))
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--repeat", type=int, default=10, help="corpus multiple for the memory run")
    ap.add_argument("--throughput-repeat", type=int, default=4, help="corpus multiple for the throughput run")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/precompute.json"))
    args = ap.parse_args(argv)
    params = load_params(args.params)
    cfg = features_config(params)
    manifest = Path(args.manifest)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        timed = repeated_manifest(manifest, args.throughput_repeat, tmp / "timed.parquet")
        paths = pd.read_parquet(timed)["audio"].tolist()
        report = precompute(timed, tmp / "a.zarr", cfg, align_config(params), progress=False)
        ours_s = report["features_seconds"]
        t0 = time.perf_counter()
        base_audio = librosa_serial(paths, cfg)
        base_s = time.perf_counter() - t0
        audio_s = report["hours"] * 3600
        m1 = peak_memory_run(manifest, Path(args.params), tmp / "m1")
        big = repeated_manifest(manifest, args.repeat, tmp / "big.parquet")
        m10 = peak_memory_run(big, Path(args.params), tmp / "m10")
    result = {
        "machine": f"{os.cpu_count()} cores, {sys.platform}",
        "utterances": len(paths),
        "throughput_repeat": args.throughput_repeat,
        "audio_minutes": round(audio_s / 60, 2),
        "hamgara_seconds": round(ours_s, 2),
        "librosa_serial_seconds": round(base_s, 2),
        "hamgara_utt_per_s": round(len(paths) / ours_s, 2),
        "librosa_serial_utt_per_s": round(len(paths) / base_s, 2),
        "hamgara_audio_s_per_s": round(audio_s / ours_s, 1),
        "librosa_serial_audio_s_per_s": round(base_audio / base_s, 1),
        "speedup": round(base_s / ours_s, 2),
        "workers": cfg.workers,
        "memory_x1": m1,
        f"memory_x{args.repeat}": m10,
        "memory_growth": round(
            (m10["main_peak_mib"] + m10["worker_peak_mib"]) / (m1["main_peak_mib"] + m1["worker_peak_mib"]), 3
        ),
    }
    write_json(args.out, result)
    print(f"{'':28s}{'hamgara':>12s}{'librosa serial':>16s}")
    print(f"{'utterances/s':28s}{result['hamgara_utt_per_s']:>12}{result['librosa_serial_utt_per_s']:>16}")
    print(f"{'audio seconds/s':28s}{result['hamgara_audio_s_per_s']:>12}{result['librosa_serial_audio_s_per_s']:>16}")
    print(f"speedup (same files, one run): {result['speedup']}x")
    print(
        f"peak memory x1  ({m1['utterances']} utt): main {m1['main_peak_mib']} MiB, largest worker {m1['worker_peak_mib']} MiB"
    )
    print(
        f"peak memory x{args.repeat} ({m10['utterances']} utt): main {m10['main_peak_mib']} MiB, largest worker {m10['worker_peak_mib']} MiB"
    )
    print(f"memory growth for {args.repeat}x the data: {result['memory_growth']}x -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
