"""The longest GUI stall while the widget draws 16 000 results.

Drives the real widget in a napari viewer (needs a display; run under
xvfb-run without one): a 1500 x 1500 texture and a 127 x 127 grid of
points (16 129), small radii so that matching is quick. A 5 ms Qt timer
ticks on the GUI thread from Run until everything is drawn (the matched
points, the vectors, the surface, the results table); the longest gap
between two ticks is the longest time the GUI stood still. The goal is
at most ~100 ms.
Run: xvfb-run -a python benchmarks/bench_gui_stall.py
"""

import os
import platform
import time

import napari
import numpy as np
import qtpy
from qtpy.QtCore import QTimer

from _gui import viewer_with_widget, wait


def machine():
    """One line: the machine and the versions that shape the numbers."""
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, numpy {np.__version__}, napari "
        f"{napari.__version__}, {qtpy.API_NAME} {qtpy.QT_VERSION}"
    )


def stall(widget, ticks, start):
    """Run, wait for everything to be drawn; the longest gap (ms) and when
    it happened (s after Run)."""
    widget.run()
    wait(lambda: not widget.running, 600)
    # Work queued for later ticks (batched drawing) gets drawn too.
    wait(lambda: not getattr(widget, "drawing", False), 60)
    end = time.perf_counter()
    wait(lambda: time.perf_counter() > end + 0.3, 5)
    times = np.array([t for t in ticks if t >= start])
    gaps = np.diff(times) * 1e3
    worst = int(np.argmax(gaps))
    return gaps[worst], times[worst] - start, end - start


def main(side=127):
    print(machine())
    axis = np.linspace(40, 1460, side)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    viewer, _, widget = viewer_with_widget(grid, size=1500)
    widget.template_radius.value = 6
    widget.search_radius.value = (16, 16)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(5)
    for run in ("first run", "second run (layers updated)"):
        start = time.perf_counter()
        gap, at, total = stall(widget, ticks, start)
        print(
            f"{len(grid)} points, {run}: done in {total:.1f} s; longest "
            f"GUI stall {gap:.0f} ms ({at:.1f} s after Run)"
        )
    viewer.close()


if __name__ == "__main__":
    main()
