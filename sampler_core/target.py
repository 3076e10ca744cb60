"""Turning a *target* dictionary into an absolute window.

A target names a source image and a region of it. The forms accepted (the
ndsampler 0.8 forms) are, for a 2-D image:

* ``{'gid': 1}`` or ``{'image_id': 1}``: the whole image.
* ``{'aid': 3}``: the box of annotation 3 (its image is inferred).
* ``{'gid': 1, 'cx': 10, 'cy': 20, 'width': 6, 'height': 8}``: a window of
  ``(height, width)`` centred on ``(cx, cy)``; ``window_dims=(h, w)`` overrides the
  size and ``window_dims='square'`` makes it ``max(h, w)`` on both sides.
* ``{'gid': 1, 'slices': (slice(y0, y1), slice(x0, x1))}`` or ``space_slice``.

``pad=(ph, pw)`` adds ``ph`` rows above and below and ``pw`` columns left and
right. Windows that reach outside the image are padded, never shifted.

All coordinates are pixels in image space; every ``(a, b)`` pair in this module is
``(y, x)`` / ``(height, width)`` order unless the name says ``xy``.

Example:
    >>> from sampler_core.target import center_extent_to_slices
    >>> center_extent_to_slices((2, 5), (6, 6))
    (slice(-1, 5, None), slice(2, 8, None))
    >>> coerce_pad((3, 4))
    ((3, 3), (4, 4))
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

#: numpy.pad modes accepted in ``padkw['mode']``.
PAD_MODES = frozenset({
    'constant', 'edge', 'linear_ramp', 'maximum', 'mean', 'median',
    'minimum', 'reflect', 'symmetric', 'wrap', 'empty',
})

#: Pad modes that need at least one real pixel to extrapolate from.
_PAD_MODES_NEED_DATA = PAD_MODES - {'constant', 'empty', 'linear_ramp'}

#: Keys of a target that locate a window by its centre and size.
CENTER_KEYS = ('cx', 'cy', 'width', 'height')

#: Largest padded window, in pixels (height * width), that a sample may have:
#: 2**28 pixels is 768 MiB of uint8 RGB. Larger requests are refused with a
#: ValueError instead of failing inside numpy's allocator.
MAX_WINDOW_PIXELS = 2 ** 28


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _as_finite(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f'target[{name!r}] must be a number, got {value!r}') from None
    if not math.isfinite(out):
        raise ValueError(f'target[{name!r}] must be finite, got {value!r}')
    return out


def coerce_window_dims(window_dims: Any, height: float | None = None,
                       width: float | None = None) -> tuple[int, int]:
    """Normalise ``window_dims`` to a positive ``(height, width)`` in pixels.

    Args:
        window_dims: ``None`` / ``'extent'`` (use ``height`` / ``width`` rounded
            up), ``'square'`` (the larger of the two on both sides), an int
            ``v`` meaning ``(v, v)``, or a ``(height, width)`` pair.
        height: extent of the target, used by ``None``/``'extent'``/``'square'``.
        width: extent of the target.

    Returns:
        ``(height, width)`` as positive ints.

    Raises:
        ValueError: a non-positive, fractional or unknown size.

    Example:
        >>> coerce_window_dims('square', height=3.2, width=10)
        (10, 10)
        >>> coerce_window_dims(None, height=3.2, width=10)
        (4, 10)
        >>> coerce_window_dims(64)
        (64, 64)
    """
    if window_dims is None or isinstance(window_dims, str):
        key = 'extent' if window_dims is None else window_dims
        if key not in ('extent', 'square'):
            raise ValueError(
                f"window_dims must be (height, width), 'square' or None, got {window_dims!r}")
        if height is None or width is None:
            raise ValueError(
                f'window_dims={window_dims!r} needs the target to have width and height')
        dims = (int(math.ceil(height)), int(math.ceil(width)))
        if key == 'square':
            dims = (max(dims),) * 2
    elif _is_int(window_dims):
        dims = (int(window_dims),) * 2
    else:
        try:
            dims = tuple(window_dims)
        except TypeError:
            raise TypeError(f'window_dims must be (height, width), got {window_dims!r}') from None
        if len(dims) != 2:
            raise ValueError(
                f'window_dims must have 2 entries (height, width), got {window_dims!r}')
        for d in dims:
            if not (_is_int(d) or (isinstance(d, float) and float(d).is_integer())):
                raise ValueError(f'window_dims must be whole pixels, got {window_dims!r}')
        dims = tuple(int(d) for d in dims)
    if dims[0] <= 0 or dims[1] <= 0:
        raise ValueError(f'window size must be positive, got (height, width)={dims}')
    return dims


def coerce_pad(pad: Any, ndim: int = 2) -> tuple[tuple[int, int], ...]:
    """Normalise ``pad`` to ``((before, after),) * ndim`` non-negative ints.

    Args:
        pad: ``None`` (no pad), an int ``p`` (``p`` on every side), a
            ``(ph, pw)`` pair, or ``((top, bottom), (left, right))``.
        ndim: number of spatial dimensions.

    Raises:
        ValueError: a negative pad or one with the wrong number of entries.

    Example:
        >>> coerce_pad(None)
        ((0, 0), (0, 0))
        >>> coerce_pad(((1, 2), 3))
        ((1, 2), (3, 3))
    """
    if pad is None:
        out = ((0, 0),) * ndim
    elif _is_int(pad):
        out = ((int(pad), int(pad)),) * ndim
    else:
        try:
            items = list(pad)
        except TypeError:
            raise TypeError(f'pad must be an int or (height, width), got {pad!r}') from None
        if len(items) != ndim:
            raise ValueError(f'pad must have {ndim} entries (height, width), got {pad!r}')
        out = []
        for p in items:
            if _is_int(p):
                out.append((int(p), int(p)))
            else:
                try:
                    a, b = p
                except (TypeError, ValueError):
                    raise ValueError(f'pad entries must be ints or pairs, got {pad!r}') from None
                if not (_is_int(a) and _is_int(b)):
                    raise ValueError(f'pad entries must be whole pixels, got {pad!r}')
                out.append((int(a), int(b)))
        out = tuple(out)
    if any(v < 0 for pair in out for v in pair):
        raise ValueError(f'pad must not be negative, got {pad!r}')
    return out


def coerce_padkw(padkw: dict | None) -> dict:
    """Check ``padkw`` (the keyword arguments of ``numpy.pad``).

    Raises:
        ValueError: an unknown pad mode.
        TypeError: padkw that is not a dict.

    Example:
        >>> coerce_padkw(None)
        {'mode': 'constant'}
        >>> coerce_padkw({'mode': 'reflect'})
        {'mode': 'reflect'}
    """
    if padkw is None:
        return {'mode': 'constant'}
    if not isinstance(padkw, dict):
        raise TypeError(f'padkw must be a dict of numpy.pad arguments, got {padkw!r}')
    padkw = dict(padkw)
    mode = padkw.setdefault('mode', 'constant')
    if mode not in PAD_MODES:
        raise ValueError(
            f'unknown pad mode {mode!r}; choose one of {sorted(PAD_MODES)}')
    return padkw


def pad_mode_needs_data(padkw: dict) -> bool:
    """True when ``padkw['mode']`` extrapolates from real pixels."""
    return padkw.get('mode', 'constant') in _PAD_MODES_NEED_DATA


def pad_crop(crop, extra, padkw: dict, window, gid, dims):
    """``numpy.pad(crop, extra + [(0, 0)], **padkw)``: the part of ``window`` inside image
    ``gid`` (of size ``dims``) padded out to the whole window.

    A mode that extrapolates (``'reflect'``, ``'edge'``...) needs at least one
    real pixel, and a fill must fit the dtype: a ValueError names what is wrong.

    Example:
        >>> import numpy as np
        >>> pad_crop(np.arange(3).reshape(1, 3, 1), [(0, 0), (2, 0)], {'mode': 'reflect'},
        ...          (slice(0, 1), slice(-2, 3)), 1, (1, 3))[0, :, 0].tolist()
        [2, 1, 0, 1, 2]
    """
    import numpy as np
    if crop.size == 0 and pad_mode_needs_data(padkw):
        raise ValueError(f'pad mode {padkw["mode"]!r} needs image pixels, but the window '
                         f'{window} lies entirely outside image {gid} of size {tuple(dims)}')
    try:
        return np.pad(crop, list(extra) + [(0, 0)], **padkw)
    except (ValueError, TypeError, OverflowError) as ex:
        raise ValueError(f'padkw={padkw!r} cannot pad image {gid} ({crop.dtype}): {ex}') from None


def center_extent_to_slices(center: Sequence[float],
                            window_dims: Sequence[int]) -> tuple[slice, slice]:
    """The half-open window of size ``window_dims`` centred on ``center``.

    The low edge is ``floor(c - d / 2)`` and the high edge ``low + d``, so the
    window always has exactly the requested size.

    Args:
        center: ``(cy, cx)`` in pixels.
        window_dims: ``(height, width)`` in pixels.

    Example:
        >>> center_extent_to_slices((500.5, 974.9999999999999), (100, 100))
        (slice(450, 550, None), slice(924, 1024, None))
    """
    out = []
    for c, d in zip(center, window_dims):
        low = int(math.floor(c - d / 2.0))
        out.append(slice(low, low + int(d)))
    return tuple(out)


def center_target_slices(target: dict, window_dims: Any) -> tuple[slice, slice]:
    """The window of a target given by centre (``cx``, ``cy``) and size.

    ``target['cx']`` / ``target['cy']`` are checked and stored back as floats;
    the size comes from ``window_dims`` (see :func:`coerce_window_dims`), falling
    back to the target's ``height`` / ``width``.

    Raises:
        ValueError: no ``cx`` or ``cy``, a non-finite value, or a bad size.
        TypeError: a value that is not a number.

    Example:
        >>> t = {'cx': 5, 'cy': 2, 'width': 6, 'height': 6}
        >>> center_target_slices(t, None)
        (slice(-1, 5, None), slice(2, 8, None))
    """
    for key in ('cx', 'cy'):
        if key not in target:
            raise ValueError(f'target has {sorted(k for k in CENTER_KEYS if k in target)} '
                             f'but no {key!r}')
        target[key] = _as_finite(target[key], key)
    height = _as_finite(target['height'], 'height') if 'height' in target else None
    width = _as_finite(target['width'], 'width') if 'width' in target else None
    dims = coerce_window_dims(window_dims, height=height, width=width)
    return center_extent_to_slices((target['cy'], target['cx']), dims)


def coerce_space_slice(space_slice: Any, space_dims: Sequence[int]) -> tuple[slice, slice]:
    """Normalise a ``(slice_y, slice_x)`` region to explicit integer bounds.

    ``None`` bounds are filled from ``space_dims``; negative *stop* values count
    from the end, as with numpy (``slice(-20)`` is all but the last 20 rows).
    Negative *start* values are kept as they are: they reach before the image
    and are padded, as in ndsampler.

    Raises:
        ValueError: a step other than 1, an empty or inverted slice.
        TypeError: anything that is not a pair of slices.

    Example:
        >>> coerce_space_slice((slice(-20), slice(None)), (100, 50))
        (slice(0, 80, None), slice(0, 50, None))
    """
    try:
        items = tuple(space_slice)
    except TypeError:
        raise TypeError(f'space_slice must be (slice_y, slice_x), got {space_slice!r}') from None
    if len(items) != 2 or not all(isinstance(s, slice) for s in items):
        raise TypeError(f'space_slice must be (slice_y, slice_x), got {space_slice!r}')
    out = []
    for sl, dim in zip(items, space_dims):
        if sl.step not in (None, 1):
            raise ValueError(f'slices must have step 1, got {sl!r}')
        start = 0 if sl.start is None else sl.start
        stop = dim if sl.stop is None else sl.stop
        if not (_is_int(start) and _is_int(stop)):
            raise ValueError(f'slice bounds must be integers, got {sl!r}')
        if sl.stop is not None and stop < 0 and sl.start is None:
            stop = dim + stop
        if stop <= start:
            raise ValueError(f'window size must be positive, got {sl!r}')
        out.append(slice(int(start), int(stop)))
    return tuple(out)


def embed_window(space_slice: tuple[slice, slice], pad: tuple[tuple[int, int], ...],
                 data_dims: Sequence[int]):
    """Split a padded window into the part inside the data and the padding.

    Args:
        space_slice: the unpadded window ``(slice_y, slice_x)``.
        pad: ``((top, bottom), (left, right))``.
        data_dims: ``(height, width)`` of the image.

    Returns:
        ``(outer, inner, extra)``: ``outer`` the padded window (may reach
        outside the image), ``inner`` its intersection with the image (may be
        empty), and ``extra`` the ``((top, bottom), (left, right))`` number of
        padded pixels on each side so that ``np.pad(data[inner], extra)`` has the
        shape of ``outer``.

    Example:
        >>> outer, inner, extra = embed_window(
        ...     (slice(-5, 5), slice(8, 12)), ((0, 0), (1, 1)), (10, 10))
        >>> outer, inner, extra
        ((slice(-5, 5, None), slice(7, 13, None)), (slice(0, 5, None), slice(7, 10, None)), ((5, 0), (0, 3)))
    """
    size = [(sl.stop - sl.start) + pb + pa for sl, (pb, pa) in zip(space_slice, pad)]
    if size[0] * size[1] > MAX_WINDOW_PIXELS:
        raise ValueError(f'window of (height, width)={tuple(size)} with padding is larger than '
                         f'MAX_WINDOW_PIXELS={MAX_WINDOW_PIXELS}; ask for a smaller window')
    outer, inner, extra = [], [], []
    for sl, (pb, pa), dim in zip(space_slice, pad, data_dims):
        lo, hi = sl.start - pb, sl.stop + pa
        ilo = min(max(lo, 0), dim)
        ihi = max(min(hi, dim), ilo)
        outer.append(slice(lo, hi))
        inner.append(slice(ilo, ihi))
        if ihi > ilo:
            extra.append((ilo - lo, hi - ihi))
        else:  # window entirely outside along this axis: all of it is padding
            extra.append((hi - lo, 0))
    return tuple(outer), tuple(inner), tuple(extra)
