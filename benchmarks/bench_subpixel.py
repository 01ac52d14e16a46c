"""Sub-pixel accuracy of match_points against other estimators.

A well-textured image (Gaussian-filtered noise, sigma 1.5 px) is shifted by
known sub-pixel amounts with the Fourier shift theorem; both images get 1 %
noise. For points with template radius 15 in search radius 25 it prints the
RMS error (pixels) of: match_points (Gauss-Newton refinement), three-point
parabolic and Gaussian fits of the NCC peak, and scikit-image's
phase_cross_correlation(upsample_factor=100) between the template patch and
the target patch at the integer NCC peak.
Run: python benchmarks/bench_subpixel.py
"""

import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation

import _timing
from napari_normxcorr import match_points
from napari_normxcorr.core._peaks import argmax_index, parabolic_shift


def gaussian_shift(surface, peak):
    """Three-point Gaussian fit (parabola through the log of the values)."""
    shift = np.zeros(surface.ndim)
    for axis, index in enumerate(peak):
        if not 0 < index < surface.shape[axis] - 1:
            continue
        values = [
            surface[(*peak[:axis], index + k, *peak[axis + 1 :])]
            for k in (-1, 0, 1)
        ]
        low, mid, high = np.log(np.clip(values, 1e-6, None))
        curvature = low - 2 * mid + high
        if curvature < 0:
            shift[axis] = 0.5 * (low - high) / curvature
    return shift


def main(trials=10, per_trial=20):
    print(_timing.machine_line())
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(size=(256, 256)), 1.5)
    base /= base.std()
    errors = {
        "match_points": [],
        "parabola": [],
        "gaussian": [],
        "phase_cross_correlation": [],
    }
    for _ in range(trials):
        shift = rng.uniform(-3, 3, size=2)
        spectrum = ndimage.fourier_shift(np.fft.fft2(base), shift)
        moved = np.fft.ifft2(spectrum).real
        before = base + rng.normal(scale=0.01, size=base.shape)
        after = moved + rng.normal(scale=0.01, size=base.shape)
        points = rng.uniform(60, 196, size=(per_trial, 2))
        result = match_points(
            before, after, points, template_radius=15, search_radius=25
        )
        errors["match_points"].extend(result.offset - shift)
        for i, point in enumerate(points):
            surface = result.surface(i)
            peak = argmax_index(surface.values)
            at = surface.origin + peak - point
            errors["parabola"].append(
                at + parabolic_shift(surface.values, peak) - shift
            )
            errors["gaussian"].append(
                at + gaussian_shift(surface.values, peak) - shift
            )
            # Phase correlation refines the residual shift between the
            # template patch and the target patch at the integer NCC peak.
            centre = np.rint(point).astype(int)
            whole = np.rint(at).astype(int)
            template = before[tuple(slice(c - 15, c + 16) for c in centre)]
            target = after[
                tuple(slice(c - 15, c + 16) for c in centre + whole)
            ]
            residual, _, _ = phase_cross_correlation(
                target, template, upsample_factor=100
            )
            errors["phase_cross_correlation"].append(whole + residual - shift)
    print("RMS error over", trials * per_trial, "points (pixels):")
    for name, values in errors.items():
        rms = np.sqrt(np.mean(np.square(values)))
        print(f"  {name:>24}: {rms:.4f}")


if __name__ == "__main__":
    main()
