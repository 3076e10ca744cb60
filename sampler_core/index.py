"""Spatial index of annotation boxes over all images of a dataset.

:class:`FrameIntersectionIndex` answers "which annotations of image ``gid``
overlap this window?" and draws random negative windows that avoid annotations.

It holds **one** rtree over every annotation of every image, in three
dimensions ``(x, y, image)``: the image id is a degenerate third axis, so a
query for image ``gid`` is the box ``(x1, y1, gid, x2, y2, gid)``. The tree is
bulk-loaded from numpy arrays (rtree's array interface), which is what makes a
million annotations index in about a second.

Boxes are ``ltrb`` (left, top, right, bottom) in pixels, image space. A window
and an annotation *overlap* when their intersection has positive area; boxes
that only touch a border do not overlap. An annotation with zero area (a point
or a line) overlaps a window when it lies inside the half-open window.

Example:
    >>> import kwimage
    >>> from sampler_core.index import FrameIntersectionIndex
    >>> self = FrameIntersectionIndex.demo('shapes8')
    >>> gid = 1
    >>> h, w = self.image_dims[gid]
    >>> aids = self.overlapping_aids(gid, kwimage.Boxes([[0, 0, w, h]], 'ltrb'))
    >>> sorted(aids) == sorted(self._aids_of(gid))
    True
"""
from __future__ import annotations

import warnings
from typing import Any, Iterable, Sequence

import numpy as np


def _rtree():
    from rtree import index
    return index


#: images with at most this many boxes are queried with numpy instead of the rtree
SMALL_IMAGE_BOXES = 1024

#: most random negative candidates drawn and checked at once (bounds the memory of a draw)
NEGATIVE_BATCH = 2 ** 20

#: most (window, box) pairs compared at once when checking negative candidates
PAIR_BUDGET = 2 ** 22


