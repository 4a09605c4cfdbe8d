"""The CLI progress bar: on stderr only, and off unless asked or on a large job at a terminal."""

from engine.output import PROGRESS_LINES_MIN, Progress


def test_progress_writes_to_stderr_only(capsys):
    with Progress("validating", 3, enabled=True) as progress:
        for _ in range(3):
            progress.advance(1)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "validating" in captured.err


def test_progress_is_silent_when_stderr_is_not_a_terminal(capsys):
    with Progress("executing", PROGRESS_LINES_MIN * 10) as progress:
        progress.advance(PROGRESS_LINES_MIN)
    assert capsys.readouterr() == ("", "")
