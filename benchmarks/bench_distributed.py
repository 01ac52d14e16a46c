"""match_points on a LocalCluster of 2 worker processes vs the local run.

A float32 zarr image (written chunk by chunk, never whole in memory) and
its shifted copy; points matched with template radius 15 and search
radius 40, once on the cluster and once locally (threads) on the same
zarr arrays. Prints the throughput ratio, the client's peak memory and
the bytes each task moves.

    python benchmarks/bench_distributed.py           # 16384², 100 000 points
    python benchmarks/bench_distributed.py --small   # 2048², 5 000 points
    python benchmarks/bench_distributed.py --side 8192   # the client's
        # memory against the image size, at the same points
"""

from __future__ import annotations

import argparse
import pickle
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

import _timing
from napari_normxcorr import match_points
from napari_normxcorr.io import _cluster

CHUNK = 1024
RADII = {"template_radius": 15, "search_radius": 40}
SHIFT = (3, -2)


def write_pair(folder: Path, side: int) -> tuple:
    """A smooth random image and its copy shifted by SHIFT, as zarr."""
    import zarr

    arrays = [
        zarr.open(
            str(folder / f"{name}.zarr"),
            mode="w",
            shape=(side, side),
            chunks=(CHUNK, CHUNK),
            dtype="f4",
        )
        for name in ("template", "image")
    ]
    for row in range(0, side, CHUNK):
        for col in range(0, side, CHUNK):
            block = _texture(row, col, side)
            arrays[0][row : row + CHUNK, col : col + CHUNK] = block[0]
            arrays[1][row : row + CHUNK, col : col + CHUNK] = block[1]
    return tuple(zarr.open(str(a.store_path), mode="r") for a in arrays)


def _texture(row: int, col: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """One chunk of both images: the copy is the same texture, moved."""
    rng = np.random.default_rng(row * side + col)
    noise = rng.normal(size=(CHUNK + 16, CHUNK + 16))
    smooth = ndimage.gaussian_filter(noise, 2.0)
    moved = ndimage.shift(smooth, SHIFT, order=1)
    inner = (slice(8, 8 + CHUNK),) * 2
    return smooth[inner].astype("f4"), moved[inner].astype("f4")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(side: int, count: int) -> None:
    points = np.random.default_rng(0).uniform(50, side - 50, (count, 2))
    with tempfile.TemporaryDirectory() as folder:
        template, image = write_pair(Path(folder), side)
        before = peak_rss_mib()
        with _cluster.local_cluster(2) as client:
            client.submit(int, 0).result()  # workers up
            start = time.perf_counter()
            found = match_points(
                template, image, points, client=client, **RADII
            )
            on_cluster = time.perf_counter() - start
            size = _cluster.task_points(count, client)
        client_peak = peak_rss_mib()
        start = time.perf_counter()
        local = match_points(template, image, points, **RADII)
        locally = time.perf_counter() - start
    tasks = -(-count // size)
    print(f"{side}² zarr image (chunks {CHUNK}²), {count} points, radii 15/40")
    print(f"tasks: {tasks} of ~{size} points")
    print(
        f"throughput cluster/local: {locally / on_cluster:.2f} (cluster "
        f"{on_cluster / count * 1e6:.0f} us per point, local threads "
        f"{locally / count * 1e6:.0f})"
    )
    print(
        f"client peak RSS: {client_peak:.0f} MiB (before the cluster run: "
        f"{before:.0f} MiB; image {side * side * 4 / 2**20:.0f} MiB)"
    )
    _bytes_per_task(found, points, size, template)
    same = all(
        np.array_equal(getattr(found, n), getattr(local, n), equal_nan=True)
        for n in ("matched", "score", "consistency")
    )
    print(f"identical to the local run: {same}")


def _bytes_per_task(found, points, size, template) -> None:
    """Pickled sizes of what one task takes and gives back."""
    rows = np.arange(min(size, len(points)))
    sent = pickle.dumps((points[rows], points[rows], dict(RADII)))
    part = found.take(rows)
    part._context = None
    back = pickle.dumps(part)
    image = pickle.dumps(template)
    print(
        f"bytes per task: {len(sent)} in, {len(back)} out "
        f"({len(back) / len(rows):.0f} per point); each image once per "
        f"worker: {len(image)} bytes (a zarr reference)"
    )


if __name__ == "__main__":
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--small", action="store_true", help="smoke run")
    options.add_argument("--side", type=int, default=16384)
    options.add_argument("--points", type=int, default=100_000)
    args = options.parse_args()
    print(_timing.machine_line())
    if args.small:
        run(2048, 5000)
    else:
        run(args.side, args.points)
