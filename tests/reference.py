"""Independent slow references the fast code is checked against."""

import itertools

import numpy as np


def brute_force_ncc(template, image, mode="full"):
    """NCC by direct summation over every window (normxcorr2 definition).

    Both inputs lose their global mean, the image is zero-padded by m - 1
    on each side, and each window and the template are compared after
    subtracting their own means. A window or template with no spread gives
    0. 'same' and 'valid' are crops of 'full', as in scipy.signal.
    """
    template = np.asarray(template, dtype=np.float64)
    image = np.asarray(image, dtype=np.float64)
    template = template - template.mean()
    padded = np.pad(
        image - image.mean(), [(m - 1, m - 1) for m in template.shape]
    )
    full_shape = [i + m - 1 for i, m in zip(image.shape, template.shape)]
    out = np.zeros(full_shape)
    t_energy = np.sum(template**2)
    for k in itertools.product(*map(range, full_shape)):
        window = padded[
            tuple(slice(a, a + m) for a, m in zip(k, template.shape))
        ]
        if np.ptp(window) == 0 or np.ptp(template) == 0:
            continue
        window = window - window.mean()
        out[k] = np.sum(window * template) / np.sqrt(
            np.sum(window**2) * t_energy
        )
    if mode == "full":
        return out
    if mode == "same":
        start = [(m - 1) // 2 for m in template.shape]
        stop = [s + i for s, i in zip(start, image.shape)]
    else:
        start = [m - 1 for m in template.shape]
        stop = [i for i in image.shape]
    return out[tuple(slice(a, b) for a, b in zip(start, stop))]


def seed_ncc(template, image, mode="full"):
    """The seed's formula (three fftconvolve calls), written out for 2-D.

    Reference for its definition and the benchmark's baseline; it shares the
    seed's weaknesses (rounding noise in flat windows) by design.
    """
    from scipy.signal import fftconvolve

    template = template - np.mean(template)
    image = image - np.mean(image)
    ones = np.ones(template.shape)
    flipped = template[tuple(slice(None, None, -1) for _ in template.shape)]
    out = fftconvolve(image, flipped.conj(), mode=mode)
    local = fftconvolve(np.square(image), ones, mode=mode) - np.square(
        fftconvolve(image, ones, mode=mode)
    ) / np.prod(template.shape)
    local[local < 0] = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = out / np.sqrt(local * np.sum(np.square(template)))
    out[~np.isfinite(out)] = 0
    return out
