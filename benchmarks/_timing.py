"""Timing helpers shared by the benchmark scripts."""

import sys
import time
from pathlib import Path

import numpy as np

# The slow references (the seed's formula) live with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def median_time(function, repeats=5, budget=20.0):
    """Median wall time of `function()` over `repeats` calls."""
    times = []
    start = time.perf_counter()
    for _ in range(repeats):
        begin = time.perf_counter()
        function()
        times.append(time.perf_counter() - begin)
        if time.perf_counter() - start > budget:
            break
    return float(np.median(times))


def paired_ratios(functions, reference, repeats=5):
    """Per repeat, each of `functions` timed right beside `reference`.

    On a shared machine whose speed drifts by a factor of two within
    minutes, a ratio of two runs made seconds apart is steadier than a
    ratio of medians taken minutes apart. Returns, per name, the median
    seconds of the function, of the reference, and the ratios (function
    time / reference time, one per repeat).
    """
    timed = {name: ([], [], []) for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            ours, theirs, ratios = timed[name]
            ours.append(_seconds(function))
            theirs.append(_seconds(reference))
            ratios.append(ours[-1] / theirs[-1])
    return {
        name: (float(np.median(ours)), float(np.median(theirs)), ratios)
        for name, (ours, theirs, ratios) in timed.items()
    }


def repeats_and_quick(doc):
    """The --repeats N and --quick options of a benchmark whose module
    docstring is `doc`, parsed."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    return parser.parse_args()


def _seconds(function):
    begin = time.perf_counter()
    function()
    return time.perf_counter() - begin


def optional_cv2():
    """OpenCV if installed (a benchmark-only dependency), else None."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def machine_line():
    """The machine and the libraries behind the numbers, in one line: CPU
    model and vector extensions, cores, versions of numpy, scipy and
    OpenCV, their BLAS and FFT back ends, and the threads they may use.

    Figures of the same script have differed 1.5-2x between machines:
    print this with every benchmark so that they can be compared.
    """
    import os
    import platform

    import scipy

    model, flags = "unknown CPU", ""
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    have = set(line.split(":", 1)[1].split())
                    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f")
                    flags = " ".join(f for f in wanted if f in have)
    except OSError:
        model = platform.processor() or model
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]
        blas = f"{deps['blas']['name']} {deps['blas'].get('version', '')}"
    except (TypeError, KeyError):
        blas = "?"
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    cv2 = optional_cv2()
    opencv = (
        f", OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)"
        if cv2
        else ""
    )
    return (
        f"machine: {model} [{flags}], {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}; numpy {np.__version__}, scipy "
        f"{scipy.__version__} (FFT: scipy.fft pocketfft, workers as cores)"
        f"{opencv}; numpy's BLAS: {blas.strip()} (OMP_NUM_THREADS {threads})"
        f"; {_kernels()}"
    )


def _kernels():
    """Whether match_points runs its compiled kernels, and numba's
    version."""
    from importlib.metadata import PackageNotFoundError, version

    from napari_normxcorr.core._compiled import enabled

    try:
        numba = f"numba {version('numba')}"
    except PackageNotFoundError:
        return "numba not installed: numpy paths"
    return f"{numba}: {'compiled kernels' if enabled() else 'numpy paths'}"
