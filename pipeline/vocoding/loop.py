"""The vocoder's training loop: setup, train, validate, save.

Checkpoints: `models/vocoder_last.pt` (atomic; every `checkpoint_every` steps, at the end, and
on SIGINT/SIGTERM) holds the whole state, `models/vocoder.pt` the generator with the best
validation loss. A rerun resumes from vocoder_last.pt exactly: the batch of step k is drawn from
(seed, k) and nothing else is random, so an interrupted run ends with the weights an
uninterrupted one ends with. A vocoder_last.pt made with other settings is kept aside and the
run starts fresh; a damaged one is set aside, named.

Validation (every `val_every` steps and at the last): the magnitude loss on every validation
utterance, and `samples` of them synthesized through the whole vocoder into
`<live>/samples/<id>.wav` beside their recordings (`<id>_recording.wav`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from model.mel import MelSettings
from model.vocoder_generator import GeneratorConfig, VocoderGenerator, stft
from model.vocoder_losses import vocoder_loss, vocoder_loss_terms
from pipeline.common.atomic import clean_stale_temps, write_wav
from pipeline.common.hashing import file_digest, stable_hash
from pipeline.common.run_log import StopFlag, end_live_step, open_live, save_checkpoint, set_aside_damaged, trim_history
from pipeline.common.runtime import resolve_device
from pipeline.common.stage import RunAborted
from pipeline.config import PRETRAINED, VocoderConfig, vocoder_config
from pipeline.features.store import FeatureStore
from pipeline.training.checkpoint import CheckpointError
from pipeline.vocoding.checkpoint import generator_state, load_generator, mel_differences, read_vocoder_checkpoint
from pipeline.vocoding.data import TRAIN, VAL, Utterance, draw_batch, load_utterances, store_mel_settings

BEST, LAST = "vocoder.pt", "vocoder_last.pt"
# Knobs that do not change what is trained: a run may be resumed with other values of these.
NOT_IDENTITY = ("max_steps", "val_every", "samples", "checkpoint_every", "max_nonfinite", "device", "init_from")


def learning_rate(cfg: VocoderConfig, step: int) -> float:
    """Linear warm-up to cfg.lr over warmup_steps, then cosine decay to 0 at max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(cfg.max_steps - cfg.warmup_steps, 1)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * min((step - cfg.warmup_steps) / span, 1.0)))


def run_identity(cfg: VocoderConfig, store: FeatureStore) -> dict[str, Any]:
    """What a vocoder_last.pt must match to be resumed: the training knobs, the data, and the
    base vocoder's bytes (another base, or the same path rewritten, starts over from it)."""
    knobs = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_IDENTITY}
    data = stable_hash({"ids": store.ids, "mel": store.attrs["mel"], "features": store.attrs["features"]})
    base = None
    if cfg.init_from is not None and Path(cfg.init_from).is_file():
        base = {"path": cfg.init_from, "digest": file_digest(Path(cfg.init_from))}
    return {"vocoder": knobs, "data": data, "init_from": base}


