"""Work-arounds for delayed_image 0.4.7, in one place.

delayed_image's nearest-neighbour warp is wrong in three ways that
``docs/design.md`` (rule 18) lists: it raises IndexError when the output reaches
past its input (a padded window), it stretches the data over the padding
without a translation, and it samples a rounded output size at ``in / out``
instead of ``1 / scale``. :func:`finalize` finalizes a tree with the
interpolation / antialias ndsampler passes and every nearest ``DelayedWarp``
replaced by :func:`safe_nearest_warp_cls`, which defers to delayed_image when
its result is exact.

Nothing outside :mod:`sampler_core.read` should need this module; when
delayed_image fixes the nearest path, this module is what goes.

Example:
    >>> import numpy as np
    >>> from delayed_image import DelayedIdentity
    >>> data = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    >>> node = DelayedIdentity(data).crop((slice(1, 5), slice(2, 6)), clip=False, wrap=False)
    >>> out = finalize(node.optimize(), 'nearest', False)
    >>> out[..., 0].tolist()
    [[6, 7, 0, 0], [10, 11, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
"""
from __future__ import annotations

import numpy as np


def safe_nearest_warp_cls():
    """A ``DelayedWarp`` whose nearest-neighbour path handles output past its input.

    delayed_image 0.4.7 has two nearest-neighbour paths for axis-aligned warps:
    with a translation it gathers ``input[floor((y - ty) / sy), floor((x - tx) / sx)]``
    *before* masking the indices that fall outside the input (IndexError when the
    output reaches past the bottom / right of the input, i.e. a padded window);
    without one it resizes the whole input to the output size (stretching the
    data over the padding, and by ``in / out`` instead of ``1 / scale`` when the
    output size was rounded, e.g. 39 px at scale 0.5 -> 20 px). When the output
    stays inside the input and is not such a stretched resize, this class defers
    to delayed_image unchanged; otherwise it does the translated path's gather
    with the outside indices masked first and filled with the border value (0
    for integers, NaN for floats).
    """
    global _SAFE_NEAREST_WARP
    if _SAFE_NEAREST_WARP is None:
        from delayed_image.delayed_nodes import DelayedWarp

        class SafeNearestWarp(DelayedWarp):
            __slots__ = ()

            def _finalize(self):
                meta = self.meta
                if meta['interpolation'] != 'nearest':
                    return super()._finalize()
                import kwimage
                transform = kwimage.Affine.coerce(meta['transform'])
                params = transform.decompose()
                sx, sy = (float(v) for v in params['scale'])
                if abs(float(params.get('theta', 0))) > 1e-9 or \
                        abs(float(params.get('shearx', 0))) > 1e-9 or sx <= 0 or sy <= 0:
                    return super()._finalize()
                prewarp = np.asanyarray(self.subdata._finalize())
                return nearest_warp(prewarp, transform, self.dsize, meta['border_value'],
                                    channels=self.channels, noop_eps=meta['noop_eps'],
                                    backend=meta['backend'])

        _SAFE_NEAREST_WARP = SafeNearestWarp
    return _SAFE_NEAREST_WARP


_SAFE_NEAREST_WARP = None


def nearest_warp(prewarp: np.ndarray, transform, dsize: tuple[int, int], border_value='auto',
                 channels=None, noop_eps: float = 0, backend: str = 'auto') -> np.ndarray:
    """delayed_image's nearest-neighbour warp of an array by an axis-aligned affine, made safe.

    When every output pixel's source is inside ``prewarp`` and the warp is not a
    stretched resize (see :func:`safe_nearest_warp_cls`), delayed_image's own result
    (exact there); otherwise :func:`nearest_gather`. The safe nearest warp and the
    scaled crop reader (:func:`sampler_core.read._read_scaled`) both warp through it,
    so their pixels agree to the bit.

    Args:
        prewarp: ``(H, W[, C])`` input.
        transform: input -> output pixels (anything ``kwimage.Affine.coerce`` takes),
            a positive scale and a translation only.
        dsize: ``(width, height)`` of the output.
        border_value: fill outside the input; ``'auto'``: NaN for floats, else 0.

    Example:
        >>> data = np.arange(6, dtype=np.uint8).reshape(2, 3)
        >>> nearest_warp(data, {'scale': (2, 1), 'offset': (1, 0)}, (5, 3))[..., 0].tolist()
        [[0, 0, 0, 1, 1], [0, 3, 3, 4, 4], [0, 0, 0, 0, 0]]
    """
    import kwimage
    from delayed_image.delayed_leafs import DelayedIdentity
    from delayed_image.delayed_nodes import DelayedWarp
    transform = kwimage.Affine.coerce(transform)
    params = transform.decompose()
    sx, sy = (float(v) for v in params['scale'])
    tx, ty = (float(v) for v in params.get('offset', (0, 0)))
    out_w, out_h = (int(v) for v in dsize)
    in_h, in_w = prewarp.shape[0:2]
    yi = np.floor((np.arange(out_h) - ty) / sy).astype(np.int64)
    xi = np.floor((np.arange(out_w) - tx) / sx).astype(np.int64)
    inside = (out_h == 0 or (yi.min() >= 0 and yi.max() < in_h)) and \
        (out_w == 0 or (xi.min() >= 0 and xi.max() < in_w))
    # without a translation delayed_image resizes the input to the output
    # size: exact only when the output is the input times the scale
    stretches = tx == 0 and ty == 0 and (in_w * sx != out_w or in_h * sy != out_h)
    if inside and not stretches:
        node = DelayedWarp(DelayedIdentity(prewarp, channels=channels), transform,
                           dsize=(out_w, out_h), antialias=False, interpolation='nearest',
                           border_value=border_value, noop_eps=noop_eps, backend=backend)
        return np.asarray(DelayedWarp._finalize(node))
    if isinstance(border_value, str):
        border_value = np.nan if prewarp.dtype.kind == 'f' else 0
    return nearest_gather(prewarp, (sx, sy), (tx, ty), (out_h, out_w), border_value)


