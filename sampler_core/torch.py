"""PyTorch training: a map-style dataset of sampled windows (optional extra ``[torch]``).

``pip install sampler-explorer[torch]``. This module imports ``torch`` only when
a dataset item is built, so ``import sampler_core`` never imports torch.

:class:`SampleDataset` wraps a sampler (or builds one from a
:class:`~sampler_core.config.SamplingConfig`): item ``i`` is the window
``pool[order[i]]`` where ``order`` is a permutation drawn from ``seed + epoch``
(like ``torch.utils.data.DistributedSampler``), so

* item ``i`` of epoch ``e`` is the same in every run, in the main process and in
  any number of DataLoader workers, started with ``fork`` or ``spawn``;
* :meth:`SampleDataset.set_epoch` reshuffles. Call it before iterating the
  loader. DataLoader workers work on a copy of the dataset made when they start,
  so with ``persistent_workers=True`` (workers kept across epochs) the epoch
  must travel with the indices: pass ``sampler=dataset.epoch_sampler()`` to the
  DataLoader. It yields ``(epoch, index)`` pairs, read from the dataset's epoch
  at ``iter(loader)``, and ``dataset[(epoch, index)]`` is item ``index`` of that
  epoch. Plain indices in a persistent worker keep the epoch the worker started
  with; the worker warns when it sees an index a second time.

The config's ``epoch_length`` sets how many items an epoch has (default: one
per pool window). The epoch is the start of an endless stream of permutations of
the pool drawn from ``seed + epoch`` (:func:`epoch_order`): fewer items than the
pools take a different part of them each epoch; more repeat windows, every
window ``floor`` or ``ceil(epoch_length / pool size)`` times.

Many GPUs: ``SampleDataset(..., rank=r, world_size=w)`` (default: from
``torch.distributed`` when it is initialised) serves rank ``r`` the epoch's
positions ``r, r + w, r + 2w, ...`` (like ``DistributedSampler``): shards are
disjoint, all ranks together cover the epoch, every rank has
``ceil(length / w)`` items (the same number, so no rank waits on another; when
``w`` does not divide the length, the last positions continue the stream and
repeat windows), the same on every run.

An item is a dict of tensors (shapes for a window of ``H x W`` pixels including
the pad, ``C`` channels and ``N`` annotations)::

    image   (C, H, W) float32 (uint8 pixels scaled to [0, 1]) or uint8;
            (T, C, H, W) with the config's time_steps = T (video datasets)
    boxes   (N, 4) float32, ltrb, pixels of the window, clipped to it
    frames  (N,) int64 time step of each box (only with time_steps)
    labels  (N,) int64 category ids of the dataset
    aids    (N,) int64 annotation ids
    masks   (N, H, W) uint8, only with masks=True (0 where no segmentation)
    target  dict of int64 tensors: index, pool_index, epoch, gid, aid (-1 for a
            negative), category_id, window ((4,) ltrb of the padded window, image
            pixels; video pixels with time_steps), frame_gids ((T,), -1 for a padding
            frame; only with time_steps)

:func:`collate` batches items with different numbers of boxes: images are
stacked (a list when sizes differ), per-box fields become lists (views into one
packed tensor per field), target fields are stacked.

The sampler is pickled with the dataset for ``spawn`` workers; its rtree and
memory maps are not pickled but reopened on first use in each worker. Forked
workers drop the memory maps they inherited.

Example:
    >>> # xdoctest: +REQUIRES(module:torch)
    >>> import torch
    >>> from sampler_core import SamplingConfig
    >>> from sampler_core.torch import SampleDataset, collate
    >>> cfg = SamplingConfig(dataset='shapes8', window_dims=(64, 64), n_pos=6, n_neg=2,
    ...                      backend=None, split_by='image', val_fraction=0.25)
    >>> train = SampleDataset(cfg, mode='train')
    >>> item = train[0]
    >>> item['image'].shape, item['image'].dtype, item['boxes'].shape[1]
    (torch.Size([3, 64, 64]), torch.float32, 4)
    >>> loader = torch.utils.data.DataLoader(train, batch_size=4, collate_fn=collate)
    >>> batch = next(iter(loader))
    >>> batch['image'].shape, len(batch['boxes']), batch['target']['window'].shape
    (torch.Size([4, 3, 64, 64]), 4, torch.Size([4, 4]))
    >>> # persistent workers: the epoch travels with each index
    >>> loader = torch.utils.data.DataLoader(train, batch_size=4, collate_fn=collate,
    ...                                      sampler=train.epoch_sampler())
    >>> train.set_epoch(1)
    >>> next(iter(loader))['target']['epoch'].tolist()
    [1, 1, 1, 1]
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Iterator

import numpy as np

#: image dtypes an item can have
IMAGE_DTYPES = ('float32', 'uint8')


class SampleDataset:
    """Map-style dataset: item ``i`` is pool window ``order[i]`` as a dict of tensors.

    Args:
        config_or_sampler: a :class:`~sampler_core.config.SamplingConfig`, its
            dict, the path of a YAML / JSON config, or a sampler whose pools are
            already chosen (a ``sampler_core.CocoSampler``, or an
            ``ndsampler.CocoSampler``).
        mode: ``'train'`` or ``'val'``: the side of the config's split
            (``split_by``); also the default of ``shuffle``.
        shuffle: permute the items per epoch (default: ``mode == 'train'``).
        seed: seed of the permutation (default: the config's ``seed``, else 0).
        image_dtype: ``'float32'`` (uint8 pixels divided by 255, other dtypes
            cast unchanged) or ``'uint8'`` (uint8 data only).
        masks: add ``masks`` rasterised from the segmentations.
        target: extra target keys for every window (e.g. ``window_dims``, ``pad``
            for a sampler built without a config).
        visible_thresh: leave out annotations less visible than this (default:
            the config's, else 0).
        allow_hash_mismatch: see :meth:`sampler_core.CocoSampler.from_config`.
        epoch_length: items per epoch (default: for ``mode='train'`` the config's
            ``epoch_length``, else one per pool window: val sees every window once);
            see :func:`epoch_order`.
        rank: this process' rank among ``world_size`` (default: ``torch.distributed``'s
            when it is initialised, else 0).
        world_size: number of ranks sharing the epoch (default: ``torch.distributed``'s
            when it is initialised, else 1).
        **kwargs: passed to ``CocoSampler.from_config`` (e.g. ``workdir``).

    Raises:
        ValueError: an unknown mode or image dtype, a sampler built for the
            other subset, a rank outside ``[0, world_size)``.

    .. versionadded:: config version 2
        ``epoch_length``, ``rank``, ``world_size``.
    """

    def __init__(self, config_or_sampler: Any, mode: str = 'train', *, shuffle: bool | None = None,
                 seed: int | None = None, image_dtype: str = 'float32', masks: bool = False,
                 target: dict | None = None, visible_thresh: float | None = None,
                 allow_hash_mismatch: bool = False, epoch_length: int | None = None,
                 rank: int | None = None, world_size: int | None = None, **kwargs):
        if mode not in ('train', 'val'):
            raise ValueError(f"mode must be 'train' or 'val', got {mode!r}")
        if image_dtype not in IMAGE_DTYPES:
            raise ValueError(f'image_dtype must be one of {list(IMAGE_DTYPES)}, got {image_dtype!r}')
        if hasattr(config_or_sampler, 'load_item'):
            sampler = config_or_sampler
            built_for = getattr(sampler, 'subset', None)
            if built_for is not None and built_for != mode:
                raise ValueError(f'the sampler holds the {built_for!r} pools, not {mode!r}; '
                                 f"build it with CocoSampler.from_config(config, subset={mode!r})")
        else:
            from sampler_core.sampler import CocoSampler
            sampler = CocoSampler.from_config(config_or_sampler, subset=mode,
                                              allow_hash_mismatch=allow_hash_mismatch, **kwargs)
        config = getattr(sampler, 'config', None)
        self.sampler = sampler
        self.mode = mode
        self.shuffle = (mode == 'train') if shuffle is None else bool(shuffle)
        if seed is None:
            seed = getattr(config, 'seed', 0) if config is not None else 0
        self.seed = int(seed)
        self.image_dtype = image_dtype
        self.masks = bool(masks)
        self.target = dict(target or {})
        self.visible_thresh = visible_thresh
        if epoch_length is None and config is not None and mode == 'train':
            epoch_length = getattr(config, 'epoch_length', None)   # a training epoch
        self.epoch_length = _check_count(epoch_length, 'epoch_length', low=1)
        self.rank, self.world_size = _coerce_rank(rank, world_size)
        self.epoch = 0
        self._order = None  # (epoch, permutation) of the last epoch used
        self._pid = os.getpid()
        self._served = None  # plain indices served in this DataLoader worker

    def __repr__(self) -> str:
        ranks = f', rank={self.rank}/{self.world_size}' if self.world_size > 1 else ''
        return (f'<SampleDataset(mode={self.mode!r}, n={len(self)}, epoch={self.epoch}, '
                f'shuffle={self.shuffle}{ranks})>')

    def __len__(self) -> int:
        """Items of this rank in an epoch: ``ceil(epoch length / world_size)``."""
        return -(-self.total_length // self.world_size)

    @property
    def n_pool(self) -> int:
        """Number of pool windows (positives + negatives) items are drawn from."""
        return int(self.sampler.n_samples)

    @property
    def total_length(self) -> int:
        """Items of one epoch over all ranks (``epoch_length``, else the pool size)."""
        n = self.n_pool
        if n == 0:
            return 0
        return n if self.epoch_length is None else self.epoch_length

    @property
    def classes(self):
        """The sampler's categories (``kwcoco.CategoryTree``); labels are their ids."""
        return self.sampler.classes

    # ------------------------------------------------------------ epochs
    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``seed + epoch`` (call before iterating the loader).

        With ``persistent_workers=True`` give the DataLoader ``sampler=self.epoch_sampler()``,
        or the workers keep the epoch they started with.
        """
        self.epoch = _check_epoch(epoch)

    def epoch_sampler(self) -> 'EpochSampler':
        """A DataLoader ``sampler`` whose indices carry the epoch: ``(epoch, index)`` pairs.

        The epoch is the dataset's at ``iter(loader)``, so :meth:`set_epoch` reaches
        workers that outlive an epoch (``persistent_workers=True``). The order of
        the items is the dataset's (shuffled per epoch when ``shuffle``); do not pass
        ``shuffle`` to the DataLoader.

        Example:
            >>> # xdoctest: +REQUIRES(module:torch)
            >>> from sampler_core import SamplingConfig
            >>> ds = SampleDataset(SamplingConfig(dataset='shapes8', window_dims=(32, 32),
            ...                                   n_pos=2, n_neg=1, backend=None))
            >>> ds.set_epoch(3)
            >>> list(ds.epoch_sampler())
            [(3, 0), (3, 1), (3, 2)]
        """
        return EpochSampler(self)

    def order(self, epoch: int | None = None) -> np.ndarray:
        """``(len(self),)`` pool index of every item of this rank in ``epoch``
        (default: the current one); see :func:`epoch_order`."""
        epoch = self.epoch if epoch is None else _check_epoch(epoch)
        key = (epoch, self.n_pool)
        if self._order is None or self._order[0] != key:
            total = len(self) * self.world_size
            order = epoch_order(self.n_pool, total, epoch, self.seed, self.shuffle)
            self._order = (key, order[self.rank::self.world_size])
        return self._order[1]

    # ------------------------------------------------------------ pickling / fork
    def __getstate__(self):
        state = self.__dict__.copy()
        state['_order'] = None
        state['_pid'] = None
        state['_served'] = None
        return state

    def _after_fork(self) -> None:
        """In a new process: drop memory maps and locks inherited from the parent."""
        frames = getattr(self.sampler, 'frames', None)
        from sampler_core.frames import Frames
        if isinstance(frames, Frames):
            frames.__setstate__(frames.__getstate__())
        self._pid = os.getpid()
        self._served = None

    # ------------------------------------------------------------ items
    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        """Item ``index`` of the current epoch, or of ``epoch`` for an ``(epoch, index)`` pair."""
        import torch
        if self._pid != os.getpid():
            self._after_fork()
        if isinstance(index, (tuple, list)):
            if len(index) != 2:
                raise ValueError(f'expected an index or an (epoch, index) pair, got {index!r}')
            epoch, index = _check_epoch(index[0]), int(index[1])
        else:
            epoch, index = self.epoch, int(index)
            if self.shuffle:
                self._note_plain_index(index, torch)
        n = len(self)
        if not (-n <= index < n):
            raise IndexError(f'index {index} outside the dataset of {n} items')
        index %= n
        pool_index = int(self.order(epoch)[index])
        kinds = ['boxes', 'segmentation'] if self.masks else ['boxes']
        kw = {}
        if self.visible_thresh is not None:
            kw['visible_thresh'] = self.visible_thresh
        if getattr(getattr(self.sampler, 'config', None), 'item_target', None) is not None:
            kw['epoch'] = epoch   # the config's per-item draws (scale_range, ...)
        sample = self.sampler.load_item(pool_index, with_annots=kinds,
                                        target=dict(self.target) if self.target else None, **kw)
        return self._to_tensors(sample, index, pool_index, epoch, torch)

    def _note_plain_index(self, index: int, torch) -> None:
        """In a DataLoader worker: warn once when a plain index comes a second time.

        A worker that sees an index again outlived an epoch (``persistent_workers``)
        and still uses the epoch it started with, whatever ``set_epoch`` said since.
        """
        if torch.utils.data.get_worker_info() is None:
            return
        served = self._served
        if served is False:  # warned already
            return
        if served is None:
            served = self._served = set()
        if index in served:
            warnings.warn(
                f'SampleDataset: DataLoader worker {os.getpid()} got item {index} a second '
                f'time while still at epoch {self.epoch}: with persistent_workers=True the '
                f'workers keep the epoch they started with and set_epoch does not reach '
                f'them; pass sampler=dataset.epoch_sampler() to the DataLoader so that the epoch '
                f'travels with each index', stacklevel=3)
            self._served = False
            return
        served.add(index)

    def _to_tensors(self, sample: dict, index: int, pool_index: int, epoch: int, torch) -> dict:
        im = np.asarray(sample['im'])
        if im.ndim == 2:
            im = im[:, :, None]
        video = im.ndim == 4      # (T, H, W, C): time_steps frames
        h, w = im.shape[-3:-1]
        chw = np.ascontiguousarray(np.moveaxis(im, -1, -3))
        if self.image_dtype == 'uint8':
            if chw.dtype != np.uint8:
                raise ValueError(f'image_dtype="uint8" but the pixels are {chw.dtype}; '
                                 f'use image_dtype="float32"')
            image = torch.from_numpy(chw)
        elif chw.dtype == np.uint8:
            image = torch.from_numpy(chw).to(torch.float32).div_(255.0)
        else:
            image = torch.from_numpy(chw.astype(np.float32, copy=False))

        annots = sample.get('annots', {})
        aids = np.asarray(annots.get('aids', np.empty(0)), dtype=np.int64).reshape(-1)
        cids = np.asarray(annots.get('cids', np.empty(0)), dtype=np.int64).reshape(-1)
        rel_boxes = annots.get('rel_boxes', None)
        if rel_boxes is None or len(aids) == 0:
            ltrb = np.empty((0, 4), dtype=np.float32)
        else:
            ltrb = np.asarray(rel_boxes.to_ltrb().data, dtype=np.float64).reshape(-1, 4).copy()
            ltrb[:, 0::2] = ltrb[:, 0::2].clip(0, w)
            ltrb[:, 1::2] = ltrb[:, 1::2].clip(0, h)
            ltrb = ltrb.astype(np.float32)
        item = {
            'image': image,
            'boxes': torch.from_numpy(ltrb),
            'labels': torch.from_numpy(cids),
            'aids': torch.from_numpy(aids),
        }
        if video:   # the time step of each box
            frames = np.asarray(annots.get('rel_frame_index', np.zeros(len(aids))),
                                dtype=np.int64).reshape(-1)
            item['frames'] = torch.from_numpy(frames[:len(aids)].copy())
        if self.masks:
            item['masks'] = torch.from_numpy(_rasterize(annots.get('rel_ssegs', None),
                                                        len(aids), (h, w)))
        tr = sample['target']
        x0, y0, x1, y1 = (int(round(v)) for v in
                          np.asarray(sample['params']['sample_tlbr'].data).reshape(-1)[:4])
        aid = tr.get('aid', -1)
        cid = tr.get('category_id', None)
        item['target'] = {
            'index': torch.tensor(index, dtype=torch.int64),
            'pool_index': torch.tensor(pool_index, dtype=torch.int64),
            'epoch': torch.tensor(epoch, dtype=torch.int64),
            'gid': torch.tensor(int(tr['gid']), dtype=torch.int64),
            'aid': torch.tensor(-1 if aid is None else int(aid), dtype=torch.int64),
            'category_id': torch.tensor(-1 if cid is None else int(cid), dtype=torch.int64),
            'window': torch.tensor([x0, y0, x1, y1], dtype=torch.int64),
        }
        if video:   # the image of each time step, -1 for a padding frame
            gids = [-1 if g is None else int(g) for g in sample['params']['frame_gids']]
            item['target']['frame_gids'] = torch.tensor(gids, dtype=torch.int64)
        return item


def epoch_order(n: int, length: int, epoch: int, seed: int, shuffle: bool = True) -> np.ndarray:
    """Pool index of each of the ``length`` items of ``epoch``, over all ranks.

    The epoch is the start of an endless stream: with ``shuffle`` the
    permutations of ``range(n)`` drawn one after the other from
    ``numpy.random.RandomState(seed + epoch)``, else ``0, 1, ..., n - 1, 0, 1, ...``.
    So ``length <= n`` takes ``length`` different windows, and a longer epoch
    holds every window ``floor`` or ``ceil(length / n)`` times (drawn with
    replacement, but no window twice before all were drawn once).

    Args:
        n: number of pool windows.
        length: items of the epoch.
        epoch: the epoch (>= 0).
        seed: seed of the permutations.
        shuffle: permute (else pool order).

    Returns:
        ``(length,)`` int64 pool indices.

    Example:
        >>> import numpy as np
        >>> epoch_order(3, 7, epoch=0, seed=0, shuffle=False).tolist()
        [0, 1, 2, 0, 1, 2, 0]
        >>> rng = np.random.RandomState(5 + 2)
        >>> first = rng.permutation(4).tolist(); second = rng.permutation(4).tolist()
        >>> epoch_order(4, 6, epoch=2, seed=5).tolist() == first + second[:2]
        True
    """
    n, length = int(n), int(length)
    if length <= 0:
        return np.zeros(0, dtype=np.int64)
    if n <= 0:
        raise ValueError(f'cannot draw {length} items from an empty pool')
    reps = -(-length // n)
    if shuffle:
        rng = np.random.RandomState((int(seed) + int(epoch)) % (2 ** 32))
        order = np.concatenate([rng.permutation(n) for _ in range(reps)])
    else:
        order = np.tile(np.arange(n), reps)
    return order[:length].astype(np.int64)


def _check_count(value, name: str, low: int = 0) -> int | None:
    """``None`` or an int >= ``low`` (bools refused), naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f'{name} must be an integer or None, got {value!r}')
    if value < low:
        raise ValueError(f'{name} must be >= {low}, got {value}')
    return int(value)


