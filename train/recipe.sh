#!/usr/bin/env bash
# The bf16 recipe from an empty machine to a world model, its action map and their evaluations:
# the chain of the lab notes' *A longer bf16 first stage, and one reading for the four heads*.
#
#   bash train/recipe.sh            # every stage; a stage that finished is skipped
#   bash train/recipe.sh wm         # only up to the world model's last head
#   bash train/recipe.sh print      # print the stages' commands, run nothing
#
# Each stage writes runs/recipe/NAME.done when it exits cleanly, so after a kill the same command
# skips the finished stages and resumes the stopped one (every trainer resumes from its --out).
# Run it alone on the CPU: the world model's cost is the wall time each stage records in its file.
# Logs: runs/recipe/NAME.log. The world model: runs/wm-b16r2f-rbricks/world_model.pt.
#
#   RECIPE=shipped bash train/recipe.sh [wm|print]
# runs instead the float32 chain that made the shipped files (the notes' *Sixteen codes in under
# three hours*): a width-16 decoder with 16 codes, the heads of checkpoints/world_model.pt put on it by
# `train copy-heads` with their recorded hours, its own action map. Logs: runs/recipe-shipped/.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-all}
if [[ $MODE != all && $MODE != wm && $MODE != print ]]; then
    echo "train/recipe.sh: unknown argument '$MODE' (expected nothing, wm or print)" >&2; exit 2
fi
# Every training stage runs with --bf16, which is 7 to 11x slower than float32 on a CPU that
# emulates bfloat16 (benchmarks/train_speed.py): stop before hours of that. RECIPE_FLOAT32=1 trains
# every stage in float32 instead, on any CPU (not the measured recipe: on an AVX2-only AMD EPYC its
# stages would take about 6.5 h, by the first stage's float32 rate there).
RECIPE=${RECIPE:-bf16}
if [[ $RECIPE != bf16 && $RECIPE != shipped ]]; then
    echo "train/recipe.sh: unknown RECIPE '$RECIPE' (expected bf16 or shipped)" >&2; exit 2
fi
BF16=--bf16
if [[ -n "${RECIPE_FLOAT32:-}" || $RECIPE == shipped ]]; then
    BF16=
elif [[ $MODE != print && -r /proc/cpuinfo ]] && ! grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
    echo "train/recipe.sh: this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 in /proc/cpuinfo), so the" >&2
    echo "recipe's --bf16 stages would run 7 to 11x slower than planned; RECIPE_FLOAT32=1 trains them in float32" >&2
    exit 3
fi
RUNS=runs/recipe
if [[ $RECIPE == shipped ]]; then RUNS=runs/recipe-shipped; fi
if [[ $MODE != print ]]; then mkdir -p $RUNS; fi
export WANDB_MODE="${WANDB_MODE:-offline}"

stage() {  # stage NAME COMMAND...: run COMMAND unless NAME finished before
    local name=$1; shift
    if [[ $MODE == print ]]; then echo "$*"; return; fi
    if [[ -f $RUNS/$name.done ]]; then echo "skip $name (finished)"; return; fi
    echo "$(date -u +%FT%TZ) start $name: $*"
    "$@" > "$RUNS/$name.log" 2>&1
    date -u +%FT%TZ > "$RUNS/$name.done"
    echo "$(date -u +%FT%TZ) done $name"
}

NB=neural-breakout
D="--data data/breakout"
REC="--policy agent --checkpoint checkpoints/agent.pt --random-fraction 0.1 --tracker-fraction 0.6 --epsilon 0.05 --episodes 180"
X="--extra-data data/breakout-2,data/breakout-3"
E="--eval-every 4000 --sample-cache runs/sample-cache-b16r2f"
WM=runs/wm-b16r2f-rbricks/world_model.pt

play_stages() {  # play_stages TAG: $WM's evaluation, action map, action paddle table and play evaluation
    local tag=$1
    if [[ $MODE == wm ]]; then exit 0; fi
    stage eval-wm $NB evaluate world-model $D --checkpoint $WM --out runs/eval-wm-$tag
    stage action-map $NB train action-map $D --world-model $WM --out runs/action-map-$tag --context 8 --presence --serves --life-head --serve-head --memory --steps 4000
    stage action-paddle $NB train action-paddle $D --action-map runs/action-map-$tag/action_map.pt --world-model $WM --out runs/action-paddle-$tag
    stage eval-play $NB evaluate play $D --checkpoint $WM --action-map runs/action-paddle-$tag/action_map.pt --start-states runs/action-map-$tag/start_states.npz --out runs/eval-play-$tag
}

