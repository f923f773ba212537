"""Train the aligner on a corpus's features, then extract durations and alignment scores.

Library code for the precompute stage: `train_aligner` fits model/aligner.py on every
utterance (unsupervised, like a forced aligner, so validation utterances take part too);
`extract` returns per-token durations (Viterbi over the soft alignment) and the per-frame
forward-sum loss of each utterance; `flag_outliers` marks utterances whose score is far
above the corpus median — transcripts that do not explain their audio.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.aligner import Aligner, beta_binomial_log_prior, forward_sum_loss, frame_log_probs
from model.mas import viterbi_durations
from pipeline.common.atomic import atomic_path
from pipeline.common.hashing import stable_hash_parts
from pipeline.common.runtime import resolve_device
from pipeline.config import AlignConfig

Reader = Callable[[int], tuple[np.ndarray, np.ndarray]]  # index -> (mel [T, n_mels], tokens [N])


@dataclass(frozen=True)
class Corpus:
    """What the aligner reads: utterances by index, their frame counts, the symbol table's
    size, the ids of word separators, and the mel normalisation statistics."""

    read: Reader
    frames: np.ndarray
    n_symbols: int
    separators: frozenset[int]
    mean: np.ndarray
    std: np.ndarray


@dataclass
class Batch:
    """Padded tensors of a batch of utterances."""

    index: list[int]
    tokens: torch.Tensor
    mels: torch.Tensor
    token_mask: torch.Tensor  # [B, N] True on tokens that take frames
    log_prior: torch.Tensor
    targets: torch.Tensor  # [B, M] 1-based positions of the tokens that take frames
    target_lens: torch.Tensor
    frame_lens: torch.Tensor
    aligned: list[np.ndarray]  # per utterance, the positions that take frames
    token_lens: list[int]


def make_batch(index: list[int], corpus: Corpus, prior_scaling: float, device: torch.device) -> Batch:
    """Read, normalize and pad utterances; attach their beta-binomial priors.

    Word separators (`corpus.separators`, token ids) get no column in training: a word boundary is
    not a sound, and a separator that must take frames steals them from the next word's first
    phone. At extraction they become optional pause holders (see `extract`).
    """
    items = [corpus.read(i) for i in index]
    aligned = [np.flatnonzero(~np.isin(tok, list(corpus.separators))) for _, tok in items]
    t_max = max(m.shape[0] for m, _ in items)
    n_max = max(len(t) for _, t in items)
    m_max = max(len(a) for a in aligned)
    b = len(items)
    tokens = np.zeros((b, n_max), dtype=np.int64)
    mask = np.zeros((b, n_max), dtype=bool)
    targets = np.zeros((b, m_max), dtype=np.int64)
    mels = np.zeros((b, t_max, corpus.mean.shape[0]), dtype=np.float32)
    prior = np.zeros((b, t_max, n_max), dtype=np.float32)
    for k, ((mel, tok), pos) in enumerate(zip(items, aligned)):
        t = mel.shape[0]
        tokens[k, : len(tok)] = tok
        mask[k, pos] = True
        targets[k, : len(pos)] = pos + 1
        mels[k, :t] = (mel - corpus.mean) / corpus.std
        prior[k][:t, pos] = beta_binomial_log_prior(len(pos), t, prior_scaling)
    return Batch(
        index=list(index),
        tokens=torch.from_numpy(tokens).to(device),
        mels=torch.from_numpy(mels).to(device),
        token_mask=torch.from_numpy(mask).to(device),
        log_prior=torch.from_numpy(prior).to(device),
        targets=torch.from_numpy(targets).to(device),
        target_lens=torch.tensor([len(a) for a in aligned], device=device),
        frame_lens=torch.tensor([m.shape[0] for m, _ in items], device=device),
        aligned=aligned,
        token_lens=[len(t) for _, t in items],
    )


def _loss(log_attn: torch.Tensor, batch: Batch, cfg: AlignConfig) -> torch.Tensor:
    return forward_sum_loss(
        log_attn, batch.token_mask, batch.targets, batch.target_lens, batch.frame_lens, cfg.blank_logprob
    )


def length_batches(frames: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> Iterator[list[int]]:
    """Batches of similar length (sorted by frames, cut, order shuffled when rng is given)."""
    order = np.argsort(frames, kind="stable")
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    yield from batches


def train_aligner(
    corpus: Corpus,
    cfg: AlignConfig,
    progress: bool = True,
    on_step: Callable[[int, Aligner], None] | None = None,
) -> tuple[Aligner, list[float]]:
    """Fit the aligner for cfg.steps steps; returns it and the loss per step.

    `on_step(step, model)` runs after every step (benchmarks evaluate checkpoints with it)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = resolve_device(cfg.device)
    model = Aligner(corpus.n_symbols, corpus.mean.shape[0], cfg.hidden, cfg.attn_dim, cfg.temperature).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-6)
    history: list[float] = []
    bar = tqdm(total=cfg.steps, desc="aligner", unit="step", disable=not progress)
    model.train()
    while len(history) < cfg.steps:
        for index in length_batches(corpus.frames, cfg.batch_size, rng):
            if len(history) >= cfg.steps:
                break
            batch = make_batch(index, corpus, cfg.prior_scaling, device)
            log_attn = model(batch.tokens, batch.mels, batch.token_mask, batch.log_prior)
            loss = _loss(log_attn, batch, cfg).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            history.append(loss.item())
            bar.update(1)
            if on_step is not None:
                on_step(len(history), model)
                model.train()
            if len(history) % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(history[-50:]):.3f}")
    bar.close()
    return model, history


