"""The CUDA path checked on a GPU in one run: mixed precision, throughput, GPU utilisation and
the real train stage, written for the few minutes a lent GPU gives.

    python -m benchmarks.cuda_check --out DIR [--budget 420] [--train-seconds 200] [--device cuda]

Sections, in this order (each records its figures or its error, and the JSON in DIR is rewritten
after each, so a run cut short keeps what it measured):
1. environment: torch, CUDA, the GPU, bf16 support, the driver, TF32 settings.
2. precision: the demo's configuration (params.yaml + setup.sh's CPU_DEMO) from the same initial
   weights under fp32, bf16 and fp16 (the fp16 path with GradScaler is what a GPU without bf16
   takes; it is forced here by answering "no bf16" to the Trainer) and fp32 on the CPU. (a) The
   teacher-forced loss of one batch in eval mode at the initial weights: the relative difference
   of each precision against CUDA fp32 is rounding alone. (b) `--precision-steps` real training
   steps on the same batches: finite, skipped steps, and the mean loss of the last ten against
   CUDA fp32's (dropout draws the same masks on one device, so bf16/fp16 against fp32 differ by
   rounding; the CPU draws other masks).
3. train stage: `python -m pipeline.train` on the demo's configuration (bf16 by
   train.mixed_precision), stopped by SIGTERM after `--train-seconds` if not done (the loop saves
   last.pt, as on a user's Ctrl-C); steps, steps/s, best val_mel_loss, peak memory and utilisation
   from dvclive. models/ and dvclive/ are packed into DIR/train_run.tar.gz so evaluate can score
   the GPU-trained checkpoint on a CPU machine.
4. lr-find on the GPU (the demo's configuration): its suggestion and seconds.
5. throughput: benchmarks/train_throughput.py's measurement for each decoder x size x precision
   at `--batch-size`, plus the GPU-trained checkpoint's synthesis real-time factor.
6. vocoder: the vocoder stage's generator trained `--vocoder-steps` steps on the GPU (bf16 by
   vocoder.mixed_precision), steps/s, and copy synthesis of 12 validation recordings scored as
   benchmarks/vocoder.py scores it (PESQ-WB, ESTOI, MCD; Griffin-Lim beside it): what a GPU
   buys the vocoder per minute (docs/vocoder.md).
7. recipe: the seed recipe's own configuration — params.yaml as committed (batch 48, grad
   accumulation 2, `train.num_workers` loader processes, mixed precision) at `model.size: base`,
   not the CPU demo's: (a) the real train stage for `--recipe-seconds` (SIGTERM after), its
   steps/s and the GPU utilisation the loop logged per step (train/gpu_utilization, NVML), the
   first `RECIPE_WARM_STEPS` left out; (b) in this process, `--steps` steps of the real Trainer
   on preloaded batches of that configuration, eager and under `torch.compile(dynamic=True)`,
   stepped as the train loop steps (no host read inside a step, one read every
   `train.log_every` steps), each with nvidia-smi sampled: steps/s, utilisation, the first compiled step's seconds and the
   loss rows. It answers the recipe's "GPU utilization should be >70%". CUDA graphs are not
   tried: every batch has its own padded lengths, and a captured graph replays one shape.
On request (`--sections ...,step_times`): each of `--probes` (decoder:amp:cudnn:profile) in a fresh
process times twelve steps on batch shapes it has not seen, then the same again, with
torch.profiler's top operators of the first steps: what a new shape costs under each precision
(it found the cuDNN attention backend's per-shape set-up; docs/measurements.md, "The CUDA path, measured").
Sections past `--budget` seconds are skipped and said so. Prints a short table last.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import yaml

from benchmarks.decoders import cpu_demo, parse_sets, with_overrides
from benchmarks.train_throughput import (
    GpuSampler,
    build_trainer,
    params_for,
    preload,
    sync,
    synthesis_rtf,
    time_training,
    timed_steps,
)
from model.tts import TTSBatch
from pipeline.common.atomic import write_json
from pipeline.common.runtime import resolve_device
from pipeline.config import store_model_config
from pipeline.features.split import TRAIN
from pipeline.features.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]


def demo_params(params_path: Path) -> dict[str, Any]:
    """params.yaml with setup.sh's CPU_DEMO overrides: the configuration the demo trains."""
    return with_demo_overrides(yaml.safe_load(params_path.read_text(encoding="utf-8")))


