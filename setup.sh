#!/usr/bin/env bash
# Hamgara set-up and entry point on Debian 12 (as root, or with the apt packages already there).
#   ./setup.sh repro   install everything (apt packages, .venv) and run the DVC pipeline on the demo
#                      (corpus -> validate -> precompute -> train, vocoder -> evaluate), as the experiment
#                      `cpu-demo-<time>` with the CPU-budget overrides below
#   ./setup.sh repro-multi   the same on the multi-speaker demo: the CPU-budget overrides plus
#                      MULTI_DEMO below (three voices, two of them VCTK-style at 48 kHz)
#   ./setup.sh repro train.seed=7 ...   either demo with KEY=VALUE overrides of yours after its own
#   ./setup.sh test    install everything plus test dependencies, then ruff and the test suite
# Re-running is cheap: the venv is reused while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")"

# festvox-kallpc16k and festvox-kdlpc16k: the second and third voices (data.demo.extra_voices, the fine-tuning benchmark).
# gcc and python3-dev: resemblyzer's VAD (webrtcvad) is a source distribution on PyPI.
APT_PACKAGES=(python3 python3-venv python3-dev gcc git festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k
              espeak-ng libespeak-ng1 libsndfile1)
# The page tests (`hamgara serve`'s page, reports/index.html) open the pages in Debian's chromium, headless,
# driven through chromium-driver; only `./setup.sh test` needs them.
TEST_APT_PACKAGES=(chromium chromium-driver)
VENV=.venv
# Demo training on a CPU, chosen by measurement (docs/measurements.md, "Exposure bias"): the autoregressive decoder
# (the recipe's) with aligned conditioning, 3 frames per step and scheduled sampling at 1.0 speaks
# within 0.21-0.25 of Griffin-Lim-vocoded truth (pocketsphinx WER, two seeds) at 2,800 steps, the
# wall-clock time of the parallel demo's 2,000.
# lr 1.7e-3 is what `hamgara lr-find` suggests on the demo (1.6e-3 / 1.8e-3, two seeds); measured against
# 1e-3 at 2,800 steps: WER gap 0.167 / 0.167 against 0.206 / 0.245 (docs/measurements.md, "Exposure bias").
# No attention dropout: on a CPU it sends attention to torch's reference kernel and its bernoulli_
# mask; without it (and with model/dropout.py's cheaper masks) a step costs about 1/1.4 of what it
# did, so 3,600 steps, the cosine cycle and the sampling ramp stretched in proportion, take the
# wall-clock time the 2,800 did (docs/measurements.md, "Where a training step's time goes").
# No loader workers: on two cores they compete with torch's two threads and are started again every
# epoch (33 steps here); the batches are the same, so training is bit-identical, and a step costs
# less. That and dvclive synced at validations only (pipeline/training/loop.py) pay for 4,400 steps
# in the time 3,600 took, the cycle and the ramp stretched in proportion (docs/measurements.md, "The loop around
# the step").
# The vocoder: 2,000 steps (about 3 minutes on 2 cores) of the 20,000 a GPU run takes by default; on the demo
# its copy synthesis is as good at 2,000 steps as at 6,000 and a PESQ-WB point above Griffin-Lim
# (docs/vocoder.md, "Measured on the demo").
# evaluate scores models/last.pt, the end of the cosine cycle: best.pt is the lowest teacher-forced
# val_mel_loss, which with the text convolutions comes at step 1,250, before scheduled sampling has
# ramped up to feeding the model its own frames; the step-1,250 model speaks worse free-running
# (docs/measurements.md, "Convolutions over the tokens").
CPU_DEMO=(model.decoder=autoregressive model.reduction=3 train.scheduled_sampling=1.0 train.scheduled_sampling_steps=2200
          train.max_steps=4400 train.batch_size=16 train.grad_accumulation=1 model.attention_dropout=0
          train.lr=1.7e-3 train.warmup_steps=200 train.restart_period=4200 train.val_every=250
          train.num_workers=0 train.kl_warmup_steps=500 train.checkpoint_every=250 vocoder.max_steps=2000
          eval.checkpoint=models/last.pt)

# The multi-speaker demo (docs/multi-speaker.md): the main voice in LJSpeech layout at
# 22.05 kHz plus two festival diphone voices of 120 utterances each written VCTK-style at 48 kHz
# (p301_001_mic1, ...), speakers read from the ids; trained as the single-voice demo (CPU_DEMO).
MULTI_DEMO=('data.demo.extra_voices=["kal_diphone:120","ked_diphone:120"]' "data.speaker_regex='^(p\d+|demo)_'")

log() { printf '\033[1m[hamgara]\033[0m %s\n' "$*"; }

