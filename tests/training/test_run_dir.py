"""modeling_mrconv.training.run_dir: an output folder holding files is refused unless resumed; only our own runs are
replaced; each refusal says what works for that folder, and `--resume` is checked before anything is built."""

import re

import pytest

from modeling_mrconv.training import mark_run_dir, prepare_output_dir, resolve_resume
from modeling_mrconv.training.run_dir import RUN_MARKER


def checkpoint(run, step: int):
    folder = run / "checkpoints" / f"step_{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text("{}")
    return folder


def test_new_and_empty_folders_are_accepted(tmp_path):
    prepare_output_dir(tmp_path / "new", None, False)
    (tmp_path / "empty").mkdir()
    prepare_output_dir(tmp_path / "empty", None, False)
    assert (tmp_path / "empty").is_dir()


def test_a_run_with_a_checkpoint_is_refused_unless_resumed(tmp_path):
    mark_run_dir(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    checkpoint(tmp_path, 4)
    (tmp_path / "checkpoints" / "latest").write_text("step_4")
    with pytest.raises(
        ValueError, match=re.escape(f"already holds a run; pass --resume {tmp_path}/checkpoints/latest")
    ):
        prepare_output_dir(tmp_path, None, False)
    prepare_output_dir(tmp_path, "checkpoints/latest", False)
    assert (tmp_path / "metrics.jsonl").read_text() == "{}\n"  # resuming deletes nothing
    assert resolve_resume(tmp_path / "checkpoints" / "latest") == tmp_path / "checkpoints" / "step_4"


def test_a_run_that_failed_before_its_first_checkpoint_is_not_offered_to_resume(tmp_path):
    """A run that failed on its data leaves its marker and preset: the refusal names what works, and a --resume of
    it says there is nothing to resume (it used to fail with a FileNotFoundError on checkpoints/latest)."""
    mark_run_dir(tmp_path)
    (tmp_path / "training_preset.yaml").write_text("data: {}\n")
    with pytest.raises(ValueError) as refusal:
        prepare_output_dir(tmp_path, None, False)
    assert str(refusal.value) == (
        f"--output_dir {tmp_path} holds a run of scripts/train.py that stopped before its first checkpoint (nothing "
        "to resume); pass --overwrite_output_dir to replace it, or another --output_dir."
    )
    with pytest.raises(
        FileNotFoundError, match=re.escape("holds no checkpoint (its run stopped before the first one)")
    ):
        resolve_resume(tmp_path / "checkpoints" / "latest")
    prepare_output_dir(tmp_path, None, True)  # what the message says works
    assert not tmp_path.exists()


def test_a_folder_of_other_files_is_refused_without_offering_resume(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"already holds files that scripts/train.py did not write; choose another"):
        prepare_output_dir(tmp_path, None, False)


def test_resume_names_the_checkpoint_to_pass(tmp_path):
    checkpoint(tmp_path, 2)
    checkpoint(tmp_path, 10)
    (tmp_path / "checkpoints" / "latest").write_text("step_99")  # deleted by hand
    assert resolve_resume(tmp_path / "checkpoints" / "step_10") == tmp_path / "checkpoints" / "step_10"
    for wrong in (tmp_path / "checkpoints" / "latest", tmp_path, tmp_path / "checkpoints" / "step_3"):
        with pytest.raises(
            FileNotFoundError, match=re.escape(f"pass --resume {tmp_path / 'checkpoints' / 'step_10'}")
        ):
            resolve_resume(wrong)
    with pytest.raises(FileNotFoundError, match="pass a checkpoints/step_<N> folder"):
        resolve_resume(tmp_path / "elsewhere")


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
