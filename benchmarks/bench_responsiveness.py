"""GUI responsiveness while the widget matches 10 000 points.

Drives the real widget in a napari viewer (needs a display; run under
xvfb-run without one): a 2000 x 2000 texture, 10 000 points, the widget's
default radii and every feature on. A 10 ms Qt timer ticks on the GUI thread
during the run; the gaps between its ticks show how long the GUI ever stood
still (the median should stay near 10 ms).
Run: xvfb-run -a python benchmarks/bench_responsiveness.py
"""

import time

import napari
import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication
from scipy import ndimage

from napari_normxcorr import MatchWidget


def main(count=10_000):
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(size=(2000, 2000)), 1.5)
    viewer = napari.Viewer(show=True)
    viewer.add_image(base, name="before")
    viewer.add_image(np.roll(base, (5, -8), axis=(0, 1)), name="after")
    viewer.add_points(
        rng.uniform(50, 1950, size=(count, 2)), name="pois", size=3
    )
    widget = MatchWidget(viewer)
    viewer.window.add_dock_widget(widget)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    start = time.perf_counter()
    widget.run()
    while widget.result is None or widget._worker is not None:
        QApplication.processEvents()
        time.sleep(0.002)
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
