# poll the run for up to $1 seconds; print the log's loss/dev lines
. .gpu0/env.sh
end=$((SECONDS + ${1:-500}))
while [ $SECONDS -lt $end ]; do
  # [d]: the pattern must not match this script's own command line (pkill -f with it killed the call once)
  if ! pgrep -f "from mmembe[d].cli" >/dev/null; then echo "run ended"; break; fi
  sleep 15
done
tail -c 1500 /tmp/st/train.log | tr '\r' '\n' | tail -5
grep -h dev /tmp/run/log.jsonl 2>/dev/null | tail -6
tail -n 2 /tmp/run/log.jsonl 2>/dev/null
ls /tmp/run/checkpoints 2>/dev/null
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv
