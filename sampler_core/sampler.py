"""The sampler: load a window of pixels and its annotations for a target.

:class:`CocoSampler` is the ndsampler 0.8 ``CocoSampler`` for 2-D images:

* ``sampler.regions`` holds the positive / negative pools
  (:class:`sampler_core.regions.CocoRegions`);
* ``sampler.frames`` reads pixels (:class:`sampler_core.frames.CocoFrames`);
* :meth:`CocoSampler.load_sample` turns a target dict into
  ``{'im', 'target', 'params', 'annots'}``.

Windows are never shifted to fit inside the image: the part outside is padded
(``padkw``, default zeros). ``im`` is ``(H, W, C)`` with ``H, W`` the requested
window plus ``2 * pad``; annotations are relative to that padded window.

Example:
    >>> import sampler_core as ndsampler
    >>> sampler = ndsampler.CocoSampler.demo('shapes8')
    >>> sample = sampler.load_sample({'gid': 1, 'cx': 5, 'cy': 2, 'width': 6, 'height': 6})
    >>> sample['im'].shape
    (6, 6, 3)
    >>> sample['params']['tf_rel_to_abs'].tolist()
    [[1.0, 0.0, 2.0], [0.0, 1.0, -1.0], [0.0, 0.0, 1.0]]
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

from sampler_core import video
from sampler_core.annots import AnnotGeometry, coerce_with_annots
from sampler_core.frames import CocoFrames
from sampler_core.hashid import HashIdentifiable
from sampler_core.regions import CocoRegions
from sampler_core.target import (CENTER_KEYS, center_extent_to_slices, center_target_slices,
                                 coerce_padkw, coerce_space_slice,
                                 coerce_window_dims, _as_finite)
from sampler_core.read import read
from sampler_core.window import resolve

#: target keys that used to be keyword arguments of load_sample
_LEGACY_KWARGS = ('pad', 'padkw', 'dtype', 'nodata', 'window_dims')


class AbstractSampler:
    """The sampler API: pools of targets and a way to load them.

    Not every sampler implements every method (a sampler that generates data on
    the fly has no ``load_sample``).
    """

    @property
    def class_ids(self):
        raise NotImplementedError

    @property
    def n_positives(self):
        raise NotImplementedError

    def load_sample(self, tr, pad=None, window_dims=None, visible_thresh=0.1):
        raise NotImplementedError

    def load_item(self, index, pad=None, window_dims=None):
        raise NotImplementedError

    def load_positive(self, index=None, pad=None, window_dims=None, rng=None):
        raise NotImplementedError

    def load_negative(self, index=None, pad=None, window_dims=None, rng=None):
        raise NotImplementedError

    def preselect(self, **kwargs):
        """Set up a pool of training examples before the epoch begins."""
        raise NotImplementedError


def _ensure_imgsize(dset, verbose: int = 0) -> None:
    """Fill in missing image ``width`` / ``height`` from the files' headers.

    Raises:
        FileNotFoundError: an image without size whose file does not exist.
        ValueError: an image file whose header cannot be read.
    """
    import kwimage
    import ubelt as ub
    missing = [img for img in dset.imgs.values()
               if img.get('width') is None or img.get('height') is None]
    for img in ub.ProgIter(missing, desc='read image sizes', enabled=verbose > 0 and bool(missing)):
        if img.get('file_name') is None:
            continue
        fpath = os.fspath(dset.get_image_fpath(img['id']))
        if not os.path.exists(fpath):
            raise FileNotFoundError(f'image file of image id {img["id"]} does not exist: {fpath}')
        try:
            shape = kwimage.load_image_shape(fpath)
        except Exception as ex:
            reason = ' '.join(str(ex).split())  # kwimage's messages span several lines
            raise ValueError(f'cannot read image file {fpath}: {reason}') from None
        img['height'], img['width'] = int(shape[0]), int(shape[1])


def _check_coco(dset, where: str):
    """Refuse JSON that is not a COCO dataset, or that repeats ids; fill in optional empty sections.

    Raises:
        ValueError: no ``images`` list, or an image / annotation / category id
            used twice (see :func:`sampler_core.index.check_unique_ids`).
    """
    from sampler_core.index import check_unique_ids
    data = dset.dataset
    if not isinstance(data, dict) or not isinstance(data.get('images'), list):
        raise ValueError(f'{where} is not a COCO / kwcoco dataset: it has no "images" list')
    missing = [k for k in ('annotations', 'categories') if data.get(k) is None]
    if missing:  # a dataset of unlabelled images is valid, just empty
        for key in missing:
            data[key] = []
        dset._build_index()
    check_unique_ids(dset, where)
    return dset


def _coerce_dset(data):
    """A kwcoco.CocoDataset from a dataset, a path, or a demo key (:mod:`sampler_core.demo`)."""
    import kwcoco
    from sampler_core.config import check_dataset_name
    from sampler_core.demo import DEMOS, demo_key, load_demo
    if isinstance(data, kwcoco.CocoDataset):
        return _check_coco(data, getattr(data, 'fpath', None) or 'the dataset')
    if isinstance(data, (str, os.PathLike)):
        text = check_dataset_name(os.fspath(data), what='dataset')
        if demo_key(text):   # a demo key wins over a file of that name ('./shapes8')
            return load_demo(demo_key(text))
        if os.path.exists(text):
            if os.path.isdir(text):
                raise ValueError(f'expected a .kwcoco.json file, got a folder: {text}')
            try:
                dset = kwcoco.CocoDataset(text)
            except Exception as ex:
                raise ValueError(f'cannot read dataset {text}: {ex}') from None
            return _check_coco(dset, text)
        raise FileNotFoundError(f'dataset file does not exist: {text} (the demo keys are '
                                f'{list(DEMOS)})')
    raise TypeError(f'cannot make a CocoDataset from {type(data).__name__}: {data!r}')


class CocoSampler(AbstractSampler, HashIdentifiable):
    """Samples windows (positives, negatives, arbitrary targets) of a kwcoco dataset.

    Args:
        dset: a ``kwcoco.CocoDataset`` or the path of a ``.kwcoco.json`` file.
        workdir: folder for the frame cache (default ``~/.cache/sampler-explorer``).
        autoinit: build ``regions`` and ``frames`` now (else call ``_init()``).
        backend: ``None`` (decode source images on every read), ``'npy'`` /
            ``'auto'`` (memory-mapped ``.npy`` cache).
        verbose: verbosity.

    Raises:
        FileNotFoundError: a dataset path or an image file that does not exist.

    Example:
        >>> import sampler_core as ndsampler
        >>> self = ndsampler.CocoSampler.demo('shapes8')
        >>> sample = self.load_positive(0, pad=(10, 10), target=dict(window_dims=(3, 3)))
        >>> sample['im'].shape
        (23, 23, 3)
        >>> sorted(sample)
        ['annots', 'classes', 'im', 'kp_classes', 'params', 'target', 'tr']
    """

    def __init__(self, dset, workdir=None, autoinit: bool = True, backend=None,
                 verbose: int = 0):
        super().__init__()
        self.dset = _coerce_dset(dset)
        self.workdir = None if workdir is None else Path(workdir)
        self.backend = backend
        self.verbose = verbose
        self.regions = None
        self.frames = None
        self._geometry = None
        #: each image's (sy, sx) of the config's resolution: (resolution, space, {gid: scale})
        self._resolution_scales = None
        #: the SamplingConfig this sampler was built from (see from_config)
        self.config = None
        #: the split side ('train' / 'val' / None) its pools were drawn from (apply_config)
        self.subset = None
        if autoinit:
            self._init()

    def _init(self) -> None:
        _ensure_imgsize(self.dset, verbose=self.verbose)
        self.frames = CocoFrames(self.dset, workdir=self.workdir, backend=self.backend,
                                 verbose=self.verbose)
        self.regions = CocoRegions(self.dset, workdir=self.workdir, verbose=self.verbose)
        self._geometry = AnnotGeometry(self.dset)
        self.kp_classes = self._geometry.kp_classes
        self.BACKGROUND_CLASS_ID = self.regions.BACKGROUND_CLASS_ID

    def fork(self) -> 'CocoSampler':
        """A sampler with pools of its own sharing everything else with this one.

        Dataset, frame cache, annotation cache, target table and spatial index
        are shared (see :meth:`CocoRegions.fork`); no pool is chosen and no
        config is set. Preselecting on the fork leaves this sampler's pools
        alone, so one loaded dataset can serve several pools at once.

        Example:
            >>> base = CocoSampler.demo('shapes8')
            >>> train, val = base.fork(), base.fork()
            >>> train.regions.preselect(n_pos=4, n_neg=0, window_dims=(64, 64), rng=0)
            (4, 0)
            >>> val.regions.preselect(n_pos=2, n_neg=1, window_dims=(64, 64), rng=1)
            (2, 1)
            >>> train.n_positives, val.n_positives, train.frames is val.frames
            (4, 2, True)
        """
        other = copy.copy(self)
        other.regions = self.regions.fork()
        other.config = None
        other.subset = None
        return other

    @classmethod
    def demo(cls, key: str = 'shapes', workdir=None, backend=None, **kw) -> 'CocoSampler':
        """A sampler on a demo dataset, generated locally.

        A key of :data:`sampler_core.demo.DEMOS` (without ``kw``) opens that demo,
        the one a config naming it rebuilds; any other key (or ``kw``) is passed to
        ``kwcoco.CocoDataset.demo(key, **kw)``.

        Example:
            >>> CocoSampler.demo('shapes8').dset.fpath.endswith('shapes8-v1/data.kwcoco.json')
            True
        """
        import kwcoco
        from sampler_core.demo import is_demo_key, load_demo
        if is_demo_key(key) and not kw:
            return cls(load_demo(key), workdir=workdir, backend=backend)
        return cls(kwcoco.CocoDataset.demo(key, **kw), workdir=workdir, backend=backend)

    @classmethod
    def coerce(cls, data, **kwargs) -> 'CocoSampler':
        """A sampler from a sampler, a CocoDataset, a ``.kwcoco.json`` path or a demo key.

        Raises:
            FileNotFoundError: a path that does not exist.
            TypeError: anything else.
        """
        if isinstance(data, cls):
            return data
        return cls(data, **kwargs)

    @classmethod
    def from_config(cls, config, allow_hash_mismatch: bool = False, subset: str | None = 'train',
                    **kwargs) -> 'CocoSampler':
        """Rebuild the sampler and its pools from a :class:`~sampler_core.config.SamplingConfig`.

        ``load_item`` / ``load_positive`` / ``load_negative`` then return the
        configured windows (window_dims, pad, channels, visible_thresh,
        with_annots) unless a call overrides them.

        Args:
            config: a SamplingConfig, a dict, or the path of a YAML / JSON file.
            allow_hash_mismatch: warn instead of failing when the dataset's
                content hash differs from ``config.dataset_hash``.
            subset: ``'train'`` or ``'val'`` side of the config's split
                (``split_by``; without a split everything is ``'train'``), or
                ``None`` for every window regardless of the split.
            **kwargs: passed to the constructor (e.g. ``workdir``).

        Example:
            >>> from sampler_core import CocoSampler, SamplingConfig
            >>> cfg = SamplingConfig(dataset='shapes8', window_dims=(64, 64), n_pos=3, n_neg=2)
            >>> sampler = CocoSampler.from_config(cfg)
            >>> (sampler.regions.n_positives, sampler.regions.n_negatives)
            (3, 2)
            >>> sampler.load_item(4)['im'].shape
            (64, 64, 3)
        """
        from sampler_core.config import SamplingConfig
        if isinstance(config, dict):
            config = SamplingConfig.from_dict(config)
        elif isinstance(config, (str, os.PathLike)):
            config = SamplingConfig.load(config)
        elif not isinstance(config, SamplingConfig):
            raise TypeError(f'expected a SamplingConfig, dict or path, got {type(config).__name__}')
        kwargs.setdefault('workdir', config.workdir)
        self = cls(config.dataset, backend=config.backend, **kwargs)
        current = config.check_dataset(self.dset, allow_hash_mismatch=allow_hash_mismatch)
        self.apply_config(config, subset=subset)
        self.config.dataset_hash = current
        return self

    def apply_config(self, config, subset: str | None = 'train') -> tuple[int, int]:
        """Preselect the pools of ``config`` and make its target keys the defaults.

        Args:
            config (SamplingConfig): the config.
            subset: ``'train'`` / ``'val'`` side of the config's split, or ``None``.

        Returns:
            ``(n_pos, n_neg)``.

        Raises:
            KeyError: a category name the dataset does not have.
            ValueError: ``subset='val'`` without a split.
        """
        kwargs = config.preselect_kwargs(self.dset, subset=subset)
        if config.mode == 'grid':
            kwargs.pop('thresh')
            counts = self.regions.preselect_grid(window_overlap=config.grid_overlap,
                                                 edge=config.grid_edge, **kwargs)
        else:
            counts = self.regions.preselect(**kwargs)
        self.config = config
        self.subset = subset
        return counts

    def to_config(self, **overrides):
        """The :class:`~sampler_core.config.SamplingConfig` that rebuilds this sampler.

        Starts from the config the sampler was built from (if any), sets the
        fields that redraw the current pools however they were drawn
        (``preselect``, ``regions.preselect``, ``regions.preselect_grid``,
        ``apply_config`` / ``from_config``; see
        :meth:`~sampler_core.regions.CocoRegions.pool_config`), fills in the
        dataset, its content hash, the backend and workdir, then applies
        ``overrides``. ``from_config(sampler.to_config())`` has the same pools
        (pools of a split's val side: ``from_config(config, subset='val')``).

        Raises:
            ValueError: the pools cannot be redrawn from a config (an ``rng``
                that is not an integer seed, a window a config cannot hold, ...),
                or they were drawn with a ``window_dims`` / split ``pad`` other
                than the one of the config this sampler reads windows with
                (a config holds one); the message says what to pass instead.

        Example:
            >>> sampler = CocoSampler.demo('shapes8')
            >>> _ = sampler.regions.preselect(n_pos=20, n_neg=20, window_dims=(96, 96), rng=0)
            >>> other = CocoSampler.from_config(sampler.to_config())
            >>> a, b = sampler.regions.pool_tables(), other.regions.pool_tables()
            >>> all((a[i][k] == b[i][k]).all() for i in (0, 1) for k in a[i])
            True
        """
        from sampler_core.config import SamplingConfig, dataset_hash
        data = self.config.to_dict() if self.config is not None else {}
        data.pop('version', None)
        window_dims = data.get('window_dims', SamplingConfig.param['window_dims'].default)
        if isinstance(window_dims, list):
            window_dims = tuple(window_dims)
        pool = self.regions.pool_config(default_window_dims=window_dims)
        if self.config is not None:
            for key in ('window_dims', 'pad'):
                have = data[key]
                have = tuple(have) if isinstance(have, list) else have
                if key in pool and key not in overrides and pool[key] != have:
                    raise ValueError(
                        f'the pools were drawn with {key}={pool[key]!r} but this sampler reads '
                        f'windows with {key}={have!r} (its config), and a config holds one: '
                        f'preselect with {key}={have!r}, or pass to_config({key}=...)')
        data.update(pool)
        fpath = getattr(self.dset, 'fpath', None)
        if fpath and os.path.exists(fpath):
            from sampler_core.demo import demo_key_of_path
            data['dataset'] = demo_key_of_path(fpath) or os.fspath(fpath)   # a demo by its key
        data['dataset_hash'] = dataset_hash(self.dset)
        backend = self.frames.backend
        data['backend'] = None if backend is None else backend['type']
        data['workdir'] = None if self.workdir is None else os.fspath(self.workdir)
        data.update(overrides)
        return SamplingConfig(**data)

    def _depends(self):
        return ['CocoSampler', self.dset._build_hashid(hash_pixels=False)]

    def __repr__(self) -> str:
        return (f'<CocoSampler(n_images={self.n_images}, n_annots={self.n_annots}, '
                f'backend={self.backend!r})>')

    # ------------------------------------------------------------ counts
    @property
    def classes(self):
        """The object categories (``kwcoco.CategoryTree``, built once)."""
        if self._geometry is None:
            return self.dset.object_categories()
        return self._geometry.classes

    @property
    def annot_geometry(self):
        """The parsed annotation geometry (:class:`~sampler_core.annots.AnnotGeometry`)."""
        return self._geometry

    @property
    def catgraph(self):
        """Deprecated alias of :attr:`classes`."""
        return self.classes

    def lookup_class_name(self, class_id):
        return self.regions.lookup_class_name(class_id)

    def lookup_class_id(self, class_name):
        return self.regions.lookup_class_id(class_name)

    @property
    def n_positives(self) -> int:
        return self.regions.n_positives

    @property
    def n_annots(self) -> int:
        return self.regions.n_annots

    @property
    def n_samples(self) -> int:
        return self.regions.n_samples

    def __len__(self) -> int:
        return self.n_samples

    @property
    def n_images(self) -> int:
        return self.regions.n_images

    @property
    def n_categories(self) -> int:
        return self.regions.n_categories

    @property
    def class_ids(self) -> list:
        return self.regions.class_ids

    @property
    def image_ids(self) -> list:
        return self.regions.image_ids

    def preselect(self, **kwargs):
        """See :meth:`sampler_core.regions.CocoRegions.preselect`."""
        return self.regions.preselect(**kwargs)

    def new_sample_grid(self, task: str, window_dims, window_overlap=0.0, **kwargs) -> dict:
        """Sliding-window targets; see :meth:`sampler_core.regions.CocoRegions.new_sample_grid`.

        Example:
            >>> self = CocoSampler.demo('vidshapes1-multispectral', num_frames=3,
            ...                         image_size=(64, 64))
            >>> grid = self.new_sample_grid('video_detection', (2, 32, 32))
            >>> target = dict(grid['positives'][0], channels='B1|B8')
            >>> self.load_sample(target)['im'].shape
            (2, 32, 32, 2)
        """
        return self.regions.new_sample_grid(task, window_dims, window_overlap, **kwargs)

    # ------------------------------------------------------------ images
    def load_image(self, image_id, cache: bool = True):
        """The whole image ``(H, W, C)`` (a read-only memmap with the npy backend)."""
        self._check_gid(image_id)
        return self.frames.load_image(image_id, cache=cache)

    def load_annotations(self, image_id) -> list[dict]:
        """The annotation dicts of an image, or of the window of a target dict.

        Args:
            image_id: an image id, or a target dict (then the annotations
                visible in its window, honouring ``target['visible_thresh']``).
        """
        if isinstance(image_id, dict):
            win = resolve(self, image_id)
            thresh = image_id.get('visible_thresh', 0.0)
            if win.is3d:  # all frames, window in video space
                aids = video.window_aids(self, win, thresh)
                return [self.dset.anns[aid] for aid in aids]
            aids = self.regions.overlapping_aids(win.frames[0], list(win.padded_ltrb), thresh)
        else:
            self._check_gid(image_id)
            aids = self.dset.index.gid_to_aids[image_id]
        return [self.dset.anns[aid] for aid in aids]

    def load_image_with_annots(self, image_id, cache: bool = True):
        """``(img, anns)``: the image dict plus ``'imdata'``, and its annotations."""
        self._check_gid(image_id)
        img = dict(self.dset.imgs[image_id])
        img['imdata'] = self.load_image(image_id, cache=cache)
        return img, self.load_annotations(image_id)

    # ------------------------------------------------------------ pools
    @property
    def config(self):
        """The :class:`~sampler_core.config.SamplingConfig` whose windows ``load_item`` reads
        (``None``: none). Setting one checks what it needs of the dataset
        (:meth:`_check_config`)."""
        return self._config

    @config.setter
    def config(self, config) -> None:
        if config is not None:
            self._check_config(config)
        self._config = config

    def _check_config(self, config) -> None:
        """Refuse a config this dataset cannot serve: ``time_steps`` without videos, and
        ``resolution`` with an image lacking its own (each image's scale is computed here,
        once per config).

        Raises:
            ValueError: naming the key, and the image (id and name) for ``resolution``.
        """
        if config.time_steps is not None and not self.dset.index.videos:
            raise ValueError(f'config key "time_steps" is {config.time_steps} but the dataset '
                             f'{config.dataset!r} has no videos (time_steps reads frames of a '
                             f'video); set time_steps to null for 2-D images')
        if config.resolution is None:
            self._resolution_scales = None
        else:
            self._scales_of_resolution(config)

    def _scales_of_resolution(self, config) -> dict:
        """``{gid: (sy, sx)}`` of ``config.resolution`` in the space its windows are read in
        (video space with ``time_steps``), computed once per (resolution, space).

        Raises:
            ValueError: an image without its own resolution (named).
        """
        space = 'video' if config.time_steps is not None else 'image'
        cached = getattr(self, '_resolution_scales', None)
        if cached is None or cached[:2] != (config.resolution, space):
            from sampler_core.resolution import resolution_scale
            cached = self._resolution_scales = (
                config.resolution, space,
                {gid: resolution_scale(self.dset, gid, config.resolution, space)
                 for gid in self.dset.imgs})
        return cached[2]

    def _config_target(self, tr: dict, cfg, pool_index, epoch: int, draw_index, rng) -> None:
        """Update pool target ``tr`` with what ``cfg`` reads: its target keys, the per-item
        draws, the frames of ``time_steps`` and the scale of ``resolution``."""
        tr.update(cfg.target_extra())
        if pool_index is not None:   # the config's per-item draws (training options)
            tr.update(cfg.item_target(pool_index, epoch))
        if cfg.time_steps is not None:
            if cfg.time_sampling != 'random':
                draw = None
            elif draw_index is not None:
                draw = cfg.time_rng(draw_index, epoch)
            else:   # a random pool item: its frames come from the same rng
                import kwarray
                import numpy as np
                draw = np.random.default_rng(int(kwarray.ensure_rng(rng).randint(2 ** 31)))
            tr.update(video.time_target(self, tr, cfg.time_steps, cfg.time_sampling,
                                        cfg.time_span, draw))
        if cfg.resolution is not None:
            sy, sx = self._scales_of_resolution(cfg)[tr['gid']]
            jitter = tr.get('scale', 1.0)      # scale_range's factor (scale is None here)
            jy, jx = jitter if isinstance(jitter, tuple) else (jitter, jitter)
            tr['scale'] = (sy * jy, sx * jx)

    def _load_from_pool(self, getter, index, with_annots, target, rng, kw, pool_index=None,
                        epoch: int = 0, draw_index=None) -> dict:
        tr = dict(getter(index, rng=rng))
        cfg = self.config
        if cfg is not None:
            self._config_target(tr, cfg, pool_index, epoch,
                                pool_index if draw_index is None else draw_index, rng)
        extra = dict(kw.pop('tr', None) or {})
        if target:
            extra.update(target)
        default_thresh = cfg.visible_thresh if cfg is not None else 0.0
        visible_thresh = kw.pop('visible_thresh', default_thresh)
        extra.update(kw)
        tr.update(extra)
        if with_annots is True and cfg is not None:
            with_annots = list(cfg.with_annots)
        return self.load_sample(tr, with_annots=with_annots, visible_thresh=visible_thresh)

    def load_item(self, index, with_annots=True, target=None, rng=None, epoch: int = 0,
                  **kw) -> dict:
        """Sample the ``index``-th item of the pools (positives first, then negatives).

        Args:
            index: index into positives + negatives.
            with_annots: see :meth:`load_sample`.
            target: extra target keys (``window_dims``, ``pad`` ...) that update
                the pool's target.
            rng: seed or RandomState (for random choices).
            epoch: the epoch of the config's per-item draws (``scale_range``, ...;
                see :meth:`~sampler_core.config.SamplingConfig.item_target`).
            **kw: more target keys, and ``visible_thresh``.
        """
        import numbers
        pool_index = None   # a random item (None), or one the pools refuse: no draws
        if isinstance(index, numbers.Integral) and 0 <= index < self.regions.n_samples:
            pool_index = int(index)
        return self._load_from_pool(self.regions.get_item, index, with_annots, target, rng, kw,
                                    pool_index=pool_index, epoch=epoch)

    def load_positive(self, index=None, with_annots=True, target=None, rng=None, **kw) -> dict:
        """Sample a positive (the ``index``-th, or a random one). See :meth:`load_item`."""
        draw = None if index is None else int(index)
        return self._load_from_pool(self.regions.get_positive, index, with_annots, target, rng, kw,
                                    draw_index=draw)

    def load_negative(self, index=None, with_annots=True, target=None, rng=None, **kw) -> dict:
        """Sample a negative (the ``index``-th, or the next one). See :meth:`load_item`."""
        draw = None if index is None else self.regions.n_positives + int(index)
        return self._load_from_pool(self.regions.get_negative, index, with_annots, target, rng, kw,
                                    draw_index=draw)

    # ------------------------------------------------------------ sampling
    def _check_gid(self, gid):
        if gid not in self.dset.imgs:
            raise KeyError(f'unknown image id {gid!r}')
        return gid

    def load_sample(self, target=None, with_annots=True, annot_ids=None,
                    visible_thresh: float = 0.0, **kwargs) -> dict:
        """Load the pixels and annotations of one target window.

        Args:
            target: a target dict (see :mod:`sampler_core.target`): ``gid`` /
                ``image_id`` or ``aid``; optionally ``cx, cy, width, height``,
                ``window_dims`` ((h, w) or ``'square'``), ``slices`` /
                ``space_slice``, ``pad`` ((h, w)), ``padkw`` (numpy.pad
                arguments), ``channels``, ``dtype``, ``nodata``, ``as_xarray``,
                ``clip_annots``.
            with_annots: ``True``, ``False`` or kinds
                ``['boxes', 'segmentation', 'keypoints']``.
            annot_ids: skip the spatial lookup and use these annotations.
            visible_thresh: leave out annotations with less of their box area
                inside the (padded) window.
            **kwargs: old-style ``pad``, ``padkw``, ``dtype``, ``nodata``,
                ``window_dims`` (moved into the target).

        Returns:
            dict with

            * ``im``: ``(H, W, C)`` array (or ``xarray.DataArray``);
            * ``target``: the target with everything inferred (``gid``,
              ``space_slice``, ``window_dims``, ``rel_cx``, ``rel_cy``, ...);
            * ``params``: ``offset`` (``(dx, dy)``, image -> window),
              ``tf_rel_to_abs`` (3x3), ``sample_tlbr`` (kwimage.Boxes, the
              padded window in image space), ``st_dims``, ``data_dims``, ``pad``;
            * ``annots``: ``aids``, ``cids``, ``rel_boxes``, ``rel_ssegs``,
              ``rel_kpts``, ``rel_frame_index``, ``visible``, ``frame_dets``
              (a list with one kwimage.Detections) and, with
              ``target['clip_annots']``, ``clipped_dets``.

        Raises:
            KeyError: unknown ``gid`` / ``aid`` / channel.
            ValueError: non-positive window, conflicting ``gid`` and ``aid``,
                unknown pad mode, bad ``visible_thresh``.
            FileNotFoundError: the image file is missing.

        Example:
            >>> import sampler_core as ndsampler
            >>> self = ndsampler.CocoSampler.demo('shapes8')
            >>> target = self.regions.get_positive(0)
            >>> target['window_dims'] = 'square'
            >>> target['pad'] = (25, 25)
            >>> sample = self.load_sample(target)
            >>> h, w = sample['target']['window_dims']
            >>> sample['im'].shape == (h + 50, w + 50, 3) and h == w
            True
        """
        kinds = coerce_with_annots(with_annots)
        win = resolve(self, target, **kwargs)
        sample = read(win, self.frames, self.regions, self._geometry, kinds, annot_ids,
                      visible_thresh)
        sample['classes'] = self.classes
        sample['kp_classes'] = self.kp_classes
        sample['tr'] = sample['target']
        return sample

    def _infer_target_attributes(self, target, **kwargs) -> dict:
        """Resolve a target dict into an explicit window (see :mod:`sampler_core.target`).

        The pad is parsed by :func:`sampler_core.window.resolve`, which calls this.
        """
        if target is None:
            target = {}
        if not isinstance(target, dict):
            raise TypeError(f'target must be a dict, got {type(target).__name__}: {target!r}')
        t = dict(target)
        for key in _LEGACY_KWARGS:
            if key in kwargs:
                t[key] = kwargs.pop(key)
        if kwargs:
            raise TypeError(f'unexpected keyword arguments {sorted(kwargs)}')
        for alias, key in (('image_id', 'gid'), ('annot_id', 'aid'), ('video_id', 'vidid'),
                           ('image_ids', 'gids')):
            if t.get(alias) is not None and t.get(key) is None:
                t[key] = t[alias]
        if video.is_video_target(t):
            return video.infer_video_target(self, t)

        aid = t.get('aid', None)
        if aid is not None and aid != -1:
            try:
                ann = self.dset.anns[aid]
            except (KeyError, TypeError):
                raise KeyError(f'unknown annotation id {aid!r}') from None
            if t.get('gid') is None:
                t['gid'] = ann['image_id']
            elif t['gid'] != ann['image_id']:
                raise ValueError(f'target gid={t["gid"]!r} conflicts with aid={aid!r}, '
                                 f'which belongs to image {ann["image_id"]!r}')
            if not all(k in t for k in CENTER_KEYS) and t.get('slices') is None \
                    and t.get('space_slice') is None:
                if ann.get('bbox') is None:
                    raise ValueError(f'annotation {aid!r} has no bbox to centre a window on')
                x, y, w, h = (float(v) for v in ann['bbox'])
                t.setdefault('cx', x + w / 2)
                t.setdefault('cy', y + h / 2)
                t.setdefault('width', w)
                t.setdefault('height', h)
            t.setdefault('category_id', ann['category_id'])

        gid = t.get('gid', None)
        if gid is None:
            raise ValueError(f'target names no image: give gid, image_id or aid (target={target!r})')
        if gid not in self.dset.imgs:
            raise KeyError(f'unknown image id {gid!r}')
        img = self.dset.imgs[gid]
        data_dims = (int(img['height']), int(img['width']))
        t['space_dims'] = data_dims
        t['data_dims'] = data_dims

        slices = t.get('slices', None)
        space_slice = t.get('space_slice', None)
        if space_slice is None and slices is not None:
            if len(tuple(slices)) != 2:
                raise ValueError(f'2-D image targets need slices=(slice_y, slice_x), got {slices!r}')
            space_slice = slices
        if space_slice is not None:
            space_slice = coerce_space_slice(space_slice, data_dims)
            for key in ('cx', 'cy'):  # ignored for the window, but reported back as rel_cx/cy
                if key in t:
                    t[key] = _as_finite(t[key], key)
            if t.get('window_dims') is not None and not isinstance(t['window_dims'], str):
                want = coerce_window_dims(t['window_dims'])
                have = (space_slice[0].stop - space_slice[0].start,
                        space_slice[1].stop - space_slice[1].start)
                if want != have:
                    raise ValueError(f'window_dims={want} conflicts with space_slice of size {have}')
        elif any(k in t for k in CENTER_KEYS):
            space_slice = center_target_slices(t, t.get('window_dims'))
        elif t.get('window_dims') is not None:
            # a size but no place: centre the window on the image, never ignore the size
            window_dims = coerce_window_dims(t['window_dims'], height=data_dims[0],
                                             width=data_dims[1])
            space_slice = center_extent_to_slices((data_dims[0] / 2, data_dims[1] / 2),
                                                  window_dims)
        else:
            space_slice = (slice(0, data_dims[0]), slice(0, data_dims[1]))
        t['space_slice'] = space_slice
        t['slices'] = space_slice
        t['window_dims'] = (space_slice[0].stop - space_slice[0].start,
                            space_slice[1].stop - space_slice[1].start)
        t['padkw'] = coerce_padkw(t.get('padkw'))
        return t
