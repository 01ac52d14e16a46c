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
    return crop_to_mode(out, template.shape, image.shape, mode)


def crop_to_mode(full, template_shape, image_shape, mode):
    """The 'same' or 'valid' part of a 'full' correlation, as in
    scipy.signal ('full' as it is)."""
    if mode == "full":
        return full
    if mode == "same":
        start = [(m - 1) // 2 for m in template_shape]
        stop = [s + i for s, i in zip(start, image_shape)]
    else:
        start = [m - 1 for m in template_shape]
        stop = list(image_shape)
    return full[tuple(slice(a, b) for a, b in zip(start, stop))]


def brute_force_masked_ncc(
    template, image, template_mask, image_mask, mode="full", min_overlap=0.5
):
    """Masked NCC by direct summation over the pixels valid in both.

    Masked, NaN and infinite pixels are invalid, and so is the padding of
    'full' and 'same' modes; a position with fewer than min_overlap of
    the template's pixels valid in both is NaN, a flat one 0.
    """
    template = np.asarray(template, dtype=np.float64)
    image = np.asarray(image, dtype=np.float64)
    t_valid = ~template_mask & np.isfinite(template)
    pad = [(m - 1, m - 1) for m in template.shape]
    padded = np.pad(image, pad)
    valid = np.pad(~image_mask & np.isfinite(image), pad)
    full_shape = [i + m - 1 for i, m in zip(image.shape, template.shape)]
    out = np.full(full_shape, np.nan)
    for k in itertools.product(*map(range, full_shape)):
        box = tuple(slice(a, a + m) for a, m in zip(k, template.shape))
        both = t_valid & valid[box]
        if both.sum() < min_overlap * template.size or not both.any():
            continue
        w, t = padded[box][both], template[both]
        if np.ptp(w) == 0 or np.ptp(t) == 0:
            out[k] = 0.0
            continue
        w, t = w - w.mean(), t - t.mean()
        out[k] = np.sum(w * t) / np.sqrt(np.sum(w**2) * np.sum(t**2))
    return crop_to_mode(out, template.shape, image.shape, mode)


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
