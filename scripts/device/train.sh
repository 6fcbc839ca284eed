# launch the GPU run in its own session (survives between calls while the machine is held)
. .gpu0/env.sh
sed -e 's#data/build/#/tmp/st/data/#' -e 's#^out = .*#out = "/tmp/run"#' ${CFG:-configs/gemma3-270m-mm-lora.toml} > /tmp/st/cfg.toml
setsid nohup python3 -c "from mmembed.cli import app; app()" train /tmp/st/cfg.toml > /tmp/st/train.log 2>&1 < /dev/null &
echo launched
