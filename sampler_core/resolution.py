"""Resolution in physical units: the config's ``resolution`` turned into a scale per image.

kwcoco images and videos may carry ``resolution`` (units per pixel: ``"10 meters"``,
``"0.5 GSD"``, or a bare number, units unknown); kwcoco's ``CocoImage.resolution``
reads it, for the image's own pixels (``space='image'``) or the video's grid
(``space='video'``, derived through ``warp_img_to_vid`` when only the image has one).

A window read at ``resolution: "0.5 GSD"`` from an image of ``r`` units per pixel is
scaled by ``r / 0.5`` on each axis (kwcoco's ``_scalefactor_for_resolution``): a
10 GSD image is enlarged 20 times, a 0.25 GSD image halved. The window itself is
chosen in the image's pixels (``window_dims``, like ``scale``), so the sample of a
``window_dims`` window is ``window_dims * r / resolution`` pixels.

Units: ``GSD``, ``mpp``, ``m``, ``meter(s)`` / ``metre(s)`` all mean metres per pixel;
other units must be spelled the same (case aside); a bare number matches any unit.

Example:
    >>> parse_resolution('0.5 GSD'), parse_resolution(2), parse_resolution('10 meters')
    ((0.5, 'm'), (2.0, None), (10.0, 'm'))
    >>> import kwcoco
    >>> dset = kwcoco.CocoDataset.demo('shapes2')
    >>> dset.imgs[1]['resolution'] = '2 meters'
    >>> dset.imgs[2]['resolution'] = 4
    >>> resolution_scale(dset, 1, '0.5 GSD'), resolution_scale(dset, 2, 8)
    ((4.0, 4.0), (0.5, 0.5))
"""
from __future__ import annotations

import math
import re
from typing import Any

#: unit names that mean metres per pixel (compared in lower case)
METRE_UNITS = frozenset({'gsd', 'mpp', 'm', 'meter', 'meters', 'metre', 'metres',
                         'm/px', 'm/pixel', 'meters/pixel', 'metres/pixel'})

_QUANTITY = re.compile(r'^\s*(?P<mag>[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)'
                       r'\s*(?P<unit>.*?)\s*$')


def parse_resolution(value: Any, what: str = 'config key "resolution"') -> tuple[float, str | None]:
    """``(units per pixel, unit)`` of a resolution: a number, or ``"<number> <unit>"``.

    Args:
        value: ``0.5``, ``"0.5 GSD"``, ``"10 meters"``, ``"3 mpp"`` ...
        what: how messages name the value.

    Returns:
        the magnitude (> 0, finite) and the unit (``'m'`` for every metre spelling,
        other units in lower case, ``None`` for a bare number).

    Raises:
        TypeError: neither a number nor a string.
        ValueError: not a positive finite number followed by an optional unit.

    Example:
        >>> parse_resolution('3 mpp'), parse_resolution('1.5 puppies')
        ((3.0, 'm'), (1.5, 'puppies'))
        >>> parse_resolution('fast')
        Traceback (most recent call last):
        ValueError: config key "resolution" must be units per pixel such as 0.5 or "0.5 GSD", got 'fast'
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f'{what} must be a number or a text such as "0.5 GSD", got {value!r}')
    if isinstance(value, str):
        match = _QUANTITY.match(value)
        if match is None:
            raise ValueError(f'{what} must be units per pixel such as 0.5 or "0.5 GSD", '
                             f'got {value!r}')
        mag, unit = float(match['mag']), match['unit'].lower() or None
        if unit in METRE_UNITS:
            unit = 'm'
    else:
        mag, unit = float(value), None
    if not (math.isfinite(mag) and mag > 0):
        raise ValueError(f'{what} must be a positive finite number of units per pixel, '
                         f'got {value!r}')
    return mag, unit


def _image_label(dset, gid) -> str:
    img = dset.imgs[gid]
    name = img.get('name') or img.get('file_name')
    return f'image {gid!r} ({name!r})' if name else f'image {gid!r}'


def resolution_scale(dset, gid, wanted: Any, space: str = 'image') -> tuple[float, float]:
    """``(sy, sx)`` that reads image ``gid`` (its pixels, or its video's grid) at ``wanted``.

    ``s = have / wanted`` per axis, ``have`` the units per pixel kwcoco reports for
    the image in ``space`` (the image's or its video's ``resolution``).

    Args:
        dset (kwcoco.CocoDataset): the dataset.
        gid: the image id.
        wanted: the config's ``resolution`` (see :func:`parse_resolution`).
        space: ``'image'`` or ``'video'``.

    Raises:
        ValueError: the image (and its video) has no ``resolution``, an unreadable
            one, or one in other units; the message names the image by id and name.

    Example:
        >>> import kwcoco
        >>> dset = kwcoco.CocoDataset.demo('shapes2')
        >>> resolution_scale(dset, 1, '1 GSD')
        Traceback (most recent call last):
        ValueError: image 1 ('...') has no "resolution" (units per pixel, on the image or its video), needed by resolution='1 GSD'...
    """
    want, want_unit = parse_resolution(wanted)
    img = dset.imgs[gid]
    video = dset.index.videos.get(img.get('video_id')) if img.get('video_id') is not None else None
    if img.get('resolution') is None and (video is None or video.get('resolution') is None):
        raise ValueError(f'{_image_label(dset, gid)} has no "resolution" (units per pixel, on '
                         f'the image or its video), needed by resolution={wanted!r}; add it to '
                         f'the dataset or set resolution to null')
    try:
        info = dset.coco_image(gid).resolution(space=space)
        mag = info['mag']
        unit = info.get('unit')
        if isinstance(unit, str):
            unit = unit.strip().lower() or None
            unit = 'm' if unit in METRE_UNITS else unit
        have = (float(mag[1]), float(mag[0]))    # kwcoco gives (x, y)
    except (ValueError, TypeError, KeyError, AssertionError) as ex:
        raise ValueError(f'{_image_label(dset, gid)} has a "resolution" that cannot be read '
                         f'({ex})') from None
    if not all(math.isfinite(h) and h > 0 for h in have):
        raise ValueError(f'{_image_label(dset, gid)} has resolution {have} (y, x): must be '
                         f'positive units per pixel')
    if unit is not None and want_unit is not None and unit != want_unit:
        raise ValueError(f'{_image_label(dset, gid)} has its resolution in {unit!r} but '
                         f'resolution={wanted!r} asks for {want_unit!r}')
    return have[0] / want, have[1] / want