def with_demo_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """A copy of `params` with setup.sh's CPU_DEMO overrides."""
    return with_overrides(params, cpu_demo())


def environment() -> dict[str, Any]:
    """What ran: torch, CUDA, the GPU and its driver, and the TF32 switches that change fp32 maths."""
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cpu_count": os.cpu_count(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }
    if torch.cuda.is_available():
        env.update(
            device=torch.cuda.get_device_name(0),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            bf16_supported=torch.cuda.is_bf16_supported(),
            memory_gib=torch.cuda.get_device_properties(0).total_memory / 2**30,
            nccl=".".join(map(str, torch.cuda.nccl.version())),
        )
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version,clocks.sm,clocks.mem", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        env["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    return env


# name -> (device, mixed precision, answer of torch.cuda.is_bf16_supported); None: the real answer.
PRECISIONS: dict[str, tuple[str, bool, bool | None]] = {
    "cuda_fp32": ("cuda", False, None),
    "cuda_bf16": ("cuda", True, True),
    "cuda_fp16": ("cuda", True, False),
    "cpu_fp32": ("cpu", False, None),
}


def _trainer_for(params: dict[str, Any], attrs: dict[str, Any], device: str, amp: bool, bf16: bool | None) -> Any:
    p = copy.deepcopy(params)
    p["train"]["mixed_precision"] = amp
    patch = mock.patch("torch.cuda.is_bf16_supported", return_value=bf16) if bf16 is not None else nullcontext()
    with patch:
        return build_trainer(p, store_model_config(p, attrs), torch.device(device))


def eval_loss(trainer: Any, batch: TTSBatch) -> float:
    """The teacher-forced total loss of `batch` in eval mode, under the trainer's precision."""
    trainer.model.eval()
    torch.manual_seed(0)  # the prenet's dropout stays on in eval mode: the same draw each time
    with torch.no_grad():
        terms, _ = trainer._forward(batch.to(trainer.device), None, 1.0)
    return float(terms.total)


def precision_agreement(params: dict[str, Any], store: Path, steps: int, names: list[str]) -> dict[str, Any]:
    """Section 2: initial-weights loss and a short training run under each precision."""
    attrs = FeatureStore(store).attrs
    cfg = params["train"]
    batches = preload(store, TRAIN, cfg["batch_size"], cfg["seed"], steps)
    out: dict[str, Any] = {"steps": steps, "batch_size": cfg["batch_size"], "runs": {}}
    for name in names:
        device, amp, bf16 = PRECISIONS[name]
        trainer = _trainer_for(params, attrs, device, amp, bf16)
        initial = eval_loss(trainer, batches[0])
        losses, norms = [], []
        t0 = time.perf_counter()
        for b in batches:
            log = trainer.train_step([b.to(trainer.device)])
            losses.append(log.get("loss", float("nan")))
            norms.append(log["grad_norm"])
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        out["runs"][name] = {
            "amp_dtype": str(trainer.dtype).replace("torch.", "") if trainer.dtype else "fp32",
            "grad_scaler": trainer.scaler.is_enabled(),
            "initial_eval_loss": initial,
            "losses": losses,
            "grad_norms": norms,
            "skipped_steps": trainer.skipped,
            "all_finite": all(math.isfinite(x) for x in losses),
            "last10_mean_loss": sum(losses[-10:]) / len(losses[-10:]),
            "steps_per_s": steps / (time.perf_counter() - t0),
        }
    ref = out["runs"].get("cuda_fp32") or next(iter(out["runs"].values()))
    for run in out["runs"].values():
        run["initial_eval_rel_diff"] = abs(run["initial_eval_loss"] - ref["initial_eval_loss"]) / abs(
            ref["initial_eval_loss"]
        )
        run["last10_rel_diff"] = abs(run["last10_mean_loss"] - ref["last10_mean_loss"]) / abs(ref["last10_mean_loss"])
    return out


