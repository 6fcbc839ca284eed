"""The notebooks run top to bottom with small settings (tiny random model) and show pictures."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.parametrize("name, min_images", [("text_to_image_search.ipynb", 4), ("cross_lingual_retrieval.ipynb", 2)])
def test_notebook_executes_and_shows_images(name, min_images, tmp_path, monkeypatch):
    monkeypatch.setenv("MMEMBED_NB_MODEL", "tiny-random")
    monkeypatch.setenv("MMEMBED_NB_SIZE", "24")
    monkeypatch.setenv("MMEMBED_NB_K", "3")
    monkeypatch.setenv("MMEMBED_NB_WORK", str(tmp_path))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= min_images, f"{name}: {len(images)} image outputs, expected {min_images}+"
    text = "".join(o.get("text", "") for o in outputs)
    assert "tiny-random" in text
