"""Leak-free train / val splits of the sampled windows.

Windows that overlap share pixels; if one lands in train and the other in val,
the validation score is inflated. A :class:`Split` assigns whole *units* to
train or val, and a window belongs to a subset only when everything it covers
does:

* ``by='image'``: each image is a unit.
* ``by='video'``: each video is a unit (frames of one video are near
  duplicates); an image without a video is its own unit.
* ``by='block'``: each image is cut into a grid of ``block_dims`` tiles
  (``(height, width)`` pixels, anchored at the image's top-left corner), and each
  tile is a unit. A window, *including its pad*, clipped to the image, belongs
  to a subset only when every tile it touches is of that subset; windows that
  would straddle tiles of both subsets are dropped. So no image pixel read by a
  train window is ever read by a val window. (Padding outside the image is
  not image data and is ignored.)

Exactly ``round(val_fraction * n_units)`` units go to val (at least one of each
subset when there are two units or more). Which ones is decided by a random
number per unit drawn from ``(seed, unit id)``, so the assignment does not
depend on the order of the dataset, the pool seed, or which other images exist
(the cut-off moves a little when units are added).

Subsets are numbered ``0`` (train) and ``1`` (val); ``-1`` marks a window that
straddles both.

Example:
    >>> import kwcoco, numpy as np
    >>> from sampler_core.split import Split
    >>> dset = kwcoco.CocoDataset.demo('shapes8')
    >>> split = Split('block', val_fraction=0.25, seed=0, block_dims=(300, 300))
    >>> split.block_grids(dset)[5].tolist()   # 2 x 2 blocks of image 5; 1 is val
    [[0, 1], [0, 1]]
    >>> train = split.select(dset, 'train', pad=(8, 8))
    >>> val = split.select(dset, 'val', pad=(8, 8))
    >>> gids = np.array([5, 5, 5])
    >>> ltrb = np.array([[0, 0, 64, 64], [250, 250, 350, 350], [400, 400, 464, 464]])
    >>> train.window_subsets(gids, ltrb).tolist()   # train, straddles, val
    [0, -1, 1]
    >>> train.keep(gids, ltrb).tolist(), val.keep(gids, ltrb).tolist()
    ([True, False, False], [False, False, True])
"""
from __future__ import annotations

import warnings
import zlib
from typing import Any, Sequence

import numpy as np

from sampler_core.window import coerce_pad, pad_boxes

#: names of the two subsets, by number
SUBSETS = ('train', 'val')
SPLIT_BY = ('image', 'video', 'block')


