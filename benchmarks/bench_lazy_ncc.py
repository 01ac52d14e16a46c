"""Whole-image NCC of a zarr image larger than one task: lazy, on dask.

An 8192 x 8192 float32 zarr image (a smoothed random texture, written
chunk by chunk), a 101 x 101 template cut from it with noise, chunks of
2048 x 2048. The lazy NCC (default mode 'full') is written whole to a
zarr store with dask's threaded scheduler, and the script prints:
(1) the largest difference from the in-memory NCC on regions that span
block boundaries (an interior corner of four blocks, and the bottom
right corner of the image with its padding), each computed in memory
from the image pixels under it and its halo only;
(2) the peak resident memory of the process while writing (sampled
every 5 ms), against the image's size, the output's and one chunk's;
(3) the time of the lazy run (its pass for the image's mean and the
write) per output pixel against the in-memory function on one chunk of
outputs in the same run (median of 3; > 1: the lazy run is slower).
Run: python benchmarks/bench_lazy_ncc.py [--small] [--mode same] [--size N]
(--size 16384: the peak memory stays that of the chunks, not the image)
(--small: a 1024 x 1024 image in chunks of 256 x 256, a smoke run).
"""

import argparse
import tempfile
import threading
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import psutil
import zarr
from scipy import ndimage

import _timing
from _timing import median_time
from napari_normxcorr import normalized_cross_correlation
from napari_normxcorr.core._ncc import crop_start

TEMPLATE = 101


def write_texture(path, size, chunk):
    """A float32 texture of `size`² pixels in a zarr store, chunk by chunk."""
    noise = da.random.default_rng(0).standard_normal(
        (size, size), chunks=chunk, dtype=np.float32
    )
    texture = noise.map_overlap(
        ndimage.gaussian_filter, depth=8, boundary="reflect", sigma=2.0
    )
    texture.to_zarr(str(path))
    return zarr.open_array(str(path), mode="r")


class PeakMemory:
    """Peak resident memory above the start, sampled in a thread."""

    def __init__(self, interval=0.005):
        self.process = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._done = threading.Event()

    def __enter__(self):
        self.start = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.is_set():
            rss = self.process.memory_info().rss
            self.peak = max(self.peak, rss - self.start)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def image_mean(stored, band):
    """The image's mean in float64, read a band of rows at a time."""
    total = sum(
        np.sum(stored[row : row + band], dtype=np.float64)
        for row in range(0, stored.shape[0], band)
    )
    return total / stored.size


def in_memory_region(stored, template, mode, region, mean):
    """The in-memory NCC on `region` of the output, from the image pixels
    its windows see, padded with the image's mean outside the image (what
    'full' and 'same' do to the centred image)."""
    shift = [
        c - (m - 1)
        for c, m in zip(crop_start(template.shape, mode), template.shape)
    ]
    lo = [s.start + k for s, k in zip(region, shift)]
    hi = [s.stop + k + m - 1 for s, k, m in zip(region, shift, template.shape)]
    inside = tuple(
        slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, stored.shape)
    )
    pads = [
        (max(-a, 0), max(b - n, 0)) for a, b, n in zip(lo, hi, stored.shape)
    ]
    pixels = np.pad(
        np.asarray(stored[inside], dtype=np.float64),
        pads,
        constant_values=mean,
    )
    return normalized_cross_correlation(template, pixels, "valid")


def regions(out_shape, chunk):
    """An interior corner of four blocks and the bottom right corner of the
    output (its last block boundary and the padding), 600 pixels across
    (a quarter of a chunk in a smoke run)."""
    half = min(300, chunk // 4)
    corner = tuple(slice(chunk - half, chunk + half) for _ in out_shape)
    edge = tuple(slice(n - chunk // 2 - half, n) for n in out_shape)
    return {"interior corner": corner, "image corner": edge}


def main():
    print(_timing.machine_line())
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--mode", default="full")
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument(
        "--size", type=int, default=8192, help="image side (chunks 2048)"
    )
    args = parser.parse_args()
    size, chunk = (1024, 256) if args.small else (args.size, 2048)
    with tempfile.TemporaryDirectory(dir=args.store) as folder:
        folder = Path(folder)
        stored = write_texture(folder / "image.zarr", size, chunk)
        rng = np.random.default_rng(1)
        corner = size // 3
        template = stored[
            corner : corner + TEMPLATE, corner : corner + TEMPLATE
        ]
        template = template + rng.normal(scale=0.1, size=template.shape)
        run(args.mode, stored, template, chunk, folder)


def run(mode, stored, template, chunk, folder):
    """Write the lazy NCC, check its regions, time both paths and print."""
    begin = time.perf_counter()
    lazy = normalized_cross_correlation(template, stored, mode)
    stats_time = time.perf_counter() - begin
    with PeakMemory() as memory, dask.config.set(scheduler="threads"):
        begin = time.perf_counter()
        lazy.to_zarr(str(folder / "ncc.zarr"))
        write_time = time.perf_counter() - begin
    written = zarr.open_array(str(folder / "ncc.zarr"), mode="r")
    mean = image_mean(stored, chunk)
    errors = {}
    for name, region in regions(lazy.shape, chunk).items():
        expected = in_memory_region(stored, template, mode, region, mean)
        errors[name] = float(np.max(np.abs(written[region] - expected)))
    # In memory, one chunk-sized block of output pixels (all cores).
    block = tuple(slice(chunk, 2 * chunk + TEMPLATE - 1) for _ in stored.shape)
    pixels = np.asarray(stored[block], dtype=np.float64)
    block_time = median_time(
        lambda: normalized_cross_correlation(template, pixels, "valid"),
        repeats=3,
    )
    report(
        stored,
        lazy,
        chunk,
        errors,
        memory.peak,
        (stats_time, write_time, block_time),
    )


def report(stored, lazy, chunk, errors, peak, times):
    """Print what `run` measured."""
    stats_time, write_time, block_time = times
    mib = 2**20
    image_bytes = stored.nbytes
    chunk_bytes = chunk**stored.ndim * 8
    print(
        f"image {stored.shape} {stored.dtype} ({image_bytes / mib:.0f} MiB) "
        f"in chunks of {stored.chunks}; template {TEMPLATE}²; "
        f"output {lazy.shape} float64 ({lazy.nbytes / mib:.0f} MiB); "
        f"{dask.system.CPU_COUNT} cores"
    )
    for name, error in errors.items():
        print(f"max |lazy - in memory| on the {name}: {error:.2e}")
    print(
        f"peak RSS above start while writing: {peak / mib:.0f} MiB = "
        f"{peak / image_bytes:.2f} x image, {peak / lazy.nbytes:.2f} x "
        f"output, {peak / chunk_bytes:.1f} x one float64 chunk"
    )
    per_pixel = (stats_time + write_time) / lazy.size
    reference = block_time / chunk**stored.ndim
    print(
        f"time per output pixel, lazy (stats pass {stats_time:.1f} s + "
        f"write {write_time:.1f} s) / in memory on one chunk: "
        f"{per_pixel / reference:.2f}"
    )


if __name__ == "__main__":
    main()
