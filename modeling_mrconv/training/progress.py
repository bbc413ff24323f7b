"""Progress of the training loop: on a terminal a tqdm bar, with messages through `tqdm.write` (never on the bar's
line); redirected (`> train.log 2>&1`), where a bar would be one line of `\\r`-joined updates, one plain line at most
every `interval` seconds and at the last step."""

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from tqdm.auto import tqdm
from transformers.utils import logging as transformers_logging


class Progress:
    """The progress of steps `initial + 1 .. total` (`update(step)` after each optimizer step); nothing is written
    unless `enabled` (the local main process). `interactive`: a bar, or plain lines (default: whether `file` is a
    terminal); `file` defaults to stderr for the bar, stdout for lines and messages."""

    def __init__(
        self,
        total: int,
        initial: int = 0,
        enabled: bool = True,
        interactive: bool | None = None,
        interval: float = 30.0,
        file: TextIO | None = None,
    ):
        self.total, self.initial, self.enabled, self.interval, self.file = total, initial, enabled, interval, file
        self.interactive = (file or sys.stderr).isatty() if interactive is None else interactive
        self.postfix: dict[str, str] = {}
        self.start = self.last_line = time.monotonic()
        self.bar = None
        if enabled and self.interactive:
            self.bar = tqdm(total=total, initial=initial, file=file, mininterval=0.5, dynamic_ncols=True)

    def update(self, step: int) -> None:
        """Step `step` is done."""
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            return
        now = time.monotonic()
        if now - self.last_line < self.interval and step != self.total:
            return
        self.last_line = now
        seconds_per_step = (now - self.start) / max(step - self.initial, 1)
        left = round(seconds_per_step * (self.total - step))
        values = "".join(f", {k}={v}" for k, v in self.postfix.items())
        self.write(
            f"step {step}/{self.total} ({100 * step / self.total:.0f}%), {seconds_per_step:.3f} s/step, "
            f"{left // 60}m{left % 60:02d}s left{values}"
        )

    def set_postfix(self, **values: str) -> None:
        """Values shown after the progress (loss, accuracy)."""
        self.postfix = values
        if self.bar is not None:
            self.bar.set_postfix(values)

    def write(self, message: str) -> None:
        """A message on its own line (through the bar on a terminal)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message, file=self.file or sys.stdout)
        else:
            print(message, file=self.file or sys.stdout, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def library_bars(enabled: bool) -> Iterator[None]:
    """transformers' own progress bars (saving and loading shards) on or off inside the block, restored after it."""
    was_enabled = transformers_logging.is_progress_bar_enabled()
    if not enabled:
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


__all__ = ["Progress", "library_bars"]