def _unit_uniform(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by ``(seed, key)`` (independent of anything else)."""
    return float(np.random.default_rng([int(seed), zlib.crc32(key.encode('utf8'))]).random())


def _n_val(n_units: int, val_fraction: float) -> int:
    n_val = int(round(val_fraction * n_units))
    if n_units >= 2 and 0 < val_fraction < 1:
        n_val = min(max(n_val, 1), n_units - 1)
    return n_val


def subset_index(subset: str | int) -> int:
    """``'train'`` -> 0, ``'val'`` -> 1.

    Raises:
        ValueError: any other name.
    """
    if subset in (0, 1):
        return int(subset)
    if subset not in SUBSETS:
        raise ValueError(f"subset must be 'train' or 'val', got {subset!r}")
    return SUBSETS.index(subset)


class Split:
    """Assignment of images, videos or spatial blocks to train / val.

    Args:
        by: ``'image'``, ``'video'`` or ``'block'``.
        val_fraction: fraction of the units assigned to val, in ``[0, 1]``.
        seed: seed of the assignment.
        block_dims: ``(height, width)`` of a block in pixels (``by='block'``).

    Raises:
        ValueError: an unknown ``by``, a fraction outside ``[0, 1]``, a
            non-positive block.
    """

    def __init__(self, by: str = 'image', val_fraction: float = 0.2, seed: int = 0,
                 block_dims: Sequence[int] = (1024, 1024)):
        if by not in SPLIT_BY:
            raise ValueError(f'split_by must be one of {list(SPLIT_BY)}, got {by!r}')
        val_fraction = float(val_fraction)
        if not (0.0 <= val_fraction <= 1.0):
            raise ValueError(f'val_fraction must be in [0, 1], got {val_fraction!r}')
        bh, bw = (int(v) for v in block_dims)
        if bh <= 0 or bw <= 0:
            raise ValueError(f'split block_dims must be positive, got {block_dims!r}')
        self.by = by
        self.val_fraction = val_fraction
        self.seed = int(seed)
        self.block_dims = (bh, bw)

    def __repr__(self) -> str:
        extra = f', block_dims={self.block_dims}' if self.by == 'block' else ''
        return (f'Split(by={self.by!r}, val_fraction={self.val_fraction}, '
                f'seed={self.seed}{extra})')

    @classmethod
    def from_config(cls, config) -> 'Split | None':
        """The split of a :class:`~sampler_core.config.SamplingConfig` (``None``: no split)."""
        if config.split_by == 'none':
            return None
        return cls(config.split_by, config.val_fraction, config.split_seed,
                   tuple(config.split_block))

    # ------------------------------------------------------------ image / video
    def image_subsets(self, dset) -> dict[int, int]:
        """``{gid: 0 | 1}`` for ``by='image'`` / ``'video'`` (train 0, val 1).

        Example:
            >>> import kwcoco
            >>> dset = kwcoco.CocoDataset.demo('vidshapes4')
            >>> subsets = Split('video', 0.5).image_subsets(dset)
            >>> by_video = {}
            >>> for gid, s in subsets.items():
            ...     by_video.setdefault(dset.imgs[gid]['video_id'], set()).add(s)
            >>> all(len(v) == 1 for v in by_video.values()), sorted(set(subsets.values()))
            (True, [0, 1])
        """
        if self.by == 'block':
            raise ValueError('a block split assigns blocks, not images')
        unit_of = {}
        for gid, img in dset.imgs.items():
            vid = img.get('video_id', None) if self.by == 'video' else None
            unit_of[gid] = f'video:{vid}' if vid is not None else f'image:{gid}'
        units = sorted(set(unit_of.values()))
        draws = np.array([_unit_uniform(self.seed, u) for u in units])
        order = np.lexsort((np.arange(len(units)), draws))
        val_units = {units[i] for i in order[:_n_val(len(units), self.val_fraction)].tolist()}
        return {gid: int(unit in val_units) for gid, unit in unit_of.items()}

    # ------------------------------------------------------------ blocks
    def block_grids(self, dset) -> dict[int, np.ndarray]:
        """``{gid: (n_rows, n_cols) int8}`` block subsets (``by='block'``).

        Block ``(r, c)`` of image ``gid`` covers rows ``[r * bh, (r + 1) * bh)`` and
        columns ``[c * bw, (c + 1) * bw)``.
        """
        if self.by != 'block':
            raise ValueError(f'block grids exist only for a block split, not by={self.by!r}')
        bh, bw = self.block_dims
        gids, draws, shapes = [], [], []
        for gid, img in dset.imgs.items():
            h, w = img.get('height'), img.get('width')
            if h is None or w is None:
                raise ValueError(f'image {gid} has no width/height; a block split needs them')
            shape = (max(1, -(-int(h) // bh)), max(1, -(-int(w) // bw)))
            rng = np.random.default_rng([self.seed, zlib.crc32(f'image:{gid}'.encode())])
            gids.append(gid)
            shapes.append(shape)
            draws.append(rng.random(shape).ravel())
        flat = np.concatenate(draws) if draws else np.empty(0)
        order = np.lexsort((np.arange(len(flat)), flat))
        is_val = np.zeros(len(flat), dtype=np.int8)
        is_val[order[:_n_val(len(flat), self.val_fraction)]] = 1
        out, start = {}, 0
        for gid, shape in zip(gids, shapes):
            n = shape[0] * shape[1]
            out[gid] = is_val[start:start + n].reshape(shape)
            start += n
        return out

    # ------------------------------------------------------------ windows
    def select(self, dset, subset: str, pad: Any = (0, 0)) -> 'SubsetSelector':
        """The windows of one subset of ``dset`` (see :class:`SubsetSelector`).

        Args:
            dset (kwcoco.CocoDataset): images need ``width`` / ``height``.
            subset: ``'train'`` or ``'val'``.
            pad: ``(height, width)`` context the sampler adds around windows.
        """
        return SubsetSelector(self, dset, subset, pad)


class SubsetSelector:
    """Decides which windows of a dataset belong to one subset of a :class:`Split`.

    Attributes:
        split (Split): the split.
        subset (int): 0 (train) or 1 (val).
        pad: ``((top, bottom), (left, right))`` pixels added around each window.
        gids (list): images that can hold windows of this subset.
    """

    def __init__(self, split: Split, dset, subset: str, pad: Any = (0, 0)):
        self.split = split
        self.subset = subset_index(subset)
        self.pad = coerce_pad(pad)
        self.image_dims = {gid: (int(img['height']), int(img['width']))
                           for gid, img in dset.imgs.items()
                           if img.get('height') is not None and img.get('width') is not None}
        if split.by == 'block':
            self._grids = split.block_grids(dset)
            self._sums = {g: _prefix_sums(a) for g, a in self._grids.items()}
            self.gids = sorted(g for g, a in self._grids.items() if (a == self.subset).any())
            self._image_subset = None
        else:
            self._image_subset = split.image_subsets(dset)
            self.gids = sorted(g for g, s in self._image_subset.items() if s == self.subset)

    @property
    def name(self) -> str:
        return SUBSETS[self.subset]

    def __repr__(self) -> str:
        return f'<SubsetSelector({self.name!r} of {self.split!r}, {len(self.gids)} images)>'

    def window_subsets(self, gids: Sequence[int], ltrb: np.ndarray) -> np.ndarray:
        """Subset of each window: 0 train, 1 val, -1 straddles both (or lies outside).

        Args:
            gids: ``(M,)`` image ids.
            ltrb: ``(M, 4)`` unpadded windows, half-open, pixels in image space;
                the pad is added here.
        """
        gids = np.asarray(gids, dtype=np.int64).reshape(-1)
        ltrb = np.asarray(ltrb, dtype=np.float64).reshape(-1, 4)
        out = np.full(len(gids), -1, dtype=np.int8)
        if self._image_subset is not None:
            lut = self._image_subset
            return np.array([lut.get(g, -1) for g in gids.tolist()], dtype=np.int8)
        padded = pad_boxes(ltrb, self.pad)
        bh, bw = self.split.block_dims
        for gid in np.unique(gids).tolist():
            rows = np.where(gids == gid)[0]
            dims = self.image_dims.get(gid)
            if dims is None:
                continue
            h, w = dims
            x0 = np.clip(padded[rows, 0], 0, w)
            y0 = np.clip(padded[rows, 1], 0, h)
            x1 = np.clip(padded[rows, 2], 0, w)
            y1 = np.clip(padded[rows, 3], 0, h)
            inside = (x1 > x0) & (y1 > y0)
            c0 = (x0 // bw).astype(np.int64)
            r0 = (y0 // bh).astype(np.int64)
            c1 = (np.ceil(x1 / bw) - 1).astype(np.int64)
            r1 = (np.ceil(y1 / bh) - 1).astype(np.int64)
            grid = self._grids[gid]
            c0, c1 = np.clip(c0, 0, grid.shape[1] - 1), np.clip(c1, 0, grid.shape[1] - 1)
            r0, r1 = np.clip(r0, 0, grid.shape[0] - 1), np.clip(r1, 0, grid.shape[0] - 1)
            sums = self._sums[gid]
            n_val = (sums[r1 + 1, c1 + 1] - sums[r0, c1 + 1] - sums[r1 + 1, c0] + sums[r0, c0])
            n_all = (r1 - r0 + 1) * (c1 - c0 + 1)
            sub = np.where(n_val == 0, 0, np.where(n_val == n_all, 1, -1)).astype(np.int8)
            sub[~inside] = -1
            out[rows] = sub
        return out

    def check_window_dims(self, window_dims: Any) -> None:
        """Refuse a block split whose blocks cannot hold one padded window.

        A window larger (with its pad) than a block always touches two blocks
        or more along that axis, and is kept only when all of them happen to be
        of this subset: with ``split_block: [1, 1]`` no window ever is, and the
        pools come back empty. So a block split needs blocks at least as large
        as the padded window. Windows sized by their boxes (``None`` /
        ``'square'``) are checked one by one when they are kept or dropped.

        Args:
            window_dims: ``(height, width)`` of the (unpadded) windows, or
                ``None`` / ``'square'``.

        Raises:
            ValueError: naming split_block, the window and its pad.

        Example:
            >>> import kwcoco
            >>> dset = kwcoco.CocoDataset.demo('shapes8')
            >>> sel = Split('block', block_dims=(1, 1)).select(dset, 'train', pad=(0, 0))
            >>> sel.check_window_dims((64, 64))
            Traceback (most recent call last):
            ...
            ValueError: split_block (1, 1) is smaller than the padded window (64, 64) ...
        """
        if self.split.by != 'block' or window_dims is None or isinstance(window_dims, str):
            return
        from sampler_core.target import coerce_window_dims
        h, w = coerce_window_dims(window_dims)
        (pt, pb), (pl, pr) = self.pad
        need = (h + pt + pb, w + pl + pr)
        bh, bw = self.split.block_dims
        if need[0] > bh or need[1] > bw:
            raise ValueError(
                f'split_block {(bh, bw)} is smaller than the padded window {need} '
                f'(window_dims {(h, w)} plus pad {self.pad}): every window straddles blocks and is '
                f'kept only where all of them fall in one subset (much smaller blocks: never, '
                f'and the pools are empty); use a split_block of at least {need}')

    def keep(self, gids: Sequence[int], ltrb: np.ndarray) -> np.ndarray:
        """``(M,)`` bool: which (unpadded, ltrb) windows belong to this subset."""
        return self.window_subsets(gids, ltrb) == self.subset

    def random_negatives(self, index, num: int, thresh: float = 0.0, rng=None,
                         patience: int = 16, **kw):
        """Random negative windows of this subset (see ``FrameIntersectionIndex.random_negatives``).

        Returns:
            ``(gids, boxes)`` as ``random_negatives``; warns when fewer than
            ``num`` were found.
        """
        import kwarray
        import kwimage
        rng = kwarray.ensure_rng(rng)
        num = int(num)
        if num <= 0 or not self.gids:
            if num > 0:
                warnings.warn(f'the {self.name!r} subset has no images; no negatives drawn')
            return np.empty(0, dtype=np.int64), kwimage.Boxes(np.empty((0, 4)), 'ltrb')
        if self._image_subset is not None:
            return index.random_negatives(num, gids=self.gids, thresh=thresh, exact='warn',
                                          rng=rng, **kw)
        found_g, found_b, n_found = [], [], 0
        for _ in range(patience):
            if n_found >= num:
                break
            want = max(64, 2 * (num - n_found))
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                gids, boxes = index.random_negatives(want, gids=self.gids, thresh=thresh,
                                                     exact=False, rng=rng, **kw)
            ltrb = boxes.to_ltrb().data.reshape(-1, 4)
            ok = self.keep(gids, ltrb)
            found_g.append(gids[ok])
            found_b.append(ltrb[ok])
            n_found += int(ok.sum())
        gids = np.concatenate(found_g)[:num].astype(np.int64)
        ltrb = np.concatenate(found_b)[:num]
        if len(gids) < num:
            warnings.warn(f'found only {len(gids)} of {num} negative windows inside '
                          f'{self.name!r} blocks; use smaller windows or larger split blocks')
        return gids, kwimage.Boxes(ltrb, 'ltrb')


def _prefix_sums(grid: np.ndarray) -> np.ndarray:
    """``(R + 1, C + 1)`` summed-area table of a block grid."""
    out = np.zeros((grid.shape[0] + 1, grid.shape[1] + 1), dtype=np.int64)
    out[1:, 1:] = np.cumsum(np.cumsum(grid.astype(np.int64), axis=0), axis=1)
    return out
