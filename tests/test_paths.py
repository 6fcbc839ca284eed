"""Atomic writes and output-path checks (mmembed/paths.py), shared by every command that writes files."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from mmembed.paths import (OutputPathError, check_output_file, default_mode, temp_dir_beside, write_atomically,
                           write_text_atomically)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_an_atomic_write_gets_the_umask_mode_not_the_private_one_of_a_temporary_file(tmp_path):
    old = os.umask(0o022)
    try:
        assert default_mode() == 0o644 and default_mode(folder=True) == 0o755
        path = write_text_atomically(tmp_path / "a" / "results.json", "{}\n")  # the parent is made
        assert path.read_text() == "{}\n" and _mode(path) == 0o644  # mkstemp alone gives 0600
        os.umask(0o077)
        assert default_mode() == 0o600
    finally:
        os.umask(old)


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")
    path.chmod(0o640)
    write_text_atomically(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o640


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")

    def half(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt  # as a Ctrl-C in the middle of a long write

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, half)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_the_temporary_name_keeps_the_suffix_for_writers_that_read_it(tmp_path):
    seen = []
    write_atomically(tmp_path / "v.npy", lambda tmp: (seen.append(tmp.suffix), np.save(tmp, np.zeros(2))))
    assert seen == [".npy"] and np.load(tmp_path / "v.npy").shape == (2,)


def test_a_staging_folder_beside_its_target_is_not_private(tmp_path):
    old = os.umask(0o022)
    try:
        tmp = temp_dir_beside(tmp_path / "new" / "model")
    finally:
        os.umask(old)
    assert tmp.parent == tmp_path / "new" and tmp.name.startswith(".model.tmp-") and _mode(tmp) == 0o755


def test_check_output_file_refuses_folders_paths_below_files_and_read_only_folders(tmp_path):
    check_output_file("--out", tmp_path / "new" / "deeper" / "v.parquet")  # made later: fine
    assert not (tmp_path / "new").exists()  # a check creates nothing
    with pytest.raises(OutputPathError, match="--out .* is a folder; give a file name"):
        check_output_file("--out", tmp_path)
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputPathError, match="f is a file, not a folder"):
        check_output_file("--html", tmp_path / "f" / "hits.html")
    (tmp_path / "link").symlink_to(tmp_path / "missing")
    with pytest.raises(OutputPathError, match="broken link"):
        check_output_file("--out", tmp_path / "link" / "v.npy")


def test_check_output_file_tries_a_real_write_in_the_folder(tmp_path, monkeypatch):
    """os.access says yes to root even on a read-only file system, so the check creates (and drops) a file."""
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(OutputPathError, match=r"--out .*v\.npy: cannot write in .* \(Read-only file system\)"):
        check_output_file("--out", tmp_path / "v.npy")


def _writers():
    import torch

    from mmembed.data.feature_table import write_feature_table
    from mmembed.data.manifest import write_manifest
    from mmembed.evaluation.output import write_json
    from mmembed.search.render import write_html
    from mmembed.training.teacher import _save_atomic

    return {
        "manifest": lambda p: write_manifest(p / "train.jsonl", []),
        "feature table": lambda p: write_feature_table(p / "f.safetensors", {"x": torch.zeros(1, 2)}, ["a"]),
        "eval results": lambda p: write_json(p / "results.json", {}),
        "search page": lambda p: write_html(p / "hits.html", [], "title"),
        "teacher table": lambda p: _save_atomic(p / "t.safetensors", {"v": torch.zeros(2)}, {}),
    }


@pytest.mark.parametrize("writer", sorted(_writers()))
def test_files_the_commands_write_are_readable_by_the_machines_other_users(tmp_path, writer):
    old = os.umask(0o022)
    try:
        _writers()[writer](tmp_path)
    finally:
        os.umask(old)
    [written] = list(tmp_path.iterdir())  # and no temporary file beside it
    assert _mode(written) == 0o644, f"{writer}: {oct(_mode(written))}"