def train_stage(
    params: dict[str, Any], store: Path, work: Path, seconds: float, out_dir: Path, archive: bool = True
) -> dict[str, Any]:
    """Section 3: the real train stage in `work`, SIGTERM after `seconds`; its figures (and,
    with `archive`, the run packed into out_dir/train_run.tar.gz)."""
    work.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    params_file = work / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    log_path = out_dir / "train.log"
    cmd = [sys.executable, "-m", "pipeline.train", "--params", str(params_file), "--features", str(store)]
    cmd += ["--models", str(work / "models"), "--live", str(work / "dvclive")]
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        try:
            rc = proc.wait(timeout=seconds)
            stopped = False
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # as a user's Ctrl-C: last.pt is saved
            rc = proc.wait(timeout=120)
            stopped = True
    wall = time.perf_counter() - t0
    result: dict[str, Any] = {"returncode": rc, "stopped_by_sigterm": stopped, "wall_seconds": wall}
    metrics_path = work / "dvclive" / "metrics.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        result["metrics"] = metrics
        result["steps"] = int(metrics.get("step", -1)) + 1
        result["steps_per_s"] = result["steps"] / wall
    tail = log_path.read_text(errors="replace").replace("\r", "\n").splitlines()
    result["log_tail"] = [line for line in tail if line.strip()][-5:]
    if not archive:
        return result
    with tarfile.open(out_dir / "train_run.tar.gz", "w:gz") as tar:
        for name in ("models/best.pt", "dvclive", "params.yaml"):
            if (work / name).exists():
                tar.add(work / name, arcname=name)
    return result


# Steps of the recipe's train stage left out of its utilisation: start-up, cuDNN's per-shape set-up.
RECIPE_WARM_STEPS = 10


def recipe_params(params_path: Path, device: str) -> dict[str, Any]:
    """params.yaml as committed, at the base size: the configuration the recipe documents."""
    params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    params["model"]["size"] = "base"
    params["train"]["device"] = device
    return params


def recipe_section(
    params: dict[str, Any],
    store: Path,
    work: Path,
    seconds: float,
    out_dir: Path,
    steps: int,
    modes: tuple[str, ...] = ("eager", "compiled"),
) -> dict[str, Any]:
    """Section 7: the recipe's configuration end to end (the train stage) and per step, eager
    against torch.compile (see the module docstring); `modes` picks which of the two."""
    from pipeline.evaluation.history import read_series

    stage = train_stage(params, store, work / "recipe", seconds, out_dir / "recipe", archive=False)
    series = work / "recipe" / "dvclive" / "plots" / "metrics" / "train" / "gpu_utilization.tsv"
    if series.exists():
        _, values = read_series(series)
        kept = values[RECIPE_WARM_STEPS:]
        stage["gpu_utilization_mean"] = float(kept.mean()) if len(kept) else None
        stage["gpu_utilization_steps"] = int(len(kept))
    cfg = params["train"]
    device = torch.device(cfg["device"])
    attrs = FeatureStore(store).attrs
    count = steps * cfg["grad_accumulation"]
    batches = [b.to(device) for b in preload(store, TRAIN, cfg["batch_size"], cfg["seed"], count)]
    groups = [batches[i : i + cfg["grad_accumulation"]] for i in range(0, count, cfg["grad_accumulation"])]
    in_process: dict[str, Any] = {}
    for mode in modes:
        try:
            trainer = build_trainer(params, store_model_config(params, attrs), device)
            if mode == "compiled":
                trainer.forward_module = torch.compile(trainer.model, dynamic=True)
            sync(device)
            t0 = time.perf_counter()
            first = trainer.train_step(groups[0])
            sync(device)
            first_seconds = time.perf_counter() - t0
            losses = [first.get("loss", float("nan"))]
            # As the train loop steps: nothing read back inside a step, every pending step read
            # in one transfer every train.log_every steps.
            log_every = int(cfg["log_every"])
            with GpuSampler(device.index or 0) if device.type == "cuda" else nullcontext() as gpu:
                t0 = time.perf_counter()
                for k, group in enumerate(groups[1:], start=1):
                    trainer.step_on_device(group)
                    if k % log_every == 0:
                        losses += [r.get("loss", float("nan")) for r in trainer.read_logs()]
                losses += [r.get("loss", float("nan")) for r in trainer.read_logs()]
                sync(device)
                timed = time.perf_counter() - t0
            in_process[mode] = {
                "first_step_seconds": first_seconds,
                "steps_per_s": (len(groups) - 1) / timed,
                "gpu_utilization": gpu.mean() if gpu is not None else None,
                "loss": [round(x, 5) for x in losses],
            }
        except Exception as e:  # a compiler failure is a finding; the eager figures stand
            in_process[mode] = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
    return {"train_stage": stage, "in_process": in_process}


