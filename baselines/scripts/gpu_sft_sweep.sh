#!/bin/bash
# SFT sweep on a lent GPU machine (issue 16): collect demonstrations with many simulator workers, train several
# variants of the tiny recipe side by side on the GPU, screen each on `ind` seed 0 (64 episodes, T = 0.6).
# Everything it writes that matters lands in $OUT (checkpoints' final/ folders, logs, metrics, eval summaries).
# Scale knobs (env): DEMOS, DWORKERS, STEPS, BUDGET_MIN, BATCH, EVAL_EPS, EWORKERS, CONFIGS, PY.
set -u
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
PY=${PY:-python3}
DEMOS=${DEMOS:-1500}; DWORKERS=${DWORKERS:-15}; STEPS=${STEPS:-6000}; BUDGET_MIN=${BUDGET_MIN:-3.5}
BATCH=${BATCH:-64}; EVAL_EPS=${EVAL_EPS:-64}; EWORKERS=${EWORKERS:-3}; DEVICE=${DEVICE:-cuda}
WORK=${WORK:-/tmp/sweep}; mkdir -p $WORK $OUT
DATA=$WORK/demos
el "collect $DEMOS demos with $DWORKERS workers"
timeout -s INT -k 20 ${COLLECT_S:-100000} $PY -m vla_gen_bench.cli collect-demos --episodes $DEMOS --workers $DWORKERS --out $DATA --variant ind --seed 1000 \
  --camera fast --key vgb_demos --oracle scripted-smooth --noise-xyz 0.01 --noise-yaw 0.1 --noise-gripper 0.15 \
  --filter.no-enabled --filter.success-hold 6 > $OUT/collect.log 2>&1
el "collect rc=$?"; sleep 1; [ "$DEVICE" = cuda ] && pkill -f "multiprocessing.spawn" 2>/dev/null  # device machine only
tail -3 $OUT/collect.log
# a collection cut by COLLECT_S: train on the contiguous prefix of attempted episodes (nothing is re-collected)
DEMOS=$($PY - "$DATA" <<'PYEOF'
import sys
from pathlib import Path
from vla_gen_bench.training.demos import done_names, episode_name
root = Path(sys.argv[1]); done = done_names(root); m = 0
while episode_name(1000, m) in done:
    m += 1
for p in (root / "episodes").glob("*"):  # episodes past the prefix would change what "all episodes" means
    if p.name.startswith("s1000_e") and int(p.name[7:13]) >= m:
        p.unlink()
for p in (root / "failed").glob("*.json"):
    if int(p.name[7:13]) >= m:
        p.unlink()
print(m)
PYEOF
)
el "demos prefix: $DEMOS attempted episodes"; cp $DATA/dataset.json $OUT/ 2>/dev/null
# name|extra options (all on top of the tiny recipe)
CONFIGS=${CONFIGS:-"A|--seed 0
B|--seed 1 --init-seed 1
C|--seed 0 --demos 600
D|--seed 0 --lr 2e-3"}
pids=()
while IFS='|' read -r name opts; do
  [ -z "$name" ] && continue
  OMP_NUM_THREADS=2 $PY -m vla_gen_bench.cli train-baseline sft --preset tiny --data $DATA --collect.episodes $DEMOS \
    --out $WORK/runs/$name --batch-size $BATCH --max-steps $STEPS --warmup-steps 200 --save-every 100000 \
    --time-budget-min $BUDGET_MIN --eval-episodes 0 --device $DEVICE --log-every 100 $opts \
    > $OUT/train_$name.log 2>&1 &
  pids+=($!)
done <<< "$CONFIGS"
for p in "${pids[@]}"; do wait $p; done
el "training done"
[ "${EVAL_EPS}" = 0 ] && { for n in $WORK/runs/*; do b=$(basename $n); mkdir -p $OUT/$b; cp $n/metrics.csv $n/config.json $OUT/$b/; cp -r $n/final $OUT/$b/final; done; exit 0; }
pids=()
while IFS='|' read -r name opts; do
  [ -z "$name" ] && continue
  mkdir -p $OUT/$name; cp $WORK/runs/$name/metrics.csv $WORK/runs/$name/config.json $OUT/$name/ 2>/dev/null
  cp -r $WORK/runs/$name/final $OUT/$name/final 2>/dev/null
  tail -2 $WORK/runs/$name/metrics.csv
  OMP_NUM_THREADS=1 $PY -m vla_gen_bench.cli evaluate --policy openvla:$WORK/runs/$name/final --suite ind --seeds 0 \
    --episodes $EVAL_EPS --workers $EWORKERS --camera fast --policy-server off --policy-arg temperature=0.6 \
    --policy-arg device=$DEVICE --policy-arg dtype=float32 --videos 0 --no-report --out $WORK/eval/$name \
    > $OUT/eval_$name.log 2>&1 &
  pids+=($!)
done <<< "$CONFIGS"
for p in "${pids[@]}"; do wait $p; done
el "eval done"
for d in $WORK/eval/*; do n=$(basename $d); mkdir -p $OUT/$n/eval; cp $d/summary.csv $d/run.json $d/episodes.jsonl $OUT/$n/eval/ 2>/dev/null
  echo "$n: $(grep -c '"success": true' $d/episodes.jsonl) / $(wc -l < $d/episodes.jsonl) successes, $(grep -c '"grasped": true' $d/episodes.jsonl) grasped"; done
