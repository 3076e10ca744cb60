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
``(y, x)`` / ``(height, width)`` order unless the name says ``xy``. The window
rules themselves (sizes, pads, centre -> window) live in :mod:`sampler_core.window`
and are re-exported here; this module parses the other target keys (pad modes,
slices, channels, scale, interpolation).

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

import numpy as np
from ubelt import NoParam

from sampler_core.window import (MAX_WINDOW_PIXELS, _is_int, center_extent_to_slices,  # noqa: F401
                                 coerce_pad, coerce_window_dims, embed_window)

#: numpy.pad modes accepted in ``padkw['mode']``.
PAD_MODES = frozenset({
    'constant', 'edge', 'linear_ramp', 'maximum', 'mean', 'median',
    'minimum', 'reflect', 'symmetric', 'wrap', 'empty',
})

#: Pad modes that need at least one real pixel to extrapolate from.
_PAD_MODES_NEED_DATA = PAD_MODES - {'constant', 'empty', 'linear_ramp'}

#: Keys of a target that locate a window by its centre and size.
CENTER_KEYS = ('cx', 'cy', 'width', 'height')

#: interpolation names delayed_image / kwimage accept
INTERPOLATIONS = ('nearest', 'linear', 'cubic', 'area', 'lanczos')

#: keys of a target that make it 3-D
VIDEO_KEYS = ('vidid', 'gids', 'time_slice')
#: ``time_sampling`` of a config: how an item's frames are chosen around its pool frame
#: (:func:`sampler_core.video.time_indices`)
TIME_SAMPLING = ('contiguous', 'uniform', 'random')

def _as_finite(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f'target[{name!r}] must be a number, got {value!r}') from None
    if not math.isfinite(out):
        raise ValueError(f'target[{name!r}] must be finite, got {value!r}')
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
    if crop.size == 0 and pad_mode_needs_data(padkw):
        raise ValueError(f'pad mode {padkw["mode"]!r} needs image pixels, but the window '
                         f'{window} lies entirely outside image {gid} of size {tuple(dims)}')
    try:
        return np.pad(crop, list(extra) + [(0, 0)], **padkw)
    except (ValueError, TypeError, OverflowError) as ex:
        raise ValueError(f'padkw={padkw!r} cannot pad image {gid} ({crop.dtype}): {ex}') from None


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


# --------------------------------------------------------------------------- channels, scale
def coerce_channels(channels: Any):
    """Normalise a channel request.

    Args:
        channels: ``None`` / ``NoParam`` / ``'<all>'`` (every channel), a kwcoco
            channel code such as ``'B1|B8'`` or ``'r|g|b'`` (``'Y:2:4'`` ranges
            are expanded; ``','``-separated streams are fused), or a
            ``FusedChannelSpec`` / ``ChannelSpec``.

    Returns:
        ``delayed_image.FusedChannelSpec`` (normalised) or ``None`` for all.

    Raises:
        TypeError: not a string or channel spec.
        ValueError: an empty code, an empty or blank channel name, or a name
            given twice.

    Example:
        >>> coerce_channels('B1|B8').as_list()
        ['B1', 'B8']
        >>> coerce_channels('Y:2:4').as_list()
        ['Y.2', 'Y.3']
        >>> coerce_channels('<all>') is None
        True
    """
    if channels is None or channels is NoParam:
        return None
    if isinstance(channels, str):
        try:
            return _CHANNEL_MEMO[channels]
        except KeyError:
            pass
        spec = _coerce_channels(channels)
        if len(_CHANNEL_MEMO) < 4096:
            _CHANNEL_MEMO[channels] = spec
        return spec
    return _coerce_channels(channels)


#: parsed channel codes (FusedChannelSpec objects are not modified after parsing)
_CHANNEL_MEMO: dict = {}