def lr_find_section(params: dict[str, Any], store: Path, work: Path, device: str) -> dict[str, Any]:
    """Section 4: `hamgara lr-find` on the GPU with the demo's configuration."""
    work.mkdir(parents=True, exist_ok=True)
    params_file = work / "lr_params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    report = work / "lr_find.json"
    cmd = [sys.executable, "-m", "pipeline.lr_find", "--params", str(params_file), "--features", str(store)]
    cmd += ["--out", str(report), "--figure", str(work / "lr_find.png"), "--device", device]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    result: dict[str, Any] = {"returncode": done.returncode, "wall_seconds": time.perf_counter() - t0}
    result["stdout"] = done.stdout.strip().splitlines()[-4:]
    if report.exists():
        r = json.loads(report.read_text())
        result.update({k: r[k] for k in ("suggested_lr", "candidates", "steps_run", "seconds", "stopped")})
    else:
        result["stderr"] = done.stderr.strip().splitlines()[-5:]
    return result


def throughput(
    params: dict[str, Any],
    store: Path,
    device: torch.device,
    decoders: list[str],
    sizes: list[str],
    batch: int,
    steps: int,
) -> list[dict[str, Any]]:
    """Section 5: steps/s, frames/s, peak memory and utilisation per decoder x size x precision."""
    attrs = FeatureStore(store).attrs
    batches = preload(store, TRAIN, batch, params["train"]["seed"], steps + 3)
    rows = []
    for size in sizes:
        for decoder in decoders:
            for amp in (False, True):
                p = params_for(params, decoder, size, batch, amp)
                rows.append({"decoder": decoder, "size": size, **time_training(p, attrs, batches, device, 3)})
    return rows


def step_times(
    params: dict[str, Any], store: Path, decoder: str, amp: bool, cudnn: bool, count: int, profile: bool
) -> dict[str, Any]:
    """Seconds of each of `count` training steps on batches this process has not seen, then of
    the same batches again: what a shape costs the first time under each precision. With
    `profile`, the first three steps run under torch.profiler instead (its top operators by self
    CPU time) and the first pass times the rest."""
    torch.backends.cudnn.enabled = cudnn
    attrs = FeatureStore(store).attrs
    p = params_for(params, decoder, "tiny", params["train"]["batch_size"], amp)
    batches = preload(store, TRAIN, p["train"]["batch_size"], p["train"]["seed"], count)
    trainer = build_trainer(p, store_model_config(p, attrs), resolve_device(p["train"]["device"]))
    on_device = [b.to(trainer.device) for b in batches]
    # The profiled steps see their shapes first, so the first pass times only the batches after them.
    top = _profiled_steps(trainer, on_device[:3]) if profile else []
    first = on_device[3:] if profile else on_device
    passes = [[timed_steps(trainer, [b], trainer.device) for b in part] for part in (first, on_device)]
    return {
        "decoder": decoder,
        "amp": amp,
        "cudnn": cudnn,
        "first_pass": passes[0],
        "second_pass": passes[1],
        "top": top,
    }


def _profiled_steps(trainer: Any, batches: list[TTSBatch]) -> list[dict[str, Any]]:
    """Training steps on `batches` under torch.profiler; its top operators by self CPU time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for b in batches:
            trainer.train_step([b])
        sync(trainer.device)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    return [{"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1e3, "calls": e.count} for e in events]


def step_times_in_fresh_process(args: argparse.Namespace, spec: str) -> dict[str, Any]:
    """`step_times` in a new process, so no variant inherits another's caches."""
    cmd = [sys.executable, "-m", "benchmarks.cuda_check", "--out", args.out, "--probe", spec]
    cmd += ["--store", args.store, "--params", args.params]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


