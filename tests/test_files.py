"""Atomic writes (`noisy_emcom.files`): the mode every output gets, and failed writes."""

import errno
import os

import numpy as np
import pandas as pd
import pytest

from noisy_emcom import evaluate, files
from noisy_emcom.data import files as data_files


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_every_writer_gives_the_umask_mode(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        written = [
            *evaluate.write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv"),
            data_files.save_npz(tmp_path / "d.npz", {"x": np.zeros(2)}),
            data_files.save_npy(tmp_path / "d.npy", np.zeros(2)),
            data_files.save_json(tmp_path / "d.json", {"a": 1}),
            files.atomic_write_text(tmp_path / "r.md", "text"),
        ]
    finally:
        os.umask(old)
    for path in written:
        assert path.stat().st_mode & 0o777 == mode, path
    assert np.load(tmp_path / "d.npz")["x"].shape == (2,)  # no ".npz" appended to the name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path):
    path = files.atomic_write_text(tmp_path / "table.csv", "old\n")

    def full_disk(tmp):
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(files.WriteError, match=f"cannot write {path}: No space left"):
        files.atomic_write(path, full_disk)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary file left


def test_a_folder_that_cannot_be_made_names_the_file(tmp_path):
    (tmp_path / "afile").write_text("a file, not a folder")
    target = tmp_path / "afile" / "t.csv"
    with pytest.raises(files.WriteError, match=f"cannot write {target}"):
        files.atomic_write_text(target, "x")


def test_an_error_of_the_writer_passes_through_and_keeps_the_old_file(tmp_path):
    path = files.atomic_write_text(tmp_path / "t.csv", "old\n")

    def broken(tmp):
        tmp.write_text("partial")
        raise ValueError("not a table")

    with pytest.raises(ValueError, match="not a table"):
        files.atomic_write(path, broken)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_a_dead_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    dead = 4194305  # above Linux's largest pid: no such process
    stale = tmp_path / f".t.csv.{dead}.ab12.tmp"
    live = tmp_path / f".t.csv.{os.getpid()}.cd34.tmp"
    other = tmp_path / f".u.csv.{dead}.ef56.tmp"  # another file's: left to its own writes
    for p in (stale, live, other):
        p.write_text("partial")
    files.atomic_write_text(tmp_path / "t.csv", "new\n")
    assert not stale.exists() and live.exists() and other.exists()