def _coerce_channels(channels):
    from delayed_image.channel_spec import ChannelSpec, FusedChannelSpec
    if isinstance(channels, str):
        if channels.strip() == '<all>':
            return None
        try:
            spec = ChannelSpec.coerce(channels).fuse().normalize()
        except Exception as ex:
            raise ValueError(f'cannot parse channel code {channels!r}: {ex}') from None
    elif isinstance(channels, (ChannelSpec, FusedChannelSpec)):
        spec = channels.fuse().normalize() if isinstance(channels, ChannelSpec) \
            else channels.normalize()
    else:
        raise TypeError(f"channels must be a channel code such as 'r|g|b', got {channels!r}")
    names = spec.as_list()
    if not names:
        raise ValueError(f'channel code {channels!r} names no channel')
    bad = [n for n in names if not n or n != n.strip() or any(c.isspace() for c in n)]
    if bad:
        raise ValueError(f'channel code {channels!r} has empty or blank channel names')
    if len(set(names)) != len(names):
        dups = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f'channel code {channels!r} names channels {dups} more than once')
    return FusedChannelSpec.coerce(names)


def coerce_scale(scale: Any) -> tuple[float, float] | None:
    """Normalise ``scale`` to ``(sy, sx)``, or ``None`` for no extra scaling.

    Args:
        scale: ``None``, a positive number, or a ``(sy, sx)`` pair (the repository's
            ``(y, x)`` order; ndsampler passes pairs to kwimage as ``(sx, sy)``).

    Raises:
        ValueError: non-positive or non-finite factors, or a pair of the wrong length.
        TypeError: anything else.

    Example:
        >>> coerce_scale(2)
        (2.0, 2.0)
        >>> coerce_scale((0.5, 0.25))
        (0.5, 0.25)
        >>> coerce_scale(1.0) is None
        True
    """
    if scale is None:
        return None
    if isinstance(scale, numbers.Number) and not isinstance(scale, bool):
        pair = (float(scale), float(scale))
    else:
        try:
            items = [float(v) for v in scale]
        except (TypeError, ValueError):
            raise TypeError(f'scale must be a number or (sy, sx), got {scale!r}') from None
        if len(items) != 2:
            raise ValueError(f'scale must be a number or (sy, sx), got {scale!r}')
        pair = (items[0], items[1])
    if not all(math.isfinite(v) and v > 0 for v in pair):
        raise ValueError(f'scale must be positive and finite, got {scale!r}')
    if pair == (1.0, 1.0):
        return None
    return pair


def coerce_interpolation(interpolation: Any = 'auto', antialias: Any = 'auto') -> tuple[str, bool]:
    """``(interpolation, antialias)`` with ``'auto'`` resolved.

    ``'auto'`` interpolation is ``'linear'``; ``'auto'`` antialias is on unless
    the interpolation is ``'nearest'`` (ndsampler's defaults).

    Raises:
        ValueError: an unknown interpolation or antialias value.

    Example:
        >>> coerce_interpolation()
        ('linear', True)
        >>> coerce_interpolation('nearest')
        ('nearest', False)
    """
    if interpolation is None or interpolation == 'auto':
        interpolation = 'linear'
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f'unknown interpolation {interpolation!r}; choose from '
                         f"{['auto', *INTERPOLATIONS]}")
    if antialias is None or (isinstance(antialias, str) and antialias == 'auto'):
        antialias = interpolation != 'nearest'
    elif isinstance(antialias, (bool, np.bool_)) or antialias in (0, 1):
        antialias = bool(antialias)
    else:
        raise ValueError(f"antialias must be True, False or 'auto', got {antialias!r}")
    return interpolation, antialias


def is_video_target(target: dict) -> bool:
    """True when the target names frames (``vidid`` / ``gids`` / ``time_slice``).

    Example:
        >>> is_video_target({'gid': 1}), is_video_target({'vidid': 1})
        (False, True)
    """
    return any(target.get(k) is not None for k in VIDEO_KEYS)