@dataclass
class Extraction:
    """Per utterance: durations (frames per token), score (forward-sum loss per frame)."""

    durations: list[np.ndarray]
    scores: np.ndarray
    seconds: float


@torch.no_grad()
def extract(
    model: Aligner,
    corpus: Corpus,
    cfg: AlignConfig,
    progress: bool = True,
    keep_soft: set[int] | None = None,
) -> tuple[Extraction, dict[int, np.ndarray]]:
    """Durations and scores for every utterance; soft alignments of `keep_soft` for figures.

    Word separators get the frames of a pause, or none; every other token at least 1; each
    utterance's durations sum to its frame count."""
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    model.eval()
    n = len(corpus.frames)
    durations: list[np.ndarray | None] = [None] * n
    scores = np.zeros(n, dtype=np.float32)
    soft: dict[int, np.ndarray] = {}
    bar = tqdm(total=n, desc="durations", unit="utt", disable=not progress)
    for index in length_batches(corpus.frames, cfg.batch_size, None):
        batch = make_batch(index, corpus, cfg.prior_scaling, device)
        log_attn = model(batch.tokens, batch.mels, batch.token_mask, batch.log_prior)
        loss = _loss(log_attn, batch, cfg)
        lp = frame_log_probs(log_attn, batch.token_mask, cfg.blank_logprob).float().cpu().numpy()
        for k, i in enumerate(index):
            t, n = int(batch.frame_lens[k]), batch.token_lens[k]
            separator = ~np.isin(np.arange(n), batch.aligned[k])
            # A separator may hold a pause: silent frames, scored as the blank scores them.
            mel = batch.mels[k, :t].float().cpu().numpy() * corpus.std + corpus.mean
            energy = mel.mean(1)
            silent = energy < energy.max() - cfg.pause_top_db * np.log(10) / 20  # dB -> log-magnitude
            pause_lp = np.where(silent, lp[k][:t, 0], -np.inf)
            frame_lp = np.where(separator[None, :], pause_lp[:, None], lp[k][:t, 1 : n + 1])
            durations[i] = viterbi_durations(frame_lp, optional=separator)
            scores[i] = float(loss[k])
            if keep_soft and i in keep_soft:
                soft[i] = frame_lp
        bar.update(len(index))
    bar.close()
    return Extraction([d for d in durations if d is not None], scores, time.perf_counter() - t0), soft


def flag_outliers(scores: np.ndarray, k: float) -> tuple[np.ndarray, float]:
    """Utterances whose score exceeds median + k * MAD (scaled to a standard deviation).

    Returns the boolean mask and the threshold. The median and MAD are robust to the outliers
    themselves, so a few bad transcripts cannot hide each other.
    """
    med = float(np.median(scores))
    mad = float(np.median(np.abs(scores - med))) * 1.4826
    threshold = med + k * max(mad, 1e-6)
    return scores > threshold, threshold


@dataclass
class Alignment:
    """What the precompute stage keeps from the aligner."""

    durations: list[np.ndarray]
    scores: np.ndarray
    flagged: np.ndarray
    threshold: float
    soft: dict[int, np.ndarray]
    trained: bool
    train_seconds: float
    extract_seconds: float
    final_loss: float


ALIGNER_VERSION = 1  # bump when model/aligner.py changes what a trained aligner means


def cache_key(features_key: str, cfg: AlignConfig, n_symbols: int) -> str:
    """Key of a trained aligner: the features it saw and the knobs that shaped it."""
    return stable_hash_parts([features_key, cfg.training_key(), f"{n_symbols}|{ALIGNER_VERSION}"], length=20)


def align_corpus(
    corpus: Corpus,
    cfg: AlignConfig,
    features_key: str,
    cache: Path,
    progress: bool = True,
) -> Alignment:
    """Train (or load from `cache`) the aligner, extract durations and scores, flag outliers.

    The cache is keyed on the features and the training knobs, so rerunning precompute for
    a change that leaves both alone (outlier threshold, figures, workers) does not retrain.
    """
    key = cache_key(features_key, cfg, corpus.n_symbols)
    path = cache / f"aligner-{key}.pt"
    trained = not path.is_file()
    t0 = time.perf_counter()
    model = Aligner(corpus.n_symbols, corpus.mean.shape[0], cfg.hidden, cfg.attn_dim, cfg.temperature)
    if trained:
        model, history = train_aligner(corpus, cfg, progress)
        final_loss = float(np.mean(history[-50:]))
        state = {"state_dict": model.state_dict(), "final_loss": final_loss, "config": cfg.training_key()}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: a full disk raises OSError
            torch.save(state, f)
    else:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["state_dict"])
        model.to(resolve_device(cfg.device))
        final_loss = float(saved["final_loss"])
    train_seconds = time.perf_counter() - t0
    rng = np.random.default_rng(cfg.seed)
    n = len(corpus.frames)
    show = set(rng.choice(n, size=min(cfg.figures, n), replace=False).tolist())
    ex, soft = extract(model, corpus, cfg, progress, keep_soft=show)
    flagged, threshold = flag_outliers(ex.scores, cfg.outlier_mad)
    return Alignment(ex.durations, ex.scores, flagged, threshold, soft, trained, train_seconds, ex.seconds, final_loss)
