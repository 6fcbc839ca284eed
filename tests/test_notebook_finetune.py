"""The fine-tuning notebook runs top to bottom (tiny base, few steps) and plots before/after."""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "finetune_custom_pairs.ipynb"


def test_finetune_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("MMEMBED_NB_BASE", "tiny-random")
    monkeypatch.setenv("MMEMBED_NB_STEPS", "4")
    monkeypatch.setenv("MMEMBED_NB_WORK", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "before:" in text and "after:" in text
    assert "missing.png" in text and "skipped" in text  # the bad row is reported
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert (tmp_path / "my-shapes" / "model.safetensors").is_file()