def nearest_gather(data: np.ndarray, scale: tuple[float, float], offset: tuple[float, float],
                   out_hw: tuple[int, int], border) -> np.ndarray:
    """Nearest-neighbour warp by ``x -> sx * x + tx`` (``(x, y)`` order), outside filled.

    Output pixel ``(y, x)`` is ``data[floor((y - ty) / sy), floor((x - tx) / sx)]``, or
    ``border`` where that index falls outside ``data`` (design rule 18).

    Args:
        data: ``(H, W)`` or ``(H, W, C)`` input.
        scale: ``(sx, sy)``, positive.
        offset: ``(tx, ty)``, output pixels.
        out_hw: ``(height, width)`` of the output.
        border: fill value of the output pixels whose source is outside ``data``.

    Returns:
        ``(height, width, C)`` array of ``data``'s dtype.

    Example:
        >>> data = np.arange(6, dtype=np.uint8).reshape(2, 3)
        >>> nearest_gather(data, (2.0, 1.0), (1.0, 0.0), (3, 5), 9)[..., 0].tolist()
        [[9, 0, 0, 1, 1], [9, 3, 3, 4, 4], [9, 9, 9, 9, 9]]
    """
    sx, sy = scale
    tx, ty = offset
    out_h, out_w = out_hw
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[:, :, None]
    in_h, in_w = data.shape[0:2]
    yi = np.floor((np.arange(out_h) - ty) / sy).astype(np.int64)
    xi = np.floor((np.arange(out_w) - tx) / sx).astype(np.int64)
    out = np.full((out_h, out_w, data.shape[2]), border, dtype=data.dtype)
    vy = (yi >= 0) & (yi < in_h)
    vx = (xi >= 0) & (xi < in_w)
    if vy.any() and vx.any():
        out[np.ix_(vy, vx)] = data[np.ix_(yi[vy], xi[vx])]
    return out


def set_warp_params(node, interpolation: str, antialias: bool) -> None:
    """Set ``interpolation`` / ``antialias`` on every node of a tree that has them.

    What delayed_image's ``_set_nested_params`` does, in one walk that also makes
    every nearest ``DelayedWarp`` a safe one (see :func:`safe_nearest_warp_cls`).
    """
    from delayed_image.delayed_nodes import DelayedWarp
    safe = safe_nearest_warp_cls() if interpolation == 'nearest' else None
    stack, seen = [node], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        meta = item.meta
        if 'interpolation' in meta:
            meta['interpolation'] = interpolation
        if 'antialias' in meta:
            meta['antialias'] = antialias
        if safe is not None and type(item) is DelayedWarp:
            item.__class__ = safe
        sub = getattr(item, 'subdata', None)
        if sub is not None:
            stack.append(sub)
        stack.extend(getattr(item, 'parts', None) or [])


def finalize(node, interpolation: str, antialias: bool) -> np.ndarray:
    """``node.finalize`` of an optimised tree (nearest warps guarded)."""
    # the nested parameters ndsampler passes to finalize (optimize may reset them), and
    # nearest warps guarded
    set_warp_params(node, interpolation, antialias)
    return np.asarray(node.finalize(prepare=False, optimize=False))
