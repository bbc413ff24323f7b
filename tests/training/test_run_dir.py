"""modeling_mrconv.training.run_dir: an output folder holding files is refused unless resumed; only our own runs are replaced."""

import pytest

from modeling_mrconv.training import mark_run_dir, prepare_output_dir
from modeling_mrconv.training.run_dir import RUN_MARKER


def test_new_and_empty_folders_are_accepted(tmp_path):
    prepare_output_dir(tmp_path / "new", None, False)
    (tmp_path / "empty").mkdir()
    prepare_output_dir(tmp_path / "empty", None, False)
    assert (tmp_path / "empty").is_dir()


def test_a_folder_holding_files_is_refused_unless_resumed(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match=r"already holds files; pass --resume .*checkpoints/latest"):
        prepare_output_dir(tmp_path, None, False)
    prepare_output_dir(tmp_path, "checkpoints/latest", False)
    assert (tmp_path / "metrics.jsonl").read_text() == "{}\n"  # resuming deletes nothing


def test_overwrite_deletes_only_marked_folders(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match=rf"refusing to delete .*theirs: it has no {RUN_MARKER} marker"):
        prepare_output_dir(theirs, None, True)
    assert (theirs / "thesis.tex").read_text() == "years of work"
    ours = tmp_path / "ours"
    ours.mkdir()
    mark_run_dir(ours)
    (ours / "model.safetensors").write_text("x")
    prepare_output_dir(ours, None, True)
    assert not ours.exists()


def test_a_file_is_not_an_output_folder(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        prepare_output_dir(tmp_path / "file", None, True)
