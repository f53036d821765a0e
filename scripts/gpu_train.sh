#!/usr/bin/env bash
# Train the bundled (cpu.yaml) model on a lent GPU for a fixed time, then save and pack the results.
#
#   scripts/gpu_train.sh DATA_DIR OUT_DIR MINUTES [PACK_DIR]
#
#   DATA_DIR  a folder written by `mmfa-studio prepare` (index.json + clips/)
#   OUT_DIR   run folder: checkpoint.pt, model_ema.safetensors, config.yaml, tensorboard/, train.log
#             (resumed automatically when it already holds a checkpoint.pt)
#   MINUTES   wall-clock budget for the whole script; training stops cleanly (and saves) in time
#   PACK_DIR  optional: model_ema.safetensors + train_weights.pt (split into <=15 MB pieces) + train.log,
#             small enough for a lent machine's $OUT (max 16 MiB per file, 64 MiB in all)
#
# Environment (all optional): CONFIG (cpu), DEVICE (cuda; cpu for a rehearsal), BATCH (48), IMAGE_SIZE (256),
# WORKERS (CPU cores - 2, at most 12), VGG_WEIGHTS (path to vgg_shift_tolerant.pth or a slim .safetensors
# from `python -m mmfa_studio.train.vgg_slim`; searched for when unset), PERCEPTUAL_LAYERS (e.g. 1,2,3;
# default: the config's, or every stage a slim weights file holds), PYTHON (python3), EXTRA_ARGS
# (appended to `train`), RESERVE_S (seconds kept for saving/packing, 25), CKPT_MINUTES (3), HEAD_POSE (weight
# of the head-pose loss on prepare's pseudo-labels; default: the config's train.loss.head_pose).
# Exit code: the trainer's (0 = trained and saved).
set -uo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$(pwd)/$1" ;; esac; }  # before the cd below
DATA_DIR=$(abspath "$1")
OUT_DIR=$(abspath "$2")
MINUTES=$3
PACK_DIR=${4:+$(abspath "$4")}
START=$(date +%s)

cd "$(dirname "$0")/.." || exit 2
REPO=$(pwd)
export PYTHONUNBUFFERED=1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export MMFA_DEBUG=1  # a crash prints its traceback into the log
PY=${PYTHON:-python3}
CONFIG=${CONFIG:-cpu}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-48}
IMAGE_SIZE=${IMAGE_SIZE:-256}
RESERVE_S=${RESERVE_S:-25}
CKPT_MINUTES=${CKPT_MINUTES:-3}  # a killed run still leaves a recent checkpoint
LOSS_ARGS=()
[ -n "${HEAD_POSE:-}" ] && LOSS_ARGS=(--loss "head_pose=$HEAD_POSE")  # else the config's train.loss.head_pose
CORES=$(nproc 2>/dev/null || echo 4)
WORKERS=${WORKERS:-$(( CORES > 3 ? (CORES - 2 < 12 ? CORES - 2 : 12) : 1 ))}

log() { echo "[gpu_train $(date +%H:%M:%S)] $*"; }

# -- checks (fast, before anything heavy) -------------------------------------------------------------
if [ ! -f "$DATA_DIR/index.json" ]; then
  log "error: $DATA_DIR/index.json not found (DATA_DIR must be a folder written by mmfa-studio prepare)"
  exit 2
fi
mkdir -p "$OUT_DIR" || { log "error: cannot create $OUT_DIR"; exit 2; }
LOG_FILE="$OUT_DIR/train.log"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" - <<'EOF' || { log "error: the Python environment lacks a package the trainer needs (see above)"; exit 3; }
import importlib, sys
missing = []
for name in ("torch", "numpy", "cv2", "yaml", "safetensors"):
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001
        missing.append(f"{name} ({exc})")
if missing:
    print("missing:", ", ".join(missing)); sys.exit(1)
import torch, numpy, cv2
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}, cv2 {cv2.__version__}, "
      f"CUDA available: {torch.cuda.is_available()}"
      + (f" ({torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()})" if torch.cuda.is_available() else ""))
