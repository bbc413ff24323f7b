"""modeling_mrconv/training/progress.py: messages never glued to the progress bar on a terminal, and a redirected log
of plain lines without carriage returns (issue 18: `loss=1.934]step 250: validation accuracy 0.2630`)."""

import io
import re

from transformers.utils import logging as transformers_logging

from modeling_mrconv.training.progress import Progress, library_bars


def test_terminal_messages_are_written_on_their_own_line():
    terminal = io.StringIO()
    progress = Progress(total=4, interactive=True, file=terminal)
    for step in (1, 2):
        progress.update(step)
    progress.set_postfix(loss="1.934", acc="0.250")
    progress.write("step 2: validation accuracy 0.2630")
    progress.update(3)
    progress.close()
    shown = terminal.getvalue()
    assert "loss=1.934" in shown
    # tqdm.write clears the bar line first: the message is a line of its own, never after the bar's text
    assert "\nstep 2: validation accuracy 0.2630\n" in shown.replace("\r", "\n")
    assert not re.search(r"\]step 2", shown)


def test_a_redirected_log_holds_plain_lines(capsys):
    progress = Progress(total=3, interactive=False, interval=0.0)
    progress.set_postfix(loss="1.500")
    progress.update(1)
    progress.write("step 1: validation accuracy 0.5000")
    progress.update(2)
    progress.update(3)
    progress.close()
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert "\r" not in captured.out + captured.err
    assert lines[1] == "step 1: validation accuracy 0.5000"
    steps = [lines[0], *lines[2:]]
    assert [line.split(",")[0] for line in steps] == ["step 1/3 (33%)", "step 2/3 (67%)", "step 3/3 (100%)"]
    assert all(re.search(r"s/step, \dm\d\ds left, loss=1.500$", line) for line in steps)


def test_plain_lines_come_at_most_every_interval_and_at_the_end(capsys):
    progress = Progress(total=100, interactive=False, interval=3600.0)
    for step in range(1, 101):
        progress.update(step)
    assert [line.split(",")[0] for line in capsys.readouterr().out.splitlines()] == ["step 100/100 (100%)"]


def test_other_processes_write_nothing(capsys):
    progress = Progress(total=2, enabled=False, interactive=False, interval=0.0)
    progress.update(1)
    progress.write("step 1: validation accuracy 1.0")
    progress.update(2)
    assert capsys.readouterr().out == ""


def test_library_bars_are_off_for_a_redirected_log_and_restored():
    assert transformers_logging.is_progress_bar_enabled()
    with library_bars(False):
        assert not transformers_logging.is_progress_bar_enabled()
    assert transformers_logging.is_progress_bar_enabled()
    with library_bars(True):
        assert transformers_logging.is_progress_bar_enabled()
