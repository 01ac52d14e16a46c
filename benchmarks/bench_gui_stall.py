"""The longest GUI stall while the widget draws 16 000 results.

Drives the real widget in a napari viewer (needs a display; run under
xvfb-run without one): a 1500 x 1500 texture and a 127 x 127 grid of
points (16 129), small radii so that matching is quick. A 5 ms Qt timer
ticks on the GUI thread from Run until everything is drawn (the matched
points, the vectors, the surface and its peaks, the results table); the
longest gap between two ticks is the longest time the GUI stood still.
The goal is at most ~100 ms. The widget's own callbacks (the result
taken, then one step per event-loop turn, 10 ms apart so that the
repaint after a step is not followed at once by the next step) are timed
too: the rest of a gap is napari's, the canvas's and Qt's.

Each new layer takes a turn to be added (hidden) and another to be shown,
where its visual compiles its shaders on its first paint; the matches and
vectors go into layers added empty, their data on one turn and their
colours (and showing) on the next; the results dock is docked on one turn
and filled on the next. Under Xvfb's software OpenGL a turn that adds a
layer or compiles a points layer's shaders, with the repaint and Qt's
composition of the window after it, stays near 0.1 s: that is the floor
here (on a GPU the compile and the composition take a few ms). The second
run (layers updated in place) adds no layer.
With --hidden the viewer is not shown (its canvas never paints): what is
left is the widget's and napari's layer work without the repaints.
Run: xvfb-run -a python benchmarks/bench_gui_stall.py [--hidden]
"""

import os
import platform
import sys
import time

import napari
import numpy as np
import qtpy
from qtpy.QtCore import QTimer

from _gui import viewer_with_widget, wait
from napari_normxcorr._napari import running, steps

CALLBACKS = []


def timed(function):
    """`function`, its durations (ms) kept in CALLBACKS."""

    def call(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            CALLBACKS.append((start, (time.perf_counter() - start) * 1e3))

    return call


def machine():
    """One line: the machine and the versions that shape the numbers."""
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, numpy {np.__version__}, napari "
        f"{napari.__version__}, {qtpy.API_NAME} {qtpy.QT_VERSION}"
    )


def stall(widget, ticks, start):
    """Run and wait until everything is drawn. Returns the longest gap
    (ms) while matching and while drawing (from the result on), and the
    total time (s)."""
    widget.run()
    wait(lambda: not widget.running, 600)
    end = time.perf_counter()
    wait(lambda: time.perf_counter() > end + 0.3, 5)
    drawn = CALLBACKS[0][0]
    times = np.array([t for t in ticks if t >= start])
    gaps = np.diff(times) * 1e3
    matching = gaps[times[1:] < drawn]
    drawing = gaps[times[1:] >= drawn]
    return matching.max(), drawing.max(), end - start


def main(side=127, show=True):
    print(machine())
    running.Runner._on_result = timed(running.Runner._on_result)
    steps.Steps._next = timed(steps.Steps._next)
    axis = np.linspace(40, 1460, side)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    viewer, _, widget = viewer_with_widget(grid, size=1500, show=show)
    print("canvas shown" if show else "canvas hidden (never painted)")
    widget.template_radius.value = 6
    widget.search_radius.value = (16, 16)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(5)
    for run in ("first run", "second run (layers updated)"):
        start = time.perf_counter()
        CALLBACKS.clear()
        matching, drawing, total = stall(widget, ticks, start)
        longest = max(ms for _, ms in CALLBACKS)
        print(
            f"{len(grid)} points, {run}: done in {total:.1f} s; longest "
            f"GUI stall while matching {matching:.0f} ms, while drawing "
            f"the results {drawing:.0f} ms; the widget's drawing callbacks: "
            f"{len(CALLBACKS)}, the longest {longest:.0f} ms"
        )
    viewer.close()


if __name__ == "__main__":
    main(show="--hidden" not in sys.argv)
