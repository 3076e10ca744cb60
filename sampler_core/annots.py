"""Annotation geometry of a sampled window.

The sampler hands this module the ids of the annotations that overlap a window;
it returns their boxes, segmentations (``kwimage.MultiPolygon``) and keypoints
(``kwimage.Points``) as ``kwimage.Detections`` in *window* coordinates
(``rel = abs - (x0, y0)``, where ``(x0, y0)`` is the top-left corner of the padded
window in image space).

Two flavours are produced:

* ``frame_dets``: the seed's geometry, translated but not clipped, so a box that
  sticks out of the window keeps its full extent (ndsampler 0.8 behaviour).
* ``clipped_dets``: boxes clipped to the window, polygons intersected with it
  (self-intersecting polygons are repaired with shapely ``make_valid`` first) and
  keypoints outside the window removed.

Parsed geometry is cached per annotation id, so sampling the same annotation
again costs a translation only. Segmentations and keypoints that cannot be
parsed, or that have a NaN / infinite coordinate, become ``None`` with one
warning naming the annotation (it keeps its box), instead of failing the sample.

Example:
    >>> import kwcoco
    >>> from sampler_core.annots import AnnotGeometry
    >>> dset = kwcoco.CocoDataset.demo('shapes8')
    >>> geom = AnnotGeometry(dset)
    >>> dets = geom.frame_dets([1], gid=1, offset=(-200, -250), space_dims=(600, 600))
    >>> dets.boxes.to_xywh().data.tolist() == [[234 - 200, 283 - 250, 162, 63]]
    True
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Iterable, Sequence

import numpy as np

WITH_ANNOTS_KINDS = ('boxes', 'segmentation', 'keypoints')


def coerce_with_annots(with_annots) -> tuple[str, ...]:
    """Normalise ``with_annots`` to a tuple of kinds.

    Args:
        with_annots: ``True`` (all kinds), ``False`` / ``None`` (none), a string
            such as ``'boxes+keypoints'`` or a list of kinds.

    Raises:
        ValueError: an unknown kind.

    Example:
        >>> coerce_with_annots(True)
        ('boxes', 'segmentation', 'keypoints')
        >>> coerce_with_annots('boxes+segmentation')
        ('boxes', 'segmentation')
    """
    if with_annots is True or (isinstance(with_annots, (int, np.integer))
                               and not isinstance(with_annots, bool) and with_annots):
        return WITH_ANNOTS_KINDS
    if not with_annots:
        return ()
    if isinstance(with_annots, str):
        kinds = [k for k in with_annots.split('+') if k]
    else:
        kinds = list(with_annots)
    kinds = ['segmentation' if k == 'segmentations' else k for k in kinds]
    bad = [k for k in kinds if k not in WITH_ANNOTS_KINDS]
    if bad:
        raise ValueError(f'unknown with_annots kind(s) {bad}; choose from {list(WITH_ANNOTS_KINDS)}')
    return tuple(kinds)


def _coords(xy: np.ndarray):
    import kwimage
    out = kwimage.Coords.__new__(kwimage.Coords)
    out.data, out.meta = xy, {}
    return out


def translate_polygon(poly, offset: np.ndarray):
    """``poly`` (kwimage Polygon / MultiPolygon) moved by ``offset`` ``(dx, dy)``, as float.

    The same result as ``poly.translate(offset)`` (kwimage keeps integer coordinates
    integer; these come back float64), built directly: about 2x faster, which
    matters when every sample translates every polygon in its window.

    Example:
        >>> import kwimage
        >>> poly = kwimage.Polygon.random(rng=0).scale(10)
        >>> moved = translate_polygon(poly, np.array([3., -2.]))
        >>> np.allclose(moved.exterior.data, poly.translate((3, -2)).exterior.data)
        True
    """
    import kwimage
    if isinstance(poly, kwimage.MultiPolygon):
        out = kwimage.MultiPolygon.__new__(kwimage.MultiPolygon)
        out.data, out.meta = [translate_polygon(p, offset) for p in poly.data], dict(poly.meta)
        return out
    if type(poly) is not kwimage.Polygon:
        return poly.translate(offset)
    data = poly.data
    out = kwimage.Polygon.__new__(kwimage.Polygon)
    out.data = {'exterior': _coords(data['exterior'].data + offset),
                'interiors': [_coords(c.data + offset) for c in data['interiors']]}
    out.meta = dict(poly.meta)
    return out


def translate_points(points, offset: np.ndarray):
    """``points`` (kwimage.Points) moved by ``offset`` ``(dx, dy)``; see :func:`translate_polygon`.

    Example:
        >>> import kwimage
        >>> pts = kwimage.Points(xy=np.array([[1., 2.], [3., 4.]]))
        >>> translate_points(pts, np.array([1., 1.])).xy.tolist()
        [[2.0, 3.0], [4.0, 5.0]]
    """
    import kwimage
    if type(points) is not kwimage.Points:
        return points.translate(offset)
    out = kwimage.Points.__new__(kwimage.Points)
    out.data = dict(points.data)
    out.data['xy'] = _coords(points.data['xy'].data + offset)
    out.meta = points.meta
    return out


class _DeferredList:
    """Mixin: a kwimage ``ObjectList`` whose items are built on first use.

    ``rel_ssegs`` / ``rel_kpts`` / ``frame_dets`` polygons and keypoints are the
    kwimage types the API promises (``isinstance(x, kwimage.PolygonList)``),
    but parsing and translating each annotation's geometry waits until
    ``.data`` (or anything using it: indexing, iteration, ``warp``, ...) is
    first touched, so a training loop that only uses boxes never pays for it.
    ``len`` needs no build; a pickle or deepcopy holds the built, plain
    kwimage list. Geometry that cannot be parsed warns when it is built.
    """
    _plain = None

    @classmethod
    def deferred(cls, build, n: int, meta: dict | None = None):
        """A list of ``n`` items that ``build()`` returns when first needed."""
        self = cls.__new__(cls)
        self.__dict__.update(_build=build, _n=int(n), meta={} if meta is None else meta)
        return self

    @property
    def data(self):
        state = self.__dict__
        try:
            return state['_data']
        except KeyError:
            pass
        data = state['_build']()
        state['_data'] = data
        state.pop('_build', None)
        return data

    @data.setter
    def data(self, value):
        self.__dict__['_data'] = value
        self.__dict__.pop('_build', None)

    def __len__(self) -> int:
        state = self.__dict__
        return len(state['_data']) if '_data' in state else state['_n']

    def __reduce__(self):
        return (self._plain, (self.data, self.meta))


def _deferred_classes():
    global _DEFERRED
    if _DEFERRED is None:
        import kwimage

        class DeferredPolygonList(_DeferredList, kwimage.PolygonList):
            _plain = kwimage.PolygonList

        class DeferredPointsList(_DeferredList, kwimage.PointsList):
            _plain = kwimage.PointsList
        _DEFERRED = (DeferredPolygonList, DeferredPointsList)
    return _DEFERRED


_DEFERRED = None


class _LRU(OrderedDict):
    """A dict that forgets its least recently used entries beyond ``maxsize``."""

    def __init__(self, maxsize: int):
        super().__init__()
        self.maxsize = maxsize

    def __reduce__(self):  # a cache: pickles empty
        return (type(self), (self.maxsize,))

    def get_or(self, key, default):
        try:
            value = self[key]
        except KeyError:
            return default
        self.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self[key] = value
        if len(self) > self.maxsize:
            self.popitem(last=False)


_MISSING = object()


def _check_finite(geom) -> None:
    """Raise ValueError when a parsed (Multi)Polygon or Points has a NaN / inf coordinate.

    Example:
        >>> import kwimage
        >>> _check_finite(kwimage.Polygon.from_coco([0, 0, 4, 0, 4, float('nan')]))
        Traceback (most recent call last):
        ...
        ValueError: a coordinate is not finite: [[0.0, 0.0], [4.0, 0.0], [4.0, nan]]
    """
    import kwimage
    if isinstance(geom, kwimage.MultiPolygon):
        rings = [r for p in geom.data for r in [p.data['exterior']] + list(p.data['interiors'])]
    elif isinstance(geom, kwimage.Polygon):
        rings = [geom.data['exterior']] + list(geom.data['interiors'])
    elif isinstance(geom, kwimage.Points):
        rings = [geom.data['xy']]
    else:
        return
    for ring in rings:
        xy = np.asarray(getattr(ring, 'data', ring), dtype=np.float64)
        if not np.isfinite(xy).all():
            raise ValueError(f'a coordinate is not finite: {xy.tolist()}')


class AnnotGeometry:
    """Parses and caches the kwimage geometry of a dataset's annotations.

    Args:
        dset (kwcoco.CocoDataset): the dataset.
    """

    def __init__(self, dset):
        self.dset = dset
        self.classes = dset.object_categories()
        self.kp_classes = dset.keypoint_categories()
        self._sseg = _LRU(self.max_cached)
        self._kpts = _LRU(self.max_cached)

    #: parsed geometries kept per kind (about 1-2 KB each)
    max_cached = 100_000

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_sseg'], state['_kpts'] = _LRU(self.max_cached), _LRU(self.max_cached)
        return state

    def _parsed(self, cache: '_LRU', aid: int, key: str, parse):
        """``parse(value)`` of ``anns[aid][key]``, cached; ``None`` when absent or unparseable."""
        hit = cache.get_or(aid, _MISSING)
        if hit is not _MISSING:
            return hit
        value = self.dset.anns[aid].get(key, None)
        out = None
        if value is not None and len(value) > 0:
            try:
                out = parse(value)
                _check_finite(out)
            except Exception as ex:  # malformed polygons / RLE / keypoints in real data
                reason = ' '.join(str(ex).split()) or type(ex).__name__
                if not isinstance(ex, ValueError):
                    reason = f'{type(ex).__name__}: {reason}'
                out = None
                warnings.warn(f'annotation {aid}: {key} cannot be parsed ({reason}); ignored, '
                              f'the annotation keeps its box')
        cache.put(aid, out)
        return out

    def segmentation(self, aid: int, space_dims: Sequence[int] | None = None):
        """``kwimage.MultiPolygon`` of annotation ``aid`` in image space, or ``None``."""
        import kwimage
        return self._parsed(self._sseg, aid, 'segmentation',
                            lambda sseg: kwimage.MultiPolygon.coerce(sseg, dims=space_dims))

    def keypoints(self, aid: int):
        """``kwimage.Points`` of annotation ``aid`` in image space, or ``None``."""
        import kwimage

        def parse(coco_kpts):
            if isinstance(coco_kpts[0], dict):
                return kwimage.Points.from_coco(coco_kpts, classes=self.kp_classes)
            names = self.dset._lookup_kpnames(self.dset.anns[aid]['category_id'])
            idxs = [self.kp_classes.index(n) for n in names]
            return kwimage.Points.from_coco(coco_kpts, idxs, self.kp_classes)
        return self._parsed(self._kpts, aid, 'keypoints', parse)

    def frame_dets(self, aids: Iterable[int], gid: int, offset: Sequence[float],
                   space_dims: Sequence[int] | None = None,
                   with_annots: Sequence[str] = WITH_ANNOTS_KINDS, rel_frame_index: int = 0,
                   visible: np.ndarray | None = None):
        """Detections of ``aids`` translated by ``offset`` (``(dx, dy)``, pixels).

        Args:
            aids: annotation ids (all in image ``gid``).
            gid: their image.
            offset: ``(dx, dy)`` added to image coordinates (minus the window's
                top-left corner).
            space_dims: ``(height, width)`` of the image (for RLE masks).
            with_annots: kinds to fill; missing kinds are ``None`` per annotation.
            rel_frame_index: frame number within the sample.
            visible: optional ``(N,)`` visible fractions, stored as data key.

        Returns:
            kwimage.Detections with data keys ``boxes``, ``aids``, ``cids``,
            ``segmentations``, ``keypoints`` (and ``visible``), meta ``gid``,
            ``rel_frame_index``. The segmentations and keypoints are parsed
            and translated when first used (see :class:`_DeferredList`).
        """
        import kwimage
        aids = [int(a) for a in aids]
        all_anns = self.dset.anns
        anns = [all_anns[a] for a in aids]
        xywh = np.array([ann['bbox'] for ann in anns], dtype=np.float64).reshape(-1, 4)
        xywh[:, 0] += offset[0]
        xywh[:, 1] += offset[1]
        off = np.asarray(offset, dtype=np.float64)
        polygon_list, points_list = _deferred_classes()
        if not aids:   # nothing to defer
            polygon_list = points_list = None
        if 'segmentation' in with_annots and polygon_list is not None:
            def build_ssegs():
                out = []
                for aid in aids:
                    sseg = self.segmentation(aid, space_dims)
                    out.append(None if sseg is None else translate_polygon(sseg, off))
                return out
            ssegs = polygon_list.deferred(build_ssegs, len(aids))
        else:
            ssegs = kwimage.PolygonList([None] * len(aids))
        if 'keypoints' in with_annots and points_list is not None:
            def build_kpts():
                out = []
                for aid in aids:
                    kp = self.keypoints(aid)
                    out.append(None if kp is None else translate_points(kp, off))
                return out
            kpts = points_list.deferred(build_kpts, len(aids))
        else:
            kpts = kwimage.PointsList([None] * len(aids))
        kpts.meta['classes'] = self.kp_classes
        data = {
            'boxes': kwimage.Boxes(xywh, 'xywh'),
            'aids': np.array(aids, dtype=np.int64),
            'cids': np.array([ann['category_id'] for ann in anns], dtype=np.int64),
            'segmentations': ssegs,
            'keypoints': kpts,
        }
        datakeys = ['aids', 'cids']
        if visible is not None:
            data['visible'] = np.asarray(visible, dtype=np.float64)
            datakeys.append('visible')
        meta = {'classes': self.classes, 'gid': gid, 'rel_frame_index': rel_frame_index}
        return kwimage.Detections(data=data, meta=meta, datakeys=datakeys,
                                  metakeys=['gid', 'rel_frame_index'], checks=False)


def clip_dets(dets, window_dims: Sequence[int]):
    """Clip window-relative detections to the window ``[0, W] x [0, H]``.

    Boxes are clipped (a box fully outside becomes zero-size at the border),
    polygons are intersected with the window (invalid ones repaired first; what
    is left outside becomes ``None``), keypoints outside the half-open window are
    removed.

    Args:
        dets (kwimage.Detections): relative detections, e.g. from
            :meth:`AnnotGeometry.frame_dets`.
        window_dims: ``(height, width)`` of the window.

    Example:
        >>> import kwimage
        >>> dets = kwimage.Detections(boxes=kwimage.Boxes([[-5, 2, 10, 10]], 'xywh'),
        ...     segmentations=kwimage.PolygonList([kwimage.Polygon.from_coco([-5, 2, 5, 2, 5, 12])]),
        ...     keypoints=kwimage.PointsList([kwimage.Points(xy=np.array([[-1., 3], [2, 3]]))]))
        >>> out = clip_dets(dets, (8, 8))
        >>> out.boxes.to_ltrb().data.tolist()
        [[0.0, 2.0, 5.0, 8.0]]
        >>> out.data['keypoints'][0].xy.tolist()
        [[2.0, 3.0]]
    """
    import kwimage
    h, w = window_dims
    ltrb = dets.boxes.to_ltrb().data.astype(np.float64).copy()
    ltrb[:, 0::2] = ltrb[:, 0::2].clip(0, w)
    ltrb[:, 1::2] = ltrb[:, 1::2].clip(0, h)
    data = dict(dets.data)
    data['boxes'] = kwimage.Boxes(ltrb, 'ltrb')
    if 'segmentations' in data and data['segmentations'] is not None:
        data['segmentations'] = kwimage.PolygonList(
            [clip_polygon(p, (h, w)) for p in data['segmentations'].data])
    if 'keypoints' in data and data['keypoints'] is not None:
        kept = []
        for pts in data['keypoints'].data:
            if pts is None:
                kept.append(None)
                continue
            xy = pts.xy
            flags = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
            kept.append(pts.compress(flags))
        kpts = kwimage.PointsList(kept)
        kpts.meta.update(dets.data['keypoints'].meta)
        data['keypoints'] = kpts
    return kwimage.Detections(data=data, meta=dict(dets.meta), checks=False)


def clip_polygon(poly, window_dims: Sequence[int]):
    """Intersect a kwimage (Multi)Polygon with ``[0, W] x [0, H]``; ``None`` if empty.

    Self-intersecting ("bow-tie") polygons are made valid with shapely's
    ``make_valid`` before the intersection, so no part of them is lost.

    Example:
        >>> import kwimage
        >>> bowtie = kwimage.Polygon(exterior=np.array([[0, 0], [4, 4], [4, 0], [0, 4.]]))
        >>> clip_polygon(bowtie, (10, 10)).to_shapely().area
        8.0
    """
    if poly is None:
        return None
    import kwimage
    import shapely
    from shapely.geometry import box as shapely_box
    h, w = window_dims
    if isinstance(poly, kwimage.Segmentation):
        poly = poly.data
    # rings with fewer than 3 points (lines / points in real data) have no area;
    # shapely refuses to build them, so drop them instead of failing the sample
    geoms = []
    for part in (poly.data if isinstance(poly, kwimage.MultiPolygon) else [poly]):
        try:
            geoms.append(part.to_shapely())
        except (ValueError, shapely.errors.GEOSException):
            continue
    if not geoms:
        return None
    geom = geoms[0] if len(geoms) == 1 else shapely.geometry.MultiPolygon(geoms)
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    geom = geom.intersection(shapely_box(0, 0, w, h))
    parts = [g for g in getattr(geom, 'geoms', [geom]) if g.geom_type in ('Polygon', 'MultiPolygon')]
    polys = []
    for part in parts:
        polys.extend(getattr(part, 'geoms', [part]))
    polys = [p for p in polys if not p.is_empty and p.area > 0]
    if not polys:
        return None
    return kwimage.MultiPolygon([kwimage.Polygon.from_shapely(p) for p in polys])
