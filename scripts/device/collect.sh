# pack the newest checkpoint's model folder (or the final export) + logs into $OUT, split under 16 MB
src=/tmp/run/final; [ -d $src ] || src=$(ls -d /tmp/run/checkpoints/step_*/model | tail -1)
echo "collecting $src"
mkdir -p /tmp/col && rm -rf /tmp/col/* && cp -r $src /tmp/col/model && cp /tmp/run/log.jsonl /tmp/st/train.log /tmp/st/cfg.toml /tmp/col/ 2>/dev/null
tar -C /tmp/col -cf - . | xz -T8 -3 > /tmp/col.tar.xz && split -b 15M /tmp/col.tar.xz $OUT/col.part.
ls -la $OUT
