"""Speed of normalized_cross_correlation against reference implementations.

Prints, per problem size, the median time of ours and the ratio
(reference time / our time, > 1 means we are faster) to:
the seed's method (three fftconvolve calls), scikit-image match_template and,
when opencv-python-headless is installed, OpenCV matchTemplate
(TM_CCOEFF_NORMED, float32, 2-D only). Also prints the largest difference
from the seed's values on the 'valid' region, so speed is never bought with
accuracy. Run: python benchmarks/bench_ncc.py
"""

import numpy as np
from skimage.feature import match_template

import _timing
from _timing import median_time, optional_cv2
from napari_normxcorr import normalized_cross_correlation
from reference import seed_ncc

PROBLEMS = [
    ((2048, 2048), (101, 101)),
    ((4096, 4096), (64, 64)),
    ((128, 128, 128), (16, 16, 16)),
]


def main():
    print(_timing.machine_line())
    cv2 = optional_cv2()
    rng = np.random.default_rng(0)
    print(
        f"{'image':>16} {'template':>12} {'ours':>9} {'single':>9} "
        f"{'x seed':>7} {'x skimage':>9} {'x opencv':>8} "
        f"{'single x opencv':>15} {'max |diff|':>10}"
    )
    for image_shape, template_shape in PROBLEMS:
        image = rng.random(image_shape)
        corner = tuple(s // 3 for s in image_shape)
        template = image[
            tuple(slice(c, c + t) for c, t in zip(corner, template_shape))
        ].copy()
        ours = median_time(
            lambda: normalized_cross_correlation(template, image, "valid")
        )
        single = median_time(
            lambda: normalized_cross_correlation(
                template, image, "valid", fft_precision="single"
            )
        )
        seed = median_time(
            lambda: seed_ncc(template, image, "valid"), repeats=3
        )
        skimage = median_time(
            lambda: match_template(image, template), repeats=3
        )
        opencv = float("nan")
        if cv2 is not None and image.ndim == 2:
            image32 = image.astype(np.float32)
            template32 = template.astype(np.float32)
            opencv = median_time(
                lambda: cv2.matchTemplate(
                    image32, template32, cv2.TM_CCOEFF_NORMED
                )
            )
        diff = np.abs(
            normalized_cross_correlation(template, image, "valid")
            - seed_ncc(template, image, "valid")
        ).max()
        print(
            f"{'x'.join(map(str, image_shape)):>16} "
            f"{'x'.join(map(str, template_shape)):>12} "
            f"{ours * 1e3:7.0f}ms {single * 1e3:7.0f}ms "
            f"{seed / ours:7.1f} {skimage / ours:9.1f} "
            f"{opencv / ours:8.2f} {opencv / single:15.2f} {diff:10.1e}"
        )
    full_mode(rng)
    print(
        "ratios: reference time / our double-precision time "
        "(> 1: ours is faster); opencv works in float32, like our 'single' "
        "(the last ratio)."
    )


def full_mode(rng):
    """'full' mode (normxcorr2's) on the first problem: against the seed's
    'full', and its cost against our 'valid'."""
    image_shape, template_shape = PROBLEMS[0]
    image = rng.random(image_shape)
    template = image[: template_shape[0], : template_shape[1]].copy()
    full, valid, seed = (
        median_time(lambda m=mode, f=f: f(template, image, m), repeats=5)
        for mode, f in (
            ("full", normalized_cross_correlation),
            ("valid", normalized_cross_correlation),
            ("full", seed_ncc),
        )
    )
    pixels = np.prod([n + m - 1 for n, m in zip(image_shape, template_shape)])
    valid_pixels = np.prod(
        [n - m + 1 for n, m in zip(image_shape, template_shape)]
    )
    print(
        f"'full' {'x'.join(map(str, image_shape))}: {full * 1e3:.0f}ms, "
        f"x seed {seed / full:.1f}; costs {full / valid:.2f} x 'valid' for "
        f"{pixels / valid_pixels:.2f} x the output pixels"
    )


if __name__ == "__main__":
    main()