EOF
if [ "$DEVICE" != "cpu" ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  log "error: DEVICE=$DEVICE but PyTorch sees no CUDA device (set DEVICE=cpu for a CPU rehearsal)"
  exit 3
fi
log "data: $(du -sh "$DATA_DIR" | cut -f1) in $DATA_DIR; $(ls "$DATA_DIR"/clips 2>/dev/null | grep -c '\.frames$') clip files"
# Loader workers hand batches over in shared memory (uint8, 2 batches in flight per worker): keep within /dev/shm.
SHM_MB=$(df -Pm /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')
if [ -n "$SHM_MB" ]; then
  NEED_MB=$(( WORKERS * 2 * BATCH * 2 * 3 * IMAGE_SIZE * IMAGE_SIZE / 1000000 + 1 ))
  if [ "$NEED_MB" -gt $(( SHM_MB / 2 )) ]; then
    WORKERS=$(( SHM_MB / 2 / (NEED_MB / WORKERS + 1) ))
    [ "$WORKERS" -lt 1 ] && WORKERS=0
    log "/dev/shm has ${SHM_MB} MB free: using $WORKERS loader workers"
  fi
fi

# -- perceptual-loss weights ---------------------------------------------------------------------------
VGG=${VGG_WEIGHTS:-${MMFA_VGG_WEIGHTS:-}}
if [ -z "$VGG" ]; then
  for candidate in vgg16_st.safetensors vgg_shift_tolerant.pth .carry/vgg16_st.safetensors .carry/vgg_shift_tolerant.pth \
                   "$DATA_DIR/../vgg16_st.safetensors" "$DATA_DIR/../vgg_shift_tolerant.pth"; do
    if [ -f "$candidate" ]; then VGG=$candidate; break; fi
  done
fi
if [ -z "$VGG" ]; then
  VGG=$(find . -maxdepth 3 \( -name 'vgg*.safetensors' -o -name 'vgg_shift_tolerant.pth' \) 2>/dev/null | head -n 1)
fi
if [ -z "$VGG" ]; then
  VGG=$("$PY" -c "from mmfa_studio.train.losses import find_vgg_weights as f; p = f(); print(p or '')" 2>/dev/null)
fi
if [ -n "$VGG" ] && [ -f "$VGG" ]; then
  VGG_ARGS=(--vgg-weights "$VGG")
  log "perceptual loss: VGG weights $VGG"
  # A slim copy (mmfa_studio.train.vgg_slim) may hold fewer stages than the config compares: use what it has.
  STAGES=$("$PY" -c "
import sys
from safetensors import safe_open
with safe_open(sys.argv[1], 'pt') as f: print((f.metadata() or {}).get('stages', ''))" "$VGG" 2>/dev/null)
  if [ -z "${PERCEPTUAL_LAYERS:-}" ] && [ -n "$STAGES" ] && [ "$STAGES" -lt 4 ]; then
    PERCEPTUAL_LAYERS=$(seq -s, 1 "$STAGES")
  fi
  if [ -n "${PERCEPTUAL_LAYERS:-}" ]; then
    VGG_ARGS+=(--perceptual-layers "$PERCEPTUAL_LAYERS")
    log "perceptual layers: VGG stages $PERCEPTUAL_LAYERS"
  fi
else
  VGG_ARGS=(--perceptual-backbone none)
  log "WARNING: no VGG weights found (set VGG_WEIGHTS): training with the pixel-L1 fallback instead of the perceptual loss"
fi

# -- train (retry once with half the batch if CUDA runs out of memory) --------------------------------
run_train() {  # $1 = batch size
  local now elapsed left resume=()
  now=$(date +%s); elapsed=$(( now - START ))
  left=$("$PY" -c "print(max(0.2, ($MINUTES * 60 - $elapsed - $RESERVE_S) / 60))")
  [ -f "$OUT_DIR/checkpoint.pt" ] && resume=(--resume)
  log "training: config $CONFIG, device $DEVICE, batch $1, ${IMAGE_SIZE} px, $WORKERS workers, ${left} min ${resume[*]:-}"
  # shellcheck disable=SC2086
  "$PY" -m mmfa_studio.cli.train --config "$CONFIG" --data "$DATA_DIR" --out "$OUT_DIR" --device "$DEVICE" \
      --minutes "$left" --batch-size "$1" --image-size "$IMAGE_SIZE" --num-workers "$WORKERS" \
      --checkpoint-minutes "$CKPT_MINUTES" "${LOSS_ARGS[@]}" \
      "${VGG_ARGS[@]}" "${resume[@]}" ${EXTRA_ARGS:-} 2>&1 | tee -a "$LOG_FILE"
  return "${PIPESTATUS[0]}"
}

time_left_s() { echo $(( ${MINUTES%.*} * 60 - ( $(date +%s) - START ) - RESERVE_S )); }

run_train "$BATCH"
RC=$?
# Recovery for a failure before anything was saved: out of memory → half the batch; any other early error
# (e.g. a mixed-precision kernel missing on this GPU/driver) → once more in full fp32.
if [ $RC -ne 0 ] && [ $RC -ne 2 ] && [ "$(time_left_s)" -gt 90 ]; then
  if tail -n 60 "$LOG_FILE" | grep -qi "out of memory"; then
    HALF=$(( BATCH / 2 > 1 ? BATCH / 2 : 1 ))
    log "CUDA out of memory at batch $BATCH: retrying with batch $HALF"
    run_train "$HALF"
    RC=$?
  elif [ ! -f "$OUT_DIR/checkpoint.pt" ]; then
    log "training failed (exit $RC) before its first checkpoint: retrying once with --amp off"
    EXTRA_ARGS="${EXTRA_ARGS:-} --amp off"
    run_train "$BATCH"
    RC=$?
  fi
fi

# -- results -------------------------------------------------------------------------------------------
if [ -f "$OUT_DIR/model_ema.safetensors" ]; then
  log "EMA inference checkpoint: $OUT_DIR/model_ema.safetensors ($(du -h "$OUT_DIR/model_ema.safetensors" | cut -f1))"
  if [ -n "$PACK_DIR" ]; then
    "$PY" -m mmfa_studio.train.pack "$OUT_DIR" "$PACK_DIR" || log "warning: packing failed"
  fi
else
  log "no model_ema.safetensors was written"
fi
log "exit $RC after $(( $(date +%s) - START )) s"
exit $RC