install_apt() {
  # $@: packages wanted beside APT_PACKAGES.
  local missing=()
  for p in "${APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "Hamgara needs these Debian packages, which only root can install:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    echo "Run that, then run this script again." >&2
    exit 1
  fi
  log "installing apt packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

pick_python() {
  for py in python3.11 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$py"; return 0
    fi
  done
  echo "Hamgara needs Python 3.11 (Debian 12's python3)." >&2
  exit 1
}

install_venv() {
  local extras=$1 stamp="$VENV/.hamgara-installed"
  local want
  want="$(sha256sum pyproject.toml | cut -c1-16)-$extras"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  [ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$(pick_python)" -m venv "$VENV"; }
  log "installing Python dependencies into $VENV (torch is large: a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".$extras"
  echo "$want" > "$stamp"
}

ensure_git() {
  # DVC needs a git repository (a fresh clone is one; a downloaded archive is not).
  if ! git rev-parse --git-dir >/dev/null 2>&1; then
    log "initialising a git repository (DVC needs one)"
    git init -q && git add -A && git -c user.name=hamgara -c user.email=hamgara@localhost commit -qm "initial" || true
  fi
}

last_value_per_key() {
  # KEY=VALUE items, one per key in first-seen order with the last value given (the user's items
  # after the demo's, e.g. train.seed=7): one -S per key for dvc.
  local -A value=()
  local keys=() item key
  for item in "$@"; do
    key=${item%%=*}
    [[ -v "value[$key]" ]] || keys+=("$key")
    value[$key]=$item
  done
  for key in "${keys[@]}"; do printf '%s\n' "${value[$key]}"; done
}

check_overrides() {
  # The user's KEY=VALUE items after `repro`: a typo fails here, before anything is installed.
  # An item is one line: run_demo hands the items on one a line, so a newline inside one would
  # split it into two overrides, and no params.yaml value holds a control character.
  local item
  for item in "$@"; do
    if [[ $item == *[[:cntrl:]]* ]]; then
      printf "setup.sh: %q holds a newline or another control character; each KEY=VALUE override of params.yaml is one line (for example train.seed=7)\n" "$item" >&2
      return 2
    fi
    if [[ ! $item =~ ^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+= ]]; then
      echo "setup.sh: '$item' is not a KEY=VALUE override of params.yaml (for example train.seed=7)" >&2
      return 2
    fi
  done
}

run_demo() {
  # $1: the experiment's name prefix; the rest: the overrides.
  local name=$1
  shift
  install_apt
  install_venv "[runtime]"
  ensure_git
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  # The documented recipe is for a GPU run of many hours; on a CPU the demo trains the tiny
  # model briefly. The overrides are visible here and in `dvc exp show`; params.yaml's committed
  # copy keeps the documented defaults.
  local merged
  mapfile -t merged < <(last_value_per_key "$@")
  log "running the pipeline as the DVC experiment $name (overrides: ${merged[*]})"
  dvc exp run -n "$name-$(date +%Y%m%d-%H%M%S)" "${merged[@]/#/-S}"
}

case "${1:-}" in
  repro-multi)
    check_overrides "${@:2}"
    run_demo multi-demo "${CPU_DEMO[@]}" "${MULTI_DEMO[@]}" "${@:2}"
    log "done: the multi-speaker demo. Per speaker: reports/summary.md ('Per speaker', 'Speaker similarity'),"
    log "  reports/eval.json (per_speaker, speaker_similarity); speak: .venv/bin/hamgara synth --speaker p301 \"Hello.\" -o p301.wav"
    log "  params.yaml now holds the multi-speaker corpus settings: git checkout params.yaml returns to the single voice"
    dvc metrics show
    ;;
  repro)
    check_overrides "${@:2}"
    run_demo cpu-demo "${CPU_DEMO[@]}" "${@:2}"
    log "done. Corpus: $(python -c 'import yaml;print(yaml.safe_load(open("params.yaml"))["data"]["corpus"])')"
    log "  validation: reports/validation.json, reports/rejected.csv, reports/warnings.csv"
    log "  features:   data/features.zarr, reports/precompute.json, reports/figures/alignment/"
    log "  model:      models/best.pt, models/last.pt; curves: dvc plots show; runs: dvc exp show"
    log "  vocoder:    models/vocoder.pt (trained on the corpus), dvclive_vocoder/samples/"
    log "  evaluation: reports/summary.md (read this first; 'Vocoders': trained against Griffin-Lim), reports/eval.json,"
    log "              reports/index.html (the same in a browser, with players for every sample)"
    log "  listen:     reports/samples/ (*_synthesized.wav next to *_vocoded_truth.wav and *_truth.wav)"
    log "  look:       reports/figures/eval/ (predicted vs target mel, attention with the duration path)"
    log "  speak:      .venv/bin/hamgara synth \"Your sentence here.\" -o hello.wav"
    log "  ship:       .venv/bin/hamgara export -o voice/ && .venv/bin/hamgara serve --voice voice/  (docs/export.md)"
    dvc metrics show
    ;;
  test)
    install_apt "${TEST_APT_PACKAGES[@]}"
    install_venv "[runtime,test]"
    log "ruff: lint and import order, then formatting (configured in pyproject.toml)"
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    log "pytest (the suite reads the committed params.yaml, not the workspace copy an experiment rewrote)"
    "$VENV/bin/python" -m pytest "${@:2}"
    ;;
  *)
    sed -n '2,8p' "$0"
    exit 2
    ;;
esac