def _box3(gids: np.ndarray, ltrb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mins, maxs)`` rtree coordinates ``(image, x, y)`` of boxes in images.

    The image id comes first: the tree then splits on images before space,
    which makes queries about 3x faster than with the image id last.
    """
    z = np.asarray(gids, dtype=np.float64).reshape(-1, 1)
    mins = np.ascontiguousarray(np.hstack([z, ltrb[:, 0:2]]))
    maxs = np.ascontiguousarray(np.hstack([z, ltrb[:, 2:4]]))
    return mins, maxs


def box_to_ltrb(box: Any) -> np.ndarray:
    """A single box as a float ``(4,)`` ltrb array.

    Args:
        box: a ``kwimage.Boxes`` holding one box (any format), or a sequence of
            four numbers in ``ltrb`` order.

    Raises:
        ValueError: not exactly one box or not four numbers.

    Example:
        >>> import kwimage
        >>> box_to_ltrb(kwimage.Boxes([[0, 10, 100, 50]], 'xywh')).tolist()
        [0.0, 10.0, 100.0, 60.0]
    """
    if hasattr(box, 'to_ltrb'):
        data = np.asarray(box.to_ltrb().data, dtype=np.float64).reshape(-1, 4)
        if len(data) != 1:
            raise ValueError(f'expected exactly one box, got {len(data)}')
        return data[0]
    arr = np.asarray(box, dtype=np.float64).reshape(-1)
    if arr.shape != (4,):
        raise ValueError(f'expected a box as 4 numbers (ltrb), got {box!r}')
    return arr


def visible_fractions(ltrb: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Fraction of each box's area that lies inside ``window``.

    Args:
        ltrb: ``(N, 4)`` boxes, ltrb, pixels.
        window: ``(4,)`` window, or ``(N, 4)`` one per box; ltrb, pixels
            (half-open on the right and bottom).

    Returns:
        ``(N,)`` floats in ``[0, 1]``. A point box (zero width and height)
        counts 1.0 inside the half-open window and 0.0 outside; a segment box
        (zero width or zero height) counts the fraction of its length inside.

    Example:
        >>> visible_fractions(np.array([[0, 0, 10, 10], [10, 0, 20, 10], [5, 5, 5, 5],
        ...                             [6, -10, 6, 10]]),
        ...                   np.array([5, 0, 10, 10])).tolist()
        [0.5, 0.0, 1.0, 0.5]
    """
    ltrb = np.asarray(ltrb, dtype=np.float64).reshape(-1, 4)
    window = np.asarray(window, dtype=np.float64)
    # one window: its four numbers broadcast as scalars (no (N, 4) copy, fewer calls)
    win4 = window.reshape(4) if window.size == 4 else \
        np.broadcast_to(window.reshape(-1, 4), ltrb.shape).T
    x1 = np.maximum(ltrb[:, 0], win4[0])
    y1 = np.maximum(ltrb[:, 1], win4[1])
    x2 = np.minimum(ltrb[:, 2], win4[2])
    y2 = np.minimum(ltrb[:, 3], win4[3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    area = (ltrb[:, 2] - ltrb[:, 0]) * (ltrb[:, 3] - ltrb[:, 1])
    pos = area > 0
    if pos.all():
        return inter / area
    out = np.zeros(len(ltrb))
    out[pos] = inter[pos] / area[pos]
    deg = ~pos
    window = np.broadcast_to(window.reshape(-1, 4), ltrb.shape)
    if deg.any():
        d, win = ltrb[deg], window[deg]
        w, h = d[:, 2] - d[:, 0], d[:, 3] - d[:, 1]
        in_x = (d[:, 0] >= win[:, 0]) & (d[:, 0] < win[:, 2])
        in_y = (d[:, 1] >= win[:, 1]) & (d[:, 1] < win[:, 3])
        frac = (in_x & in_y).astype(np.float64)            # points
        vert = (w == 0) & (h > 0)                         # vertical segments
        frac[vert] = in_x[vert] * (np.clip(y2[deg][vert] - y1[deg][vert], 0, None) / h[vert])
        horz = (h == 0) & (w > 0)                         # horizontal segments
        frac[horz] = in_y[horz] * (np.clip(x2[deg][horz] - x1[deg][horz], 0, None) / w[horz])
        out[deg] = frac
    return out


class _ImageExtent:
    """Width / height of one indexed image (what ndsampler called a qtree)."""

    __slots__ = ('width', 'height')

    def __init__(self, width: int, height: int):
        self.width = width
        self.height = height

    def __repr__(self) -> str:
        return f'<_ImageExtent(width={self.width}, height={self.height})>'


class FrameIntersectionIndex:
    """Annotation boxes of all images in one bulk-loaded rtree.

    Attributes:
        aids (ndarray): ``(N,)`` annotation ids, row ``i`` of the index.
        gids (ndarray): ``(N,)`` image id of each row.
        ltrb (ndarray): ``(N, 4)`` float64 boxes, ltrb, pixels in image space.
        image_dims (Dict[int, Tuple[int, int]]): ``(height, width)`` of every
            image, including images with no annotations.

    Example:
        >>> import kwimage
        >>> self = FrameIntersectionIndex.demo('shapes8')
        >>> box = kwimage.Boxes([0, 10, 100, 100], 'xywh')
        >>> aids, ious = self.ious(1, box)
        >>> len(aids) == len(ious)
        True
    """

    def __init__(self) -> None:
        self.aids = np.empty(0, dtype=np.int64)
        self.gids = np.empty(0, dtype=np.int64)
        self.ltrb = np.empty((0, 4), dtype=np.float64)
        self.image_dims: dict[int, tuple[int, int]] = {}
        self._tree = None
        self._rows_by_gid: dict[int, tuple[int, int]] | None = None
        self._max_small_boxes: int | None = None

    # ------------------------------------------------------------------ build
    @classmethod
    def from_arrays(cls, aids: Sequence[int], gids: Sequence[int], ltrb: np.ndarray,
                    image_dims: dict[int, tuple[int, int]]) -> 'FrameIntersectionIndex':
        """Build the index from plain arrays.

        Args:
            aids: ``(N,)`` annotation ids.
            gids: ``(N,)`` image id of each annotation.
            ltrb: ``(N, 4)`` boxes, ltrb, pixels. Rows that are not finite or have
                negative width / height are dropped with a warning naming them.
            image_dims: ``{gid: (height, width)}`` for every image.

        Raises:
            ValueError: arrays of different lengths, or an annotation whose
                image is not in ``image_dims``.

        Example:
            >>> self = FrameIntersectionIndex.from_arrays(
            ...     [1, 2], [7, 7], np.array([[0, 0, 10, 10], [20, 20, 30, 30]]),
            ...     {7: (100, 100)})
            >>> self.overlapping_aids(7, [5, 5, 25, 25])
            [1, 2]
        """
        self = cls()
        aids = np.asarray(aids, dtype=np.int64).reshape(-1)
        gids = np.asarray(gids, dtype=np.int64).reshape(-1)
        ltrb = np.asarray(ltrb, dtype=np.float64).reshape(-1, 4)
        if not (len(aids) == len(gids) == len(ltrb)):
            raise ValueError(
                f'aids, gids and boxes differ in length: {len(aids)}, {len(gids)}, {len(ltrb)}')
        self.image_dims = {int(g): (int(h), int(w)) for g, (h, w) in image_dims.items()}
        if len(gids):
            known = np.fromiter(self.image_dims.keys(), dtype=np.int64, count=len(self.image_dims))
            missing = ~np.isin(gids, known)
            if missing.any():
                raise ValueError(
                    f'annotations {aids[missing][:10].tolist()} refer to unknown image ids '
                    f'{np.unique(gids[missing])[:10].tolist()}')
        valid = np.isfinite(ltrb).all(axis=1) & (ltrb[:, 2] >= ltrb[:, 0]) & (ltrb[:, 3] >= ltrb[:, 1])
        if not valid.all():
            warnings.warn(
                f'{int((~valid).sum())} annotations with invalid boxes (NaN, inf or negative '
                f'size) are left out of the index: aids {aids[~valid][:20].tolist()}')
            aids, gids, ltrb = aids[valid], gids[valid], ltrb[valid]
        # rows of one image are contiguous (stable: input order within an image)
        order = np.argsort(gids, kind='stable')
        self.aids, self.gids, self.ltrb = aids[order], gids[order], ltrb[order]
        self._tree = self._build_tree()
        return self

    def _build_tree(self):
        """Bulk-load the rtree with the boxes of *dense* images (``None`` when there are none).

        Images with at most :data:`SMALL_IMAGE_BOXES` boxes are answered by
        numpy over the image's boxes, which is faster than a tree query at that
        size, so only the rows of denser images go into the tree (ids = rows).
        """
        if not len(self.aids):
            return None
        uniq, counts = np.unique(self.gids, return_counts=True)
        dense = uniq[counts > SMALL_IMAGE_BOXES]
        if not len(dense):
            return None
        rows = np.flatnonzero(np.isin(self.gids, dense))
        index = _rtree()
        props = index.Property()
        props.dimension = 3
        mins, maxs = _box3(self.gids[rows], self.ltrb[rows])
        return index.Index((rows.astype(np.int64), mins, maxs), properties=props)

    # rtree indexes do not pickle: the tree is dropped and rebuilt on first use
    # (e.g. in each DataLoader worker started with spawn)
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop('_tree', None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __getattr__(self, name):
        if name == '_tree' and 'ltrb' in self.__dict__:
            self._tree = self._build_tree()
            return self._tree
        raise AttributeError(f'{type(self).__name__!r} object has no attribute {name!r}')

    @classmethod
    def from_coco(cls, dset, verbose: int = 0, arrays=None) -> 'FrameIntersectionIndex':
        """Index every annotation with a ``bbox`` in a kwcoco dataset.

        Args:
            dset (kwcoco.CocoDataset): images need ``width`` and ``height``.
            verbose: unused, kept for ndsampler compatibility.
            arrays: :func:`coco_annot_arrays` of ``dset`` when already computed.

        Example:
            >>> import kwcoco
            >>> dset = kwcoco.CocoDataset.demo('shapes8')
            >>> self = FrameIntersectionIndex.from_coco(dset)
            >>> len(self.aids) == len(dset.anns)
            True
        """
        aids, gids, _, xywh = coco_annot_arrays(dset) if arrays is None else arrays
        ltrb = xywh.copy()
        ltrb[:, 2:] += ltrb[:, :2]
        image_dims = {}
        for gid, img in dset.imgs.items():
            if img.get('width') is None or img.get('height') is None:
                raise ValueError(f'image {gid} has no width/height; call dset._ensure_imgsize()')
            image_dims[gid] = (img['height'], img['width'])
        return cls.from_arrays(aids, gids, ltrb, image_dims)

    @classmethod
    def demo(cls, *args, **kwargs) -> 'FrameIntersectionIndex':
        """Index of a ``kwcoco.CocoDataset.demo(*args, **kwargs)`` dataset."""
        import kwcoco
        return cls.from_coco(kwcoco.CocoDataset.demo(*args, **kwargs))

    # --------------------------------------------------------------- queries
    def __nice__(self) -> str:
        return f'{len(self.aids)} annots in {len(self.image_dims)} images'

    def __repr__(self) -> str:
        return f'<{type(self).__name__}({self.__nice__()})>'

    @property
    def qtrees(self) -> dict[int, _ImageExtent]:
        """``{gid: extent}`` with ``.width`` / ``.height`` (ndsampler compatibility)."""
        return {g: _ImageExtent(w, h) for g, (h, w) in self.image_dims.items()}

    def _check_gid(self, gid: int) -> int:
        if gid not in self.image_dims:
            raise KeyError(f'unknown image id {gid!r}')
        return gid

    def _aids_of(self, gid: int) -> list[int]:
        return self.aids[self._rows_of(gid)].tolist()

    def _span(self, gid: int) -> tuple[int, int]:
        """``(start, stop)``: the rows of image ``gid`` (rows are sorted by image)."""
        if self._rows_by_gid is None:
            uniq, starts, counts = np.unique(self.gids, return_index=True, return_counts=True)
            self._rows_by_gid = {g: (a, a + n) for g, a, n in
                                 zip(uniq.tolist(), starts.tolist(), counts.tolist())}
        return self._rows_by_gid.get(self._check_gid(gid), (0, 0))

    def _rows_of(self, gid: int) -> np.ndarray:
        start, stop = self._span(gid)
        return np.arange(start, stop, dtype=np.int64)

    def _support(self, gid: int):
        """All annotation boxes of image ``gid`` as ``kwimage.Boxes`` (ltrb)."""
        import kwimage
        return kwimage.Boxes(self.ltrb[self._rows_of(gid)], 'ltrb')

    def candidate_rows(self, gid: int, window: np.ndarray) -> np.ndarray:
        """Rows whose box touches or overlaps ``window`` (closed test, may over-report)."""
        rows = self._rows_of(gid)
        if len(rows) <= SMALL_IMAGE_BOXES or self._tree is None:
            return rows
        mins, maxs = _box3(np.array([gid]), np.asarray(window, dtype=np.float64).reshape(1, 4))
        rows, _ = self._tree.intersection_v(mins, maxs)
        return rows.astype(np.int64)

    def visible(self, gid: int, box: Any) -> tuple[np.ndarray, np.ndarray]:
        """Annotations of ``gid`` overlapping ``box`` and their visible fraction.

        Returns:
            ``(aids, fractions)``: ``(M,)`` ids in index order and the fraction of
            each annotation's box area inside ``box``, all ``> 0``.
        """
        window = box_to_ltrb(box)
        start, stop = self._span(gid)
        if stop - start > SMALL_IMAGE_BOXES and self._tree is not None:
            rows = np.sort(self.candidate_rows(gid, window))
            ltrb, aids = self.ltrb[rows], self.aids[rows]
        else:  # views, no copy
            ltrb, aids = self.ltrb[start:stop], self.aids[start:stop]
        near = ((ltrb[:, 0] <= window[2]) & (ltrb[:, 2] >= window[0]) &
                (ltrb[:, 1] <= window[3]) & (ltrb[:, 3] >= window[1]))
        frac = visible_fractions(ltrb[near], window)
        keep = frac > 0
        return aids[near][keep], frac[keep]

    def overlapping_aids(self, gid: int, box: Any) -> list[int]:
        """Ids of the annotations of image ``gid`` that overlap ``box``.

        Args:
            gid: image id.
            box: ``kwimage.Boxes`` with one box, or ltrb numbers.

        Raises:
            KeyError: unknown ``gid``.
        """
        return self.visible(gid, box)[0].tolist()

    def _overlaps(self, gid: int, box: Any):
        window = box_to_ltrb(box)
        rows = np.sort(self.candidate_rows(gid, window))
        ltrb = self.ltrb[rows]
        x1 = np.maximum(ltrb[:, 0], window[0])
        y1 = np.maximum(ltrb[:, 1], window[1])
        x2 = np.minimum(ltrb[:, 2], window[2])
        y2 = np.minimum(ltrb[:, 3], window[3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = (ltrb[:, 2] - ltrb[:, 0]) * (ltrb[:, 3] - ltrb[:, 1])
        warea = (window[2] - window[0]) * (window[3] - window[1])
        return self.aids[rows], inter, area, warea

    def ious(self, gid: int, box: Any) -> tuple[list[int], np.ndarray]:
        """Annotations touching ``box`` and their intersection over union with it."""
        aids, inter, area, warea = self._overlaps(gid, box)
        union = area + warea - inter
        with np.errstate(invalid='ignore', divide='ignore'):
            ious = np.where(union > 0, inter / union, 0.0)
        return aids.tolist(), ious

    def iooas(self, gid: int, box: Any) -> tuple[list[int], np.ndarray]:
        """Annotations touching ``box`` and intersection over each annotation's area.

        Zero-area annotations get 1.0 when inside the half-open ``box``.
        """
        window = box_to_ltrb(box)
        rows = np.sort(self.candidate_rows(gid, window))
        return self.aids[rows].tolist(), visible_fractions(self.ltrb[rows], window)

    # ------------------------------------------------------------- negatives
    def random_negatives(self, num: int, anchors: np.ndarray | None = None,
                         window_size: Sequence[int] | None = None,
                         gids: Iterable[int] | None = None, thresh: float = 0.0,
                         exact: bool | str = True, rng=None, patience: int | None = None):
        """Random windows that do not overlap annotations (much).

        Windows lie inside their image whenever they fit; a window larger than
        its image starts at the image's top-left corner.

        Args:
            num: number of windows wanted.
            anchors: ``(K, 2)`` window sizes ``(w, h)`` relative to
                ``min(image height, image width)``; one is drawn per window.
            window_size: absolute ``(w, h)`` of every window, pixels. Exactly one
                of ``anchors`` / ``window_size`` must be given.
            gids: images to draw from (default: all), uniformly.
            thresh: largest allowed overlap with any annotation, as a fraction
                of the window's area. ``0.0``: no annotation may be inside the
                window at all; ``1.0``: no constraint.
            exact: ``True`` raises ``ValueError`` when fewer than ``num`` windows
                were found, ``'warn'`` warns, ``False`` returns what was found.
            rng: seed or ``numpy.random.RandomState``.
            patience: rounds of candidate batches before giving up (default 32).

        Returns:
            ``(neg_gids, neg_boxes)``: ``(M,)`` int array and ``kwimage.Boxes``
            ``(M, 4)`` ltrb with integer corners.

        Example:
            >>> self = FrameIntersectionIndex.demo('shapes8')
            >>> neg_gids, boxes = self.random_negatives(5, window_size=(50, 50), rng=0)
            >>> len(boxes), boxes.width.ravel().tolist()
            (5, [50.0, 50.0, 50.0, 50.0, 50.0])
        """
        import kwarray
        import kwimage
        if (anchors is None) == (window_size is None):
            raise ValueError('give exactly one of anchors or window_size')
        if not (0.0 <= float(thresh) <= 1.0):
            raise ValueError(f'thresh must be in [0, 1], got {thresh!r}')
        num = int(num)
        if num < 0:
            raise ValueError(f'num must not be negative, got {num}')
        rng = kwarray.ensure_rng(rng)
        gids = np.array(sorted(self.image_dims) if gids is None else list(gids), dtype=np.int64)
        for g in gids.tolist():
            self._check_gid(g)
        if window_size is not None:
            ww, wh = (int(v) for v in window_size)
            if ww <= 0 or wh <= 0:
                raise ValueError(f'window_size must be positive (w, h), got {window_size!r}')
        else:
            anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
            if len(anchors) == 0 or not (anchors > 0).all():
                raise ValueError('anchors must be a non-empty (K, 2) array of positive sizes')
        patience = 32 if patience is None else int(patience)
        found_g, found_b = [], []
        n_found = 0
        if len(gids) == 0:
            rounds = 0
        else:
            rounds = patience
        dims = np.array([self.image_dims[g] for g in gids.tolist()], dtype=np.float64).reshape(-1, 2)
        for _ in range(rounds):
            if n_found >= num:
                break
            # a round draws twice what is missing, in pieces of at most NEGATIVE_BATCH
            # (one piece up to 512k missing windows: the draws of a single batch)
            todo = max(64, 2 * (num - n_found))
            while todo > 0 and n_found < num:
                batch = min(todo, NEGATIVE_BATCH)
                todo -= batch
                pick = rng.randint(0, len(gids), size=batch)
                img_h, img_w = dims[pick, 0], dims[pick, 1]
                if window_size is not None:
                    bw = np.full(batch, ww, dtype=np.float64)
                    bh = np.full(batch, wh, dtype=np.float64)
                else:
                    a = anchors[rng.randint(0, len(anchors), size=batch)]
                    z = np.minimum(img_h, img_w)
                    bw = np.maximum(np.round(a[:, 0] * z), 1)
                    bh = np.maximum(np.round(a[:, 1] * z), 1)
                x0 = np.floor(rng.rand(batch) * np.maximum(img_w - bw + 1, 1))
                y0 = np.floor(rng.rand(batch) * np.maximum(img_h - bh + 1, 1))
                cand = np.stack([x0, y0, x0 + bw, y0 + bh], axis=1)
                ok = self._negative_ok(gids[pick], cand, float(thresh))
                found_g.append(gids[pick][ok])
                found_b.append(cand[ok])
                n_found += int(ok.sum())
        neg_gids = np.concatenate(found_g)[:num] if found_g else np.empty(0, dtype=np.int64)
        neg_ltrb = np.concatenate(found_b)[:num] if found_b else np.empty((0, 4))
        if len(neg_gids) < num and exact:
            msg = (f'found only {len(neg_gids)} of {num} negative windows with overlap '
                   f'thresh={thresh} after {rounds} rounds; lower num, raise thresh, '
                   f'use smaller windows or raise patience')
            if exact == 'warn':
                warnings.warn(msg)
            else:
                raise ValueError(msg)
        return neg_gids, kwimage.Boxes(neg_ltrb, 'ltrb')

    def negative_places(self, anchors: np.ndarray | None = None,
                        window_size: Sequence[int] | None = None,
                        gids: Iterable[int] | None = None) -> int:
        """How many distinct windows :meth:`random_negatives` can draw, before the overlap test.

        A ``(w, h)`` window starts at one of ``max(W - w + 1, 1) * max(H - h + 1, 1)``
        whole-pixel places of an image of ``(H, W)`` (only its top-left corner when
        it is larger than the image). With ``anchors`` every distinct size the
        anchors give in an image counts with its places. No request can have
        more distinct negatives than this.

        Args:
            anchors, window_size, gids: as in :meth:`random_negatives`.

        Returns:
            the number of places, summed over ``gids`` (default: every image).

        Example:
            >>> self = FrameIntersectionIndex.from_arrays([], [], np.empty((0, 4)),
            ...                                           {1: (10, 20), 2: (4, 4)})
            >>> self.negative_places(window_size=(5, 5))   # (20-5+1)*(10-5+1) + 1
            97
            >>> self.negative_places(anchors=np.array([[0.5, 0.5], [0.55, 0.45]]), gids=[2])
            9
        """
        if (anchors is None) == (window_size is None):
            raise ValueError('give exactly one of anchors or window_size')
        gids = sorted(self.image_dims) if gids is None else list(gids)
        dims = np.array([self.image_dims[self._check_gid(g)] for g in gids],
                        dtype=np.float64).reshape(-1, 2)
        img_h, img_w = dims[:, 0:1], dims[:, 1:2]
        if window_size is not None:
            ww, wh = (float(v) for v in window_size)
            per = np.maximum(img_w - ww + 1, 1) * np.maximum(img_h - wh + 1, 1)
            return int(per.sum())
        anchors = np.unique(np.asarray(anchors, dtype=np.float64).reshape(-1, 2), axis=0)
        total = 0
        for start in range(0, len(dims), 256):  # (images, anchors) tables, in chunks
            h, w = img_h[start:start + 256], img_w[start:start + 256]
            z = np.minimum(h, w)
            bw = np.maximum(np.round(anchors[None, :, 0] * z), 1)   # as random_negatives
            bh = np.maximum(np.round(anchors[None, :, 1] * z), 1)
            key = bw * (bh.max() + 1) + bh
            order = np.argsort(key, axis=1, kind='stable')
            key, bw, bh = (np.take_along_axis(a, order, 1) for a in (key, bw, bh))
            first = np.ones(key.shape, dtype=bool)
            first[:, 1:] = key[:, 1:] != key[:, :-1]                 # each size once
            per = np.maximum(w - bw + 1, 1) * np.maximum(h - bh + 1, 1)
            total += int(per[first].sum())
        return total

    def _negative_ok(self, cand_gids: np.ndarray, cand: np.ndarray, thresh: float) -> np.ndarray:
        """Which candidate windows ``(M, 4)`` ltrb keep overlap within ``thresh``.

        Candidates are checked in chunks of at most :data:`PAIR_BUDGET`
        (window, box) pairs, so memory does not grow with the request.
        """
        ok = np.ones(len(cand), dtype=bool)
        if not len(self.aids) or thresh >= 1.0 or not len(cand):
            return ok
        if self._max_small_boxes is None:
            self._span(int(self.gids[0]))  # builds _rows_by_gid
            counts = [b - a for a, b in self._rows_by_gid.values() if b - a <= SMALL_IMAGE_BOXES]
            self._max_small_boxes = max(counts, default=1)
        chunk = max(1, PAIR_BUDGET // max(1, self._max_small_boxes))
        if len(cand) > chunk:
            for start in range(0, len(cand), chunk):
                stop = start + chunk
                ok[start:stop] = self._negative_ok(cand_gids[start:stop], cand[start:stop], thresh)
            return ok
        owner, rows = self._candidate_pairs(cand_gids, cand)
        if not len(rows):
            return ok
        win = cand[owner]
        box = self.ltrb[rows]
        iw = np.clip(np.minimum(box[:, 2], win[:, 2]) - np.maximum(box[:, 0], win[:, 0]), 0, None)
        ih = np.clip(np.minimum(box[:, 3], win[:, 3]) - np.maximum(box[:, 1], win[:, 1]), 0, None)
        warea = (win[:, 2] - win[:, 0]) * (win[:, 3] - win[:, 1])
        too_much = (iw * ih) / warea > thresh
        if thresh == 0.0:
            # a point / line annotation inside the window also spoils it
            deg = (box[:, 2] == box[:, 0]) | (box[:, 3] == box[:, 1])
            too_much[deg] |= visible_fractions(box[deg], win[deg]) > 0
        bad = np.zeros(len(cand), dtype=bool)
        bad[owner[too_much]] = True
        return ~bad


    def _candidate_pairs(self, cand_gids: np.ndarray, cand: np.ndarray):
        """``(owner, rows)``: every (window, box) pair of the same image that may overlap.

        Windows in images with few boxes are paired with all of them (numpy
        is faster than a tree query there); the others ask the rtree.
        """
        order = np.argsort(cand_gids, kind='stable')
        uniq, starts = np.unique(cand_gids[order], return_index=True)
        owners, rows, tree_idx = [], [], []
        for gid, idx in zip(uniq.tolist(), np.split(order, starts[1:])):
            img_rows = self._rows_of(gid)
            if len(img_rows) > SMALL_IMAGE_BOXES:
                tree_idx.append(idx)
            elif len(img_rows):
                owners.append(np.repeat(idx, len(img_rows)))
                rows.append(np.tile(img_rows, len(idx)))
        if tree_idx:
            idx = np.concatenate(tree_idx)
            mins, maxs = _box3(cand_gids[idx], cand[idx])
            hit_rows, counts = self._tree.intersection_v(mins, maxs)
            owners.append(np.repeat(idx, counts.astype(np.int64)))
            rows.append(hit_rows.astype(np.int64))
        if not rows:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        return np.concatenate(owners), np.concatenate(rows)


def coco_annot_arrays(dset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(aids, gids, cids, xywh)`` of every annotation that has a ``bbox``, in one pass.

    Annotations without a ``bbox`` key (or with ``bbox: null``) are skipped; a
    bbox that is not 4 numbers raises ``ValueError`` naming the annotation.

    Example:
        >>> import kwcoco
        >>> aids, gids, cids, xywh = coco_annot_arrays(kwcoco.CocoDataset.demo('shapes8'))
        >>> xywh.shape == (len(aids), 4) and len(gids) == len(cids) == len(aids)
        True
    """
    anns = dset.dataset.get('annotations', None) or []
    if len(anns) != len(dset.anns):
        check_unique_ids(dset)
    aids, gids, cids, boxes = [], [], [], []
    for ann in anns:
        bbox = ann.get('bbox', None)
        if bbox is None:
            continue
        aids.append(ann['id'])
        gids.append(ann['image_id'])
        cids.append(ann.get('category_id', -1))
        boxes.append(bbox)
    try:
        xywh = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    except (ValueError, TypeError):
        for aid, bbox in zip(aids, boxes):
            try:
                if np.asarray(bbox, dtype=np.float64).shape != (4,):
                    raise ValueError
            except (ValueError, TypeError):
                raise ValueError(
                    f'annotation {aid} has a malformed bbox {bbox!r}; expected [x, y, w, h]') from None
        raise
    return (np.array(aids, dtype=np.int64), np.array(gids, dtype=np.int64),
            np.array(cids, dtype=np.int64), xywh)


def check_unique_ids(dset, where: str = 'the dataset') -> None:
    """Refuse a dataset whose images, annotations or categories repeat an id.

    kwcoco's index keeps one entry per id (with a warning), while the JSON
    lists still hold every copy: the tables built from the lists and the
    lookups by id would then disagree (a sample reports another annotation's
    box). Renumbering cannot know which copy other files refer to, so the
    dataset is refused.

    Raises:
        ValueError: naming the section and the repeated ids.

    Example:
        >>> import kwcoco
        >>> check_unique_ids(kwcoco.CocoDataset.demo('shapes8'))
    """
    from collections import Counter
    data = dset.dataset
    for key, index in (('images', dset.imgs), ('annotations', dset.anns),
                       ('categories', dset.cats)):
        items = data.get(key) or []
        if len(items) == len(index):  # kwcoco's index holds one entry per id
            continue
        counts = Counter(item.get('id') for item in items)
        repeated = sorted((i for i, n in counts.items() if n > 1), key=repr)
        raise ValueError(f'{where} has {len(repeated)} {key[:-1]} id(s) used more than once: '
                         f'{repeated[:20]}{" ..." if len(repeated) > 20 else ""}; ids must be '
                         f'unique (renumber the {key} and the references to them)')


def coco_box_arrays(dset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(aids, gids, xywh)``: :func:`coco_annot_arrays` without the category ids."""
    aids, gids, _, xywh = coco_annot_arrays(dset)
    return aids, gids, xywh
