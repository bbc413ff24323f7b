"""The output directory of a run: refused when it holds a run, unless resumed or replaced (only our own runs)."""

import shutil
from pathlib import Path


RUN_MARKER = ".mrconv_run"  # written by scripts/train.py into every output directory it uses


def mark_run_dir(output_dir: Path) -> None:
    """Mark `output_dir` as written by scripts/train.py, so `--overwrite_output_dir` may delete it later."""
    (output_dir / RUN_MARKER).write_text(
        "written by scripts/train.py; --overwrite_output_dir may delete this folder\n"
    )


def prepare_output_dir(output_dir: Path, resume: str | None, overwrite: bool) -> None:
    """Refuse a non-empty `output_dir` unless resuming, or delete it for `overwrite` if (and only if) it is ours."""
    if not output_dir.exists() or resume is not None:
        return
    if not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir}: exists and is not a folder")
    if not any(output_dir.iterdir()):
        return
    if not overwrite:
        raise ValueError(
            f"--output_dir {output_dir} already holds files; pass --resume {output_dir}/checkpoints/latest to "
            "continue that run, --overwrite_output_dir to replace it, or another --output_dir."
        )
    if not (output_dir / RUN_MARKER).is_file():
        raise ValueError(
            f"--overwrite_output_dir: refusing to delete {output_dir}: it has no {RUN_MARKER} marker, so it was not "
            "written by scripts/train.py. Delete it yourself or choose another --output_dir."
        )
    shutil.rmtree(output_dir)


__all__ = ["RUN_MARKER", "mark_run_dir", "prepare_output_dir"]