def fit_vocoder(
    store_path: Path,
    manifest_path: Path,
    params: dict[str, Any],
    models: Path,
    live_dir: Path,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) the vocoder; returns the summary. `stop_after`: stop after that many
    steps of this call, as a signal would (tests use it to interrupt)."""
    run = VocoderRun(store_path, manifest_path, vocoder_config(params), models, live_dir, progress, stop_after)
    run.setup()
    return run.train()


class VocoderRun:
    """One call of the vocoder stage: setup, train, and what they share."""

    def __init__(
        self,
        store_path: Path,
        manifest_path: Path,
        cfg: VocoderConfig,
        models: Path,
        live_dir: Path,
        progress: bool,
        stop_after: int | None,
    ) -> None:
        self.cfg = cfg
        self.store = FeatureStore(store_path)
        self.manifest_path = manifest_path
        self.models, self.live_dir = models, live_dir
        self.best_path, self.last_path = models / BEST, models / LAST
        self.progress, self.stop_after = progress, stop_after
        self.device = resolve_device(cfg.device)
        self.settings: MelSettings = store_mel_settings(self.store)
        self.step = 0
        self.best_val: float | None = None
        self.nonfinite_run = 0
        self.skipped = 0
        self.resumed = False
        self.live: Any = None

    # --- setup -----------------------------------------------------------------------------
    def setup(self) -> None:
        """Data, generator, optimizer; then a resume or a warm start."""
        torch.manual_seed(self.cfg.seed)
        self.setup_model()
        self.identity = run_identity(self.cfg, self.store)
        self.train_set = load_utterances(self.store, self.manifest_path, TRAIN, self.progress)
        self.val_set = load_utterances(self.store, self.manifest_path, VAL, self.progress)
        if not self.train_set:
            raise ValueError(f"{self.store.path}: no training utterances for the vocoder")
        self.models.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(self.models)
        self._resume()
        if not self.resumed and self.cfg.init_from is not None:
            self._warm_start(Path(self.cfg.init_from))

    def setup_model(self) -> None:
        """A freshly initialised generator (from the seed set before) and its optimizer."""
        config = GeneratorConfig(self.cfg.dim, self.cfg.intermediate, self.cfg.layers, self.cfg.kernel)
        self.generator = VocoderGenerator(self.settings, config, self.cfg.phase_iters, self.cfg.momentum).to(
            self.device
        )
        self.optimizer = torch.optim.AdamW(
            self.generator.parameters(), lr=self.cfg.lr, betas=(0.8, 0.99), weight_decay=0.01
        )

    def _resume(self) -> None:
        if not self.last_path.is_file():
            return
        try:
            ckpt = read_vocoder_checkpoint(self.last_path, self.device)
            missing = [k for k in ("optimizer", "identity", "step", "best_val") if k not in ckpt]
            if missing:
                raise CheckpointError(
                    f"{self.last_path}: not a vocoder training checkpoint, it lacks {', '.join(missing)}"
                )
        except CheckpointError as e:
            aside = set_aside_damaged(self.last_path)
            print(f"vocoder: warning: {e}; moved it to {aside}; starting fresh")
            return
        if ckpt["identity"] != self.identity:
            aside = self.models / f"vocoder_last-{stable_hash(ckpt['identity'], 10)}.pt"
            self.last_path.rename(aside)
            changed = sorted(
                k
                for k in set(ckpt["identity"].get("vocoder", {})) | set(self.identity["vocoder"])
                if ckpt["identity"].get("vocoder", {}).get(k) != self.identity["vocoder"].get(k)
            )
            changed += [k for k in ("data", "init_from") if ckpt["identity"].get(k) != self.identity[k]]
            print(
                f"vocoder: not resuming {self.last_path}: made with other settings ({', '.join(changed)}); kept as {aside}; starting fresh"
            )
            return
        try:
            self.generator.load_state_dict(ckpt["generator"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            # Same settings, other tensors: written by a Hamgara whose generator was different.
            torch.manual_seed(self.cfg.seed)
            self.setup_model()
            aside = set_aside_damaged(self.last_path)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            print(
                f"vocoder: warning: {self.last_path} does not fit this generator ({first}); moved it to {aside}; starting fresh"
            )
            return
        self.step, self.best_val = int(ckpt["step"]), ckpt["best_val"]
        self.resumed = True
        print(f"vocoder: resuming from {self.last_path} at step {self.step}")
        trim_history(self.live_dir, self.step)

    def _warm_start(self, path: Path) -> None:
        """A vocoder trained on another corpus as the starting weights (fresh optimizer and
        schedule); its mel settings must be this store's."""
        if not path.is_file():
            raise FileNotFoundError(f"vocoder.init_from: {path}: no such file (copy a vocoder.pt under {PRETRAINED}/)")
        base = load_generator(path, None, self.device)
        differences = mel_differences(base.settings, self.settings)
        if differences:
            raise ValueError(
                f"vocoder.init_from: {path} was trained on other mel settings than {self.store.path} "
                f"({'; '.join(differences)}): a vocoder can only start from one made for the same mels"
            )
        if dataclasses.asdict(base.config) != dataclasses.asdict(self.generator.config):
            raise ValueError(
                f"vocoder.init_from: {path} has another shape ({base.config}) than vocoder.dim/intermediate/layers/kernel "
                f"({self.generator.config}): set those to the base's"
            )
        self.generator.load_state_dict(base.state_dict())
        print(f"vocoder: starting from the weights of {path}")

    # --- train -----------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Steps to max_steps, validating and checkpointing on the way; SIGINT/SIGTERM (or
        `stop_after`) saves vocoder_last.pt and raises KeyboardInterrupt."""
        self.live = open_live(self.live_dir, self.resumed, self.step)
        bar = tqdm(total=self.cfg.max_steps, initial=self.step, desc="vocoder", unit="step", disable=not self.progress)
        started, calls = time.perf_counter(), 0
        with StopFlag() as stop:
            while self.step < self.cfg.max_steps:
                log = self.train_step()
                calls += 1
                bar.update(1)
                bar.set_postfix(loss=f"{log['train/loss']:.4f}")
                validated = self.step % self.cfg.val_every == 0 or self.step == self.cfg.max_steps
                if validated:
                    log.update(self._validate())
                for k, v in log.items():
                    self.live.log_metric(k, v)
                end_live_step(self.live, validated)
                if self.step % self.cfg.checkpoint_every == 0:
                    self._checkpoint()
                if stop.signal is not None or (self.stop_after is not None and calls >= self.stop_after):
                    self._checkpoint()
                    bar.close()
                    raise KeyboardInterrupt(f"stopped at step {self.step}; {self.last_path} saved, rerun to resume")
        bar.close()
        if calls == 0:
            # Resumed at the end (DVC reran the stage for a dependency that changes nothing
            # here): validate once, so the samples DVC cleared before the run are written again.
            for k, v in self._validate().items():
                self.live.log_metric(k, v)
            self.live.make_summary()
        self._checkpoint()
        if not self.best_path.is_file():  # resumed past the end, or a run whose validations never improved
            save_checkpoint(self.best_path, generator_state(self.generator, self.step, self.best_val))
        summary = {
            "steps": self.step,
            "best_val_loss": self.best_val,
            "skipped_steps": self.skipped,
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        for k, v in summary.items():
            if v is not None:
                self.live.summary[k] = v
        self.live.end()
        return summary

    def _autocast(self) -> Any:
        if self.cfg.mixed_precision and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _terms(self, mels: torch.Tensor, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        with self._autocast():
            log_magnitude = self.generator.log_magnitude(mels)
        target = stft(waves, self.settings).abs()
        return vocoder_loss_terms(log_magnitude.float(), target, self.settings.log_clamp)

    def train_step(self) -> dict[str, float]:
        """One optimizer step on the batch of (seed, step); its logged figures."""
        mels, waves = draw_batch(
            self.train_set, self.cfg.seed, self.step, self.cfg.batch_size, self.cfg.segment_frames, self.settings
        )
        lr = learning_rate(self.cfg, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.generator.train()
        terms = self._terms(torch.from_numpy(mels).to(self.device), torch.from_numpy(waves).to(self.device))
        loss = vocoder_loss(terms, self.cfg.spectral_convergence_weight)
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if not torch.isfinite(loss):
            self._non_finite(terms)
            return {"train/loss": float("nan"), "train/lr": lr}
        self.nonfinite_run = 0
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.generator.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return {
            "train/loss": loss.item(),
            **{f"train/{k}": v.item() for k, v in terms.items()},
            "train/grad_norm": norm.item(),
            "train/lr": lr,
        }

    def _non_finite(self, terms: dict[str, torch.Tensor]) -> None:
        """Skip the step; after max_nonfinite in a row, stop, naming the step and the terms."""
        self.skipped += 1
        self.nonfinite_run += 1
        if self.nonfinite_run >= self.cfg.max_nonfinite:
            bad = ", ".join(f"{k}={v.item():g}" for k, v in terms.items() if not torch.isfinite(v))
            self._checkpoint()
            raise RunAborted(
                f"vocoder: the loss was not finite for {self.nonfinite_run} steps in a row, the last at step "
                f"{self.step} ({bad or 'the total'}): the training diverged; lower vocoder.lr "
                f"(now {self.cfg.lr:g}) or vocoder.grad_clip, then rerun ({self.last_path} holds the last state)"
            )

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        """The magnitude loss over the validation utterances (each whole), and the samples."""
        self.generator.eval()
        sums: dict[str, float] = {}
        frames = 0
        for u in self.val_set:
            mel = torch.from_numpy(u.mel)[None].to(self.device)
            wave = torch.from_numpy(u.wave)[None].to(self.device)
            terms = self._terms(mel, wave)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item() * u.mel.shape[0]
            frames += u.mel.shape[0]
        if not frames:
            return {}
        out = {f"val/{k}": v / frames for k, v in sums.items()}
        val_loss = out["val/log_l1"] + self.cfg.spectral_convergence_weight * out["val/spectral_convergence"]
        out["val_loss"] = val_loss
        if math.isfinite(val_loss) and (self.best_val is None or val_loss < self.best_val):
            self.best_val = val_loss
            save_checkpoint(self.best_path, generator_state(self.generator, self.step, val_loss))
        self._write_samples(self.val_set[: self.cfg.samples])
        return out

    def _write_samples(self, utterances: list[Utterance]) -> None:
        folder = self.live_dir / "samples"
        for u in utterances:
            with self._autocast():
                wave = self.generator(torch.from_numpy(u.mel)[None].to(self.device))[0].float().cpu().numpy()
            write_wav(folder / f"{u.id}.wav", wave, self.settings.sample_rate)
            recording = folder / f"{u.id}_recording.wav"
            if not recording.is_file():
                write_wav(recording, u.wave, self.settings.sample_rate)

    def _checkpoint(self) -> None:
        state = generator_state(self.generator, self.step, self.best_val)
        save_checkpoint(
            self.last_path,
            {
                **state,
                "optimizer": self.optimizer.state_dict(),
                "identity": self.identity,
                "best_val": self.best_val,
                "skipped": self.skipped,
            },
        )


__all__ = ["BEST", "LAST", "fit_vocoder", "learning_rate"]
