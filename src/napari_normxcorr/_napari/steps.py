"""GUI work in steps, one per turn of the event loop: drawing 16 000
results adds several layers, each costing napari 0.1-0.4 s; one after the
other in one callback they freeze the GUI for a second or more."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

# Between two steps: the canvas repaints after a step (tens of ms with
# 16 000 markers); a zero timer due since before the repaint would run
# the next step straight after it, before any other event.
PAUSE_MS = 10


class Steps:
    """A queue of GUI callbacks, run one per event-loop turn, in order."""

    def __init__(self) -> None:
        self._queue: deque[Callable[[], Any]] = deque()
        self._scheduled = False
        self.closed = False

    @property
    def busy(self) -> bool:
        """Whether steps are waiting to run."""
        return bool(self._queue)

    def add(self, step: Callable[[], Any]) -> None:
        """Run `step` on a later turn of the event loop."""
        self._queue.append(step)
        self._schedule()

    def add_next(self, step: Callable[[], Any]) -> None:
        """Run `step` on the next turn, before the steps waiting."""
        self._queue.appendleft(step)
        self._schedule()

    def clear(self) -> None:
        """Forget the waiting steps (their widgets are gone)."""
        self._queue.clear()

    def _schedule(self) -> None:
        from qtpy.QtCore import QTimer

        if not self._scheduled and self._queue:
            self._scheduled = True
            QTimer.singleShot(PAUSE_MS, self._next)

    def _next(self) -> None:
        self._scheduled = False
        if not self._queue:
            return
        step = self._queue.popleft()
        try:
            step()
        finally:
            self._schedule()


def now(step: Callable[[], Any]) -> None:
    """Run `step` at once (the default where nothing is batched)."""
    step()


def wait_while(busy: Callable[[], bool], timeout: float, what: str) -> None:
    """Process GUI events while `busy()`; TimeoutError after `timeout` s."""
    import time

    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while busy():
        QApplication.processEvents()
        time.sleep(0.002)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} still runs after {timeout} s")
