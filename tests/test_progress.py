"""Progress bars: live on a terminal, a few whole lines in a log."""

import io

from fgbg.core.progress import progress


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_a_log_gets_whole_lines_not_every_update():
    log = Stream(tty=False)
    for _ in progress(range(5000), stream=log, desc="epoch 0 train"):
        pass
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and len(lines) <= 3, lines  # the first, perhaps one at 30 s, and the last
    assert lines[-1].startswith("epoch 0 train: 100%") and "5000/5000" in lines[-1]


def test_a_terminal_keeps_the_live_bar():
    term = Stream(tty=True)
    for _ in progress(range(50), stream=term, desc="x", mininterval=0, miniters=1):
        pass
    assert term.getvalue().count("\r") > 40
