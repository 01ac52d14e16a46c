"""Speed of track_points against a loop of OpenCV matchTemplate.

200 points through 100 frames of 1024 x 1024 (float32, a texture drifting
by whole and half pixels, 1 % noise), template radius 15, search radius
30. The reference tracks the same points with the same windows: for each
frame and point, the template around the last position in the previous
frame, matchTemplate (TM_CCOEFF_NORMED) over the search window around
the constant-velocity prediction, minMaxLoc. Prints the time per vertex
and the ratio ours / OpenCV (<= 1: ours at least as fast) for whole
pixels (subpixel=False, as the reference) and with every feature on
(sub-pixel IC-GN with the quadratic shape function, distinctiveness),
and whole pixels on one core (the reference loop uses one):
each of --repeats runs of ours is paired with a run of the reference
made right after it, and the median of the pairs' ratios is printed
with each ratio. Run: python benchmarks/bench_track.py
(--tiny for a smoke run in seconds).
"""

import argparse
import functools

import numpy as np
from scipy import ndimage

import _timing
from _timing import median_time, optional_cv2, paired_ratios
from napari_normxcorr import track_points
from napari_normxcorr.core._parallel import one_core

T_RADIUS, S_RADIUS = 15, 30


def drifting_stack(size, frames, seed=0):
    """(frames, size, size) float32 texture drifting 0.6 px per frame."""
    rng = np.random.default_rng(seed)
    texture = ndimage.gaussian_filter(rng.normal(size=(size, size)), 1.5)
    texture = (texture / texture.std()).astype(np.float32)
    stack = np.empty((frames, size, size), np.float32)
    for t in range(frames):
        shift = (int(0.6 * t), int(0.4 * t))
        stack[t] = np.roll(texture, shift, axis=(0, 1))
        stack[t] += 0.01 * rng.normal(size=(size, size)).astype(np.float32)
    return stack


def opencv_loop(cv2, stack, points):
    """Track `points` (row, col) frame to frame with matchTemplate."""
    position = np.rint(points).astype(int)
    velocity = np.zeros_like(position)
    for t in range(1, len(stack)):
        before, frame = stack[t - 1], stack[t]
        for k, ((r, c), (vr, vc)) in enumerate(zip(position, velocity)):
            template = before[
                r - T_RADIUS : r + T_RADIUS + 1,
                c - T_RADIUS : c + T_RADIUS + 1,
            ]
            pr, pc = r + vr, c + vc
            window = frame[
                pr - S_RADIUS : pr + S_RADIUS + 1,
                pc - S_RADIUS : pc + S_RADIUS + 1,
            ]
            surface = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
            _, _, _, (x, y) = cv2.minMaxLoc(surface)
            found = np.array(
                [pr - S_RADIUS + T_RADIUS + y, pc - S_RADIUS + T_RADIUS + x]
            )
            velocity[k] = found - position[k]
            position[k] = found


def on_one_core(function, *args, **kwargs):
    """`function` on one core, as the reference loop runs."""
    with one_core():
        return function(*args, **kwargs)


def main():
    print(_timing.machine_line())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="10 points, 5 frames of 160 x 160, one run (a smoke test)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.points, args.frames, args.size, args.repeats = 10, 5, 160, 1
    stack = drifting_stack(args.size, args.frames)
    rng = np.random.default_rng(1)
    margin = S_RADIUS + T_RADIUS + args.frames
    positions = rng.uniform(margin, args.size - margin, (args.points, 2))
    points = np.column_stack([np.zeros(args.points), positions])
    vertices = args.points * (args.frames - 1)
    runs = {
        label: functools.partial(
            track_points, stack, points, subpixel=subpixel
        )
        for label, subpixel in (("whole pixels", False), ("all on", True))
    }
    runs["whole, 1 core"] = functools.partial(
        on_one_core, track_points, stack, points, subpixel=False
    )
    print(
        f"track_points: {args.points} points, {args.frames} frames of "
        f"{args.size}^2, template radius {T_RADIUS}, search radius "
        f"{S_RADIUS}"
    )
    cv2 = optional_cv2()
    if cv2 is None:
        for label, run in runs.items():
            seconds = median_time(run, args.repeats, budget=600) / vertices
            print(f"  {label:<13} {seconds * 1e6:8.1f} us per vertex")
        print("  (install opencv-python-headless for the reference ratio)")
        return
    # Each run of ours beside a run of the reference: the ratio of the
    # pair survives the machine's drift.
    timed = paired_ratios(
        runs,
        functools.partial(opencv_loop, cv2, stack, positions),
        args.repeats,
    )
    for label, (ours, theirs, ratios) in timed.items():
        print(
            f"  {label:<13} {ours / vertices * 1e6:8.1f} us per vertex "
            f"(OpenCV loop {theirs / vertices * 1e6:.1f})   ours / OpenCV "
            f"loop: median {np.median(ratios):5.2f}x of "
            f"{' '.join(f'{r:.2f}' for r in ratios)}"
        )


if __name__ == "__main__":
    main()
