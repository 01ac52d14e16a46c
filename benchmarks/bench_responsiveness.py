"""GUI responsiveness while the widget matches 10 000 points.

Drives the real widget in a napari viewer (needs a display; run under
xvfb-run without one): a 2000 x 2000 texture, 10 000 points, the widget's
default radii and every feature on. A 10 ms Qt timer ticks on the GUI thread
during the run; the gaps between its ticks show how long the GUI ever stood
still (the median should stay near 10 ms).
Run: xvfb-run -a python benchmarks/bench_responsiveness.py
"""

import time

import numpy as np
from qtpy.QtCore import QTimer

import _timing
from _gui import viewer_with_widget, wait


def main(count=10_000):
    print(_timing.machine_line())
    rng = np.random.default_rng(1)
    viewer, _, widget = viewer_with_widget(
        rng.uniform(50, 1950, size=(count, 2))
    )
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    start = time.perf_counter()
    widget.run()
    wait(lambda: not widget.running, 600)
    total = time.perf_counter() - start
    gaps = np.diff([t for t in ticks if t >= start]) * 1e3
    print(
        f"{count} points in {total:.1f} s ({total / count * 1e3:.2f} ms "
        f"per point); GUI timer gaps: median {np.median(gaps):.0f} ms, "
        f"99th percentile {np.percentile(gaps, 99):.0f} ms, "
        f"max {gaps.max():.0f} ms"
    )
    viewer.close()


if __name__ == "__main__":
    main()