class Report:
    """The JSON of the run, rewritten after every section."""

    def __init__(self, path: Path, budget: float) -> None:
        self.path, self.budget, self.t0 = path, budget, time.perf_counter()
        self.data: dict[str, Any] = {"sections": {}}

    def section(self, name: str, work: Callable[[], Any], needs: float = 0.0) -> Any:
        """Run one section; its result, or its error, or "skipped" when the budget is spent."""
        left = self.budget - (time.perf_counter() - self.t0)
        if left < needs:
            self.data["sections"][name] = {"skipped": f"{left:.0f} s of the budget left, {needs:.0f} needed"}
            self._write()
            return None
        print(f"[cuda_check] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            result = work()
            entry: dict[str, Any] = {"result": result}
        except Exception:
            result, entry = None, {"error": traceback.format_exc()[-3000:]}
            print(entry["error"], flush=True)
        entry["seconds"] = time.perf_counter() - t0
        self.data["sections"][name] = entry
        self._write()
        return result

    def _write(self) -> None:
        write_json(self.path, self.data)


def vocoder_section(params: dict[str, Any], store: Path, manifest: Path, device: str, steps: int) -> dict[str, Any]:
    """The vocoder trained `steps` steps on `device`: its speed, and its copy synthesis against
    Griffin-Lim's on 12 validation recordings."""
    import dataclasses
    import tempfile

    from benchmarks.vocoder import score
    from model.vocoder import GriffinLimVocoder, TrainedVocoder
    from pipeline.config import eval_config, vocoder_config
    from pipeline.evaluation.mcd import mel_cepstrum, trim_silence
    from pipeline.vocoding.loop import VocoderRun

    cfg = dataclasses.replace(vocoder_config(params), device=device, max_steps=steps, init_from=None)
    ecfg = eval_config(params)

    def cepstrum(wave: Any) -> Any:
        return mel_cepstrum(trim_silence(wave, ecfg.mcd_trim_top_db), ecfg.mcd_order, ecfg.mcd_alpha, ecfg.mcd_floor_db)

    with tempfile.TemporaryDirectory() as tmp:
        run = VocoderRun(store, manifest, cfg, Path(tmp), Path(tmp) / "live", False, None)
        run.setup()
        start = time.perf_counter()
        while run.step < steps:
            run.train_step()
        if run.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        utterances = run.val_set[:12]
        return {
            "device": device,
            "mixed_precision": cfg.mixed_precision,
            "steps": steps,
            "train_seconds": round(seconds, 1),
            "steps_per_second": round(steps / seconds, 2),
            "trained": score(TrainedVocoder(run.generator, "cpu"), utterances, cepstrum),
            "griffin_lim": score(GriffinLimVocoder(run.settings, ecfg.griffin_lim_iters), utterances, cepstrum),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for cuda_check.json, train.log, train_run.tar.gz")
    ap.add_argument("--store", default=str(REPO / "data/features.zarr"))
    ap.add_argument("--manifest", default=str(REPO / "data/manifest.parquet"), help="the vocoder section's recordings")
    ap.add_argument("--vocoder-steps", type=int, default=2000)
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--work", default="/tmp/hamgara-cuda-check", help="scratch folder for the train stage")
    ap.add_argument("--device", default="cuda", help="cuda; cpu runs the same sections small, to try the script")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds; later sections are skipped past it")
    ap.add_argument("--train-seconds", type=float, default=200.0)
    ap.add_argument("--recipe-seconds", type=float, default=150.0, help="the recipe section's train stage")
    ap.add_argument("--precision-steps", type=int, default=30)
    ap.add_argument("--decoders", default="autoregressive,parallel")
    ap.add_argument("--sizes", default="tiny,small,base")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per throughput configuration")
    ap.add_argument(
        "--sections",
        default="environment,precision,train_stage,lr_find,throughput,synthesis,vocoder,recipe",
        help="which to run, of those and step_times (first-seen against repeated shapes per precision)",
    )
    ap.add_argument(
        "--probes",
        default="autoregressive:1:1:1,autoregressive:1:0:0,autoregressive:0:1:0,parallel:1:1:1",
        help="step_times: decoder:amp:cudnn:profile each (1 = on), comma-separated",
    )
    ap.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # decoder:amp:cudnn:profile, one process
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a params override (as dvc -S)")
    args = ap.parse_args(argv)
    if args.probe:
        decoder, amp, cudnn, prof = args.probe.split(":")
        params = demo_params(Path(args.params))
        result = step_times(params, Path(args.store), decoder, amp == "1", cudnn == "1", 12, prof == "1")
        print(json.dumps(result))
        return 0
    wanted = set(args.sections.split(","))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store, work = Path(args.store), Path(args.work)
    report = Report(out / "cuda_check.json", args.budget)
    params = with_overrides(demo_params(Path(args.params)), parse_sets(args.set))
    params["train"]["device"] = args.device
    names = [n for n in PRECISIONS if args.device == "cuda" or PRECISIONS[n][0] == "cpu"]

    device = torch.device(args.device)
    best = work / "models" / "best.pt"
    sections: dict[str, tuple[Callable[[], Any], float]] = {
        "environment": (environment, 0.0),
        "step_times": (lambda: [step_times_in_fresh_process(args, s) for s in args.probes.split(",")], 60.0),
        "precision": (lambda: precision_agreement(params, store, args.precision_steps, names), 0.0),
        "train_stage": (lambda: train_stage(params, store, work, args.train_seconds, out), args.train_seconds + 30),
        "lr_find": (lambda: lr_find_section(params, store, work, args.device), 40.0),
        "throughput": (
            lambda: throughput(
                params, store, device, args.decoders.split(","), args.sizes.split(","), args.batch_size, args.steps
            ),
            30.0,
        ),
        "synthesis": (lambda: synthesis_rtf(best, store, device, 25), 10.0),
        "vocoder": (lambda: vocoder_section(params, store, Path(args.manifest), args.device, args.vocoder_steps), 60.0),
        "recipe": (
            lambda: recipe_section(
                recipe_params(Path(args.params), args.device), store, work, args.recipe_seconds, out, args.steps
            ),
            args.recipe_seconds + 60,
        ),
    }
    for name, (work_fn, needs) in sections.items():
        if name in wanted and (name != "synthesis" or best.exists()):
            report.section(name, work_fn, needs=needs)
    _print_table(report.data["sections"])
    return 0


def _print_table(sections: dict[str, Any]) -> None:
    """The figures that matter, last in the output (the device tool returns the tail)."""
    for probe in sections.get("step_times", {}).get("result") or []:
        first, second = probe["first_pass"], probe["second_pass"]
        print(
            f"step_times {probe['decoder']} amp={probe['amp']} cudnn={probe['cudnn']}: first-seen median "
            f"{sorted(first)[len(first) // 2] * 1e3:.0f} ms, repeated median {sorted(second)[len(second) // 2] * 1e3:.0f} ms"
        )
        for row in probe["top"][:8]:
            print(f"    {row['op'][:60]:60s} {row['self_cpu_ms']:9.1f} ms {row['calls']:6d} calls")
    for name, entry in sections.items():
        if "result" not in entry:
            print(f"{name}: {'skipped: ' + entry['skipped'] if 'skipped' in entry else 'ERROR'}")
    prec = sections.get("precision", {}).get("result")
    if prec:
        head = ["precision", "dtype", "scaler", "initial loss rel. diff", "last-10 loss", "rel. diff", "skipped"]
        _markdown_table(
            [*head, "steps/s"],
            [
                [
                    n,
                    r["amp_dtype"],
                    r["grad_scaler"],
                    f"{r['initial_eval_rel_diff']:.2e}",
                    f"{r['last10_mean_loss']:.4f}",
                ]
                + [f"{r['last10_rel_diff']:.3f}", r["skipped_steps"], f"{r['steps_per_s']:.2f}"]
                for n, r in prec["runs"].items()
            ],
        )
    train = sections.get("train_stage", {}).get("result")
    if train:
        m = train.get("metrics", {}).get("train", {})
        print(
            f"\ntrain stage: rc {train['returncode']}, {train.get('steps')} steps in {train['wall_seconds']:.0f} s "
            f"({train.get('steps_per_s', 0):.2f} steps/s), sigterm {train['stopped_by_sigterm']}, "
            f"gpu mem {m.get('gpu_memory_gib')}, util {m.get('gpu_utilization')}"
        )
    lr = sections.get("lr_find", {}).get("result")
    if lr:
        print(f"lr-find: rc {lr['returncode']}, suggested {lr.get('suggested_lr')}, {lr['wall_seconds']:.0f} s")
    rows = sections.get("throughput", {}).get("result") or []
    if rows:
        _markdown_table(
            ["decoder", "size", "precision", "steps/s", "frames/s", "peak GiB", "util %"],
            [
                [r["decoder"], r["size"], r["amp_dtype"], f"{r['steps_per_s']:.2f}", f"{r['frames_per_s']:,.0f}"]
                + [f"{r.get('peak_memory_gib', 0):.2f}", r.get("gpu_utilization")]
                for r in rows
            ],
        )
    syn = sections.get("synthesis", {}).get("result")
    if syn:
        print(f"synthesis: model RTF {syn['rtf_model']:.4f} over {syn['utterances']} utterances")


def _markdown_table(header: list[str], rows: list[list[Any]]) -> None:
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    sys.exit(main())