def _coerce_rank(rank, world_size) -> tuple[int, int]:
    """``(rank, world_size)``: given, else ``torch.distributed``'s when initialised,
    else ``(0, 1)``. torch is not imported for it: if it was never imported, no
    process group can be initialised."""
    import sys
    if rank is None or world_size is None:
        dist = getattr(sys.modules.get('torch'), 'distributed', None)
        initialised = dist is not None and dist.is_available() and dist.is_initialized()
        if rank is None:
            rank = dist.get_rank() if initialised else 0
        if world_size is None:
            world_size = dist.get_world_size() if initialised else 1
    world_size = _check_count(world_size, 'world_size', low=1)
    rank = _check_count(rank, 'rank', low=0)
    if rank >= world_size:
        raise ValueError(f'rank must be in [0, world_size={world_size}), got {rank}')
    return rank, world_size


def _check_epoch(epoch) -> int:
    epoch = int(epoch)
    if epoch < 0:
        raise ValueError(f'epoch must not be negative, got {epoch}')
    return epoch


class EpochSampler:
    """DataLoader sampler of a :class:`SampleDataset`: ``(epoch, index)`` for every item.

    Made by :meth:`SampleDataset.epoch_sampler`. Each ``iter()`` reads the dataset's
    epoch once, so every index of a pass carries the same epoch, in the main
    process, to workers of any kind (forked, spawned, persistent).

    Example:
        >>> # xdoctest: +REQUIRES(module:torch)
        >>> from sampler_core import SamplingConfig
        >>> ds = SampleDataset(SamplingConfig(dataset='shapes8', window_dims=(32, 32),
        ...                                   n_pos=2, n_neg=0, backend=None))
        >>> passes = ds.epoch_sampler()
        >>> first = iter(passes)
        >>> ds.set_epoch(5)
        >>> list(first), list(passes)
        ([(0, 0), (0, 1)], [(5, 0), (5, 1)])
    """

    def __init__(self, dataset: SampleDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.dataset.epoch
        return iter([(epoch, i) for i in range(len(self.dataset))])


def _rasterize(ssegs, n: int, dims: tuple[int, int]) -> np.ndarray:
    """``(n, H, W)`` uint8 masks of window-relative segmentations (zeros where None)."""
    out = np.zeros((n,) + tuple(dims), dtype=np.uint8)
    if ssegs is None:
        return out
    data = getattr(ssegs, 'data', ssegs)
    for i, sseg in enumerate(list(data)[:n]):
        if sseg is None:
            continue
        try:
            mask = sseg.to_mask(dims=dims).data
        except Exception:  # pragma: no cover - degenerate geometry
            continue
        out[i] = (np.asarray(mask)[:dims[0], :dims[1]] > 0)
    return out


def collate(batch: list[dict]) -> dict:
    """Batch :class:`SampleDataset` items with different numbers of boxes.

    Per-box fields are lists of views into one packed tensor per field, and
    target fields are columns of one packed tensor: a batch built in a
    DataLoader worker then crosses to the main process in a handful of
    shared-memory blocks instead of one per item and field (about 1.5x the
    throughput with workers).

    Returns:
        dict: ``image`` ``(B, C, H, W)`` (a list when window sizes differ);
        ``boxes``, ``labels``, ``aids`` (and ``masks``): lists of ``B`` tensors;
        ``target``: dict of ``(B,)`` tensors (``window`` is ``(B, 4)``).

    Example:
        >>> # xdoctest: +REQUIRES(module:torch)
        >>> import torch
        >>> items = [{'image': torch.zeros(3, 4, 4), 'boxes': torch.zeros(k, 4),
        ...           'labels': torch.zeros(k, dtype=torch.int64), 'aids': torch.zeros(k),
        ...           'target': {'gid': torch.tensor(1), 'window': torch.arange(4)}}
        ...          for k in (0, 2)]
        >>> batch = collate(items)
        >>> batch['image'].shape, [b.shape[0] for b in batch['boxes']], batch['target']['gid'].tolist()
        (torch.Size([2, 3, 4, 4]), [0, 2], [1, 1])
        >>> batch['target']['window'].shape
        torch.Size([2, 4])
    """
    import torch
    if not batch:
        return {}
    images = [b['image'] for b in batch]
    same = all(im.shape == images[0].shape for im in images)
    out = {'image': torch.stack(images) if same else images}
    for key in batch[0]:
        if key in ('image', 'target'):
            continue
        parts = [b[key] for b in batch]
        if all(isinstance(t, torch.Tensor) and t.dim() > 0 and t.shape[1:] == parts[0].shape[1:]
               and t.dtype == parts[0].dtype for t in parts):
            out[key] = list(torch.split(torch.cat(parts), [t.shape[0] for t in parts]))
        else:
            out[key] = parts
    if 'target' in batch[0]:
        keys = list(batch[0]['target'])
        first = [batch[0]['target'][k] for k in keys]
        if len({t.dtype for t in first}) == 1:
            rows = torch.stack([torch.cat([b['target'][k].reshape(-1) for k in keys])
                                for b in batch])
            cols = torch.split(rows, [t.numel() for t in first], dim=1)
            out['target'] = {k: col.reshape(len(batch), *t.shape)
                             for k, col, t in zip(keys, cols, first)}
        else:
            out['target'] = {k: torch.stack([b['target'][k] for b in batch]) for k in keys}
    return out
