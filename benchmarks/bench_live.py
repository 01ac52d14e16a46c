"""Latency of live mode: from a point edit to updated layers.

Drives the real widget in a napari viewer (needs a display; run under
xvfb-run without one). A 2000 x 2000 texture, 20 points, template radius
50 in search radius 200: each edit moves one point, and the time until the
matched layer, the vectors and the surface show its new match is measured.
Prints the median latency and the ratio to re-running all 20 points, for
a shown viewer (every edit also repaints the canvas, on the GUI thread and
with the GIL held: with software OpenGL, as under Xvfb, that paint takes
tens of milliseconds) and for a viewer that is not shown (no painting: the
matching and napari's layer updates alone).
Run: xvfb-run -a python benchmarks/bench_live.py
"""

import time

import numpy as np

import _timing
from _gui import viewer_with_widget, wait


def measure(show, edits=25):
    rng = np.random.default_rng(1)
    viewer, points, widget = viewer_with_widget(
        rng.uniform(300, 1700, size=(20, 2)), show=show
    )
    widget.template_radius.value = 50
    widget.search_radius.value = (200, 200)

    def full_run():
        widget.run()
        wait(lambda: not widget.running)

    full = []
    for _ in range(3):
        start = time.perf_counter()
        full_run()
        full.append(time.perf_counter() - start)

    latencies = []
    for k in range(edits):
        data = points.data.copy()
        data[k % 20] += rng.uniform(-20, 20, size=2)
        start = time.perf_counter()
        # The edit starts the live update at once; it ends when applied.
        points.data = data
        wait(lambda: not widget.running, timeout=30)
        latencies.append(time.perf_counter() - start)
    median = np.median(latencies)
    print(
        f"{'shown' if show else 'not shown'} viewer: edit -> updated layers: "
        f"median {median * 1e3:.0f} ms "
        f"(min {min(latencies) * 1e3:.0f}, max {max(latencies) * 1e3:.0f})"
        f" over {edits} edits"
    )
    print(
        f"full re-run of all 20 points: {np.median(full) * 1e3:.0f} ms; "
        f"ratio full / live: {np.median(full) / median:.1f}"
    )
    viewer.close()


def main():
    print(_timing.machine_line())
    measure(show=True)
    measure(show=False)


if __name__ == "__main__":
    main()
