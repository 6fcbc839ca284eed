"""Time to a ready model in a FRESH Python process: mmembed.load() vs sentence-transformers.

Each workload runs in its own child process (so no import is already paid), `--repeats` times;
the child reports, from its own start: seconds to import the libraries, to load the model, to the
first embedding, and its peak RSS. The "import floor" row imports only torch and
transformers.modeling_utils, which every transformers-based tool pays before loading anything.

    flock /tmp/mmembed-heavy.lock python benchmarks/bench_load.py --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

CHILD_PRELUDE = """
import json, resource, time
T0 = time.perf_counter()
def done(imported, loaded, first):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"import": imported - T0, "load": loaded - T0, "first": first - T0, "peak_mb": peak}))
"""

def _mmembed(setup: str, name: str = "") -> str:
    """A child that runs `setup` (imports), then times mmembed.load(name) and a first embedding."""
    return f"""
{setup}
imported = time.perf_counter()
model = mmembed.load({repr(name) if name else ""})
loaded = time.perf_counter()
model.encode_text(["a red apple"])
done(imported, loaded, time.perf_counter())
"""


WORKLOADS = {
    "import floor (torch + transformers.modeling_utils)": """
import torch, transformers.modeling_utils
t = time.perf_counter()
done(t, t, t)
""",
    "mmembed.load() (default model)": _mmembed("import mmembed"),
    "mmembed.load() after `import torch` (a notebook that has it)": _mmembed("import torch, mmembed"),
    "mmembed.load('gemma3-270m-prompteol') (text only)": _mmembed("import mmembed", "gemma3-270m-prompteol"),
    "sentence-transformers, same Gemma folder (tokenizer.json)": """
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
from mmembed.assets import packaged_backbone_dir
folder = str(packaged_backbone_dir("gemma3-270m"))
imported = time.perf_counter()
word = Transformer(folder)
pool = Pooling(word.get_embedding_dimension(), pooling_mode="lasttoken")
st = SentenceTransformer(modules=[word, pool], device="cpu")
loaded = time.perf_counter()
st.encode(['This sentence : "a red apple" means in one word:"'])
done(imported, loaded, time.perf_counter())
""",
}


def run_child(body: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="2", TQDM_DISABLE="1")
    out = subprocess.run(
        [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(body)],
        capture_output=True, text=True, env=env, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"fresh-process load times, median of {args.repeats} (min in brackets); load average {os.getloadavg()[0]:.1f}")
    print(f"{'workload':<62} {'imports s':>14} {'load() done s':>15} {'load() alone s':>15} {'1st embedding s':>16} {'peak MB':>8}")
    for name, body in WORKLOADS.items():
        runs = [run_child(body) for _ in range(args.repeats)]

        for r in runs:
            r["alone"] = r["load"] - r["import"]  # the load() call itself, imports already paid

        def cell(key: str) -> str:
            values = [r[key] for r in runs]
            return f"{statistics.median(values):.2f} [{min(values):.2f}]"

        peak = max(r["peak_mb"] for r in runs)
        print(f"{name:<62} {cell('import'):>14} {cell('load'):>15} {cell('alone'):>15} {cell('first'):>16} {peak:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
