"""The output directory of a run: refused when it holds files, unless resumed (from a checkpoint it holds) or replaced
(only our own runs). Standard library only: `scripts/train.py` loads this file by path, before the torch imports."""

import shutil
from pathlib import Path


RUN_MARKER = ".mrconv_run"  # written by scripts/train.py into every output directory it uses


def mark_run_dir(output_dir: Path) -> None:
    """Mark `output_dir` as ours, so `--overwrite_output_dir` may delete it later."""
    (output_dir / RUN_MARKER).write_text(
        "written by scripts/train.py; --overwrite_output_dir may delete this folder\n"
    )


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The `--resume` argument for a run folder: `checkpoints/latest` when it points at a checkpoint, else the newest
    `checkpoints/step_<N>` holding `trainer_state.json`; None when the folder holds no checkpoint."""
    checkpoints = output_dir / "checkpoints"
    latest = checkpoints / "latest"
    if latest.is_file() and (checkpoints / latest.read_text().strip() / "trainer_state.json").is_file():
        return latest
    steps = [p for p in checkpoints.glob("step_*") if p.name[5:].isdigit() and (p / "trainer_state.json").is_file()]
    return max(steps, key=lambda p: int(p.name[5:])) if steps else None


def resolve_resume(path: str | Path) -> Path:
    """The checkpoint folder of `--resume` (`checkpoints/step_<N>`, or `checkpoints/latest`: a file naming the newest);
    FileNotFoundError saying what to pass instead."""
    folder = Path(path)
    if folder.name == "latest" and folder.is_file():
        folder = folder.parent / folder.read_text().strip()
    if (folder / "trainer_state.json").is_file():
        return folder
    run = folder.parent.parent if folder.parent.name == "checkpoints" else folder
    found = latest_checkpoint(run)
    if found is not None:
        hint = f"pass --resume {found}"
    elif (run / RUN_MARKER).is_file():
        hint = (
            f"{run} holds no checkpoint (its run stopped before the first one): nothing to resume; start again "
            "with --overwrite_output_dir (allowed for folders written by scripts/train.py), or another --output_dir"
        )
    else:
        hint = "pass a checkpoints/step_<N> folder (or checkpoints/latest) of an output directory of scripts/train.py"
    raise FileNotFoundError(f"--resume {path}: not a checkpoint written by scripts/train.py; {hint}")


def check_output_dir(output_dir: Path, resume: str | None, overwrite: bool) -> None:
    """Refuse a non-empty `output_dir` unless resuming, or overwriting a folder of ours, with a ValueError saying what
    works for that folder; deletes nothing."""
    if not output_dir.exists() or resume is not None:
        return
    if not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir}: exists and is not a folder")
    if not any(output_dir.iterdir()):
        return
    ours = (output_dir / RUN_MARKER).is_file()
    if overwrite and not ours:
        raise ValueError(
            f"--overwrite_output_dir: refusing to delete {output_dir}: it has no {RUN_MARKER} marker, so it was not "
            "written by scripts/train.py. Delete it yourself or choose another --output_dir."
        )
    if overwrite:
        return
    checkpoint = latest_checkpoint(output_dir)
    if checkpoint is not None:
        raise ValueError(
            f"--output_dir {output_dir} already holds a run; pass --resume {checkpoint} to continue it, "
            "--overwrite_output_dir to replace it, or another --output_dir."
        )
    if ours:
        raise ValueError(
            f"--output_dir {output_dir} holds a run of scripts/train.py that stopped before its first checkpoint "
            "(nothing to resume); pass --overwrite_output_dir to replace it, or another --output_dir."
        )
    raise ValueError(
        f"--output_dir {output_dir} already holds files that scripts/train.py did not write; choose another "
        "--output_dir (or empty that folder yourself)."
    )


def prepare_output_dir(output_dir: Path, resume: str | None, overwrite: bool) -> None:
    """`check_output_dir`, then delete `output_dir` for `overwrite` (it is ours, or `check_output_dir` raised)."""
    check_output_dir(output_dir, resume, overwrite)
    if overwrite and resume is None and output_dir.is_dir() and any(output_dir.iterdir()):
        shutil.rmtree(output_dir)


__all__ = [
    "RUN_MARKER",
    "check_output_dir",
    "latest_checkpoint",
    "mark_run_dir",
    "prepare_output_dir",
    "resolve_resume",
]