# shellcheck disable=SC2086
{
stage record-1 $NB record --out data/breakout $REC --seed 1
if [[ $RECIPE == shipped ]]; then
    S="--width 16 --codes 16 --checkpoint-minutes 3"
    WM=runs/w16c16b-heads/world_model.pt
    stage w16c16b $NB train world-model $D --out runs/w16c16b $S --steps 10000
    stage w16c16bf $NB train world-model $D --out runs/w16c16bf $S --steps 1500 --lr 4e-4 --warmup 50 --unroll 0.5 --unroll-steps 4 --freeze-encoder --init runs/w16c16b/world_model.pt
    stage w16c16bf-ei $NB train world-model $D --out runs/w16c16bf-ei $S --steps 1000 --warmup 50 --unroll 0.0 --serve-share 0.25 --event-input --init runs/w16c16bf/world_model.pt
    stage w16c16bf-pt $NB train paddle-table $D --world-model runs/w16c16bf-ei/world_model.pt --out runs/w16c16bf-pt
    stage w16c16b-heads $NB train copy-heads --source checkpoints/world_model.pt --world-model runs/w16c16bf-pt/world_model.pt --out runs/w16c16b-heads
    play_stages w16c16b
    exit 0
fi
# The first stage: 10,000 updates, then 1,800 and 3,000 more at lower peak rates (14,800 in all).
stage wm-b16 $NB train world-model $D --out runs/wm-b16 --steps 10000 $BF16
stage wm-b16r $NB train world-model $D --out runs/wm-b16r --steps 1800 --lr 5e-4 --warmup 50 --init runs/wm-b16/world_model.pt $BF16
stage wm-b16r2 $NB train world-model $D --out runs/wm-b16r2 --steps 3000 --lr 3e-4 --warmup 50 --init runs/wm-b16r/world_model.pt $BF16
# The second stage with the encoder frozen (the codes keep the paddle), then the event input.
stage wm-b16r2f $NB train world-model $D --out runs/wm-b16r2f --steps 7000 --lr 4e-4 --warmup 50 --unroll 0.5 --unroll-steps 4 --freeze-encoder --init runs/wm-b16r2/world_model.pt $BF16
stage wm-b16r2f-ei $NB train world-model $D --out runs/wm-b16r2f-ei --steps 1500 --warmup 50 --unroll 0.0 --serve-share 0.25 --event-input --init runs/wm-b16r2f/world_model.pt $BF16
stage wm-b16r2f-pt $NB train paddle-table $D --world-model runs/wm-b16r2f-ei/world_model.pt --out runs/wm-b16r2f-pt
# Two more recordings for the heads (other seeds; the held-out episodes stay unseen).
stage record-2 $NB record --out data/breakout-2 $REC --seed 2
stage record-3 $NB record --out data/breakout-3 $REC --seed 3
# The four heads, reading the episodes once through the sample cache.
stage wm-b16r2f-brick $NB train ball-head $D $X --world-model runs/wm-b16r2f-pt/world_model.pt --out runs/wm-b16r2f-brick --bricks --width 32 --steps 10000 $BF16 $E
stage wm-b16r2f-ball $NB train ball-head $D $X --world-model runs/wm-b16r2f-brick/world_model.pt --out runs/wm-b16r2f-ball --first-ball --width 32 --steps 24000 $BF16 $E
stage wm-b16r2f-return $NB train ball-head $D $X --world-model runs/wm-b16r2f-ball/world_model.pt --out runs/wm-b16r2f-return --returns --width 32 --steps 4000 $BF16 $E
stage wm-b16r2f-rbricks $NB train ball-head $D $X --world-model runs/wm-b16r2f-return/world_model.pt --out runs/wm-b16r2f-rbricks --returns --bricks --width 32 --steps 3000 $BF16 $E
play_stages b16r2f
}
