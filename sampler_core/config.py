"""The sampling config: everything needed to rebuild a sampler and its pools.

A :class:`SamplingConfig` is what the explorer app tunes and exports, and what
training code loads to get the identical windows. It is a
``param.Parameterized`` (so the app builds its widgets from it) and is stored as
YAML or JSON (never pickle), with a ``version`` field::

    version: 2
    dataset: data/train.kwcoco.json
    dataset_hash: 3f2a...        # content hash of the dataset file's annotations
    backend: npy
    window_dims: [256, 256]      # (height, width), pixels
    pad: [0, 0]                  # (height, width) context on each side, pixels
    ...
    mode: random                 # random pools, or grid (sliding windows)
    balance: inverse             # none | inverse | weights (then class_weights)
    split_by: image              # none | image | video | block
    val_fraction: 0.2
    epoch_length: 1000           # items per training epoch (null: one per pool window)
    scale_range: null            # [min, max]: each item read at scale x a factor drawn here
    window_size_range: [128, 256]  # each item a square window of a side drawn here ...
    output_dims: [192, 192]      # ... resampled to (height, width) pixels
    max_nodata_fraction: 0.25    # pool windows with more padding are moved / drawn again
    time_steps: null             # video datasets: frames per item, e.g. 3 (null: one image)
    time_sampling: contiguous    # contiguous | uniform | random, around the pool frame
    time_span: null              # uniform / random: frames spread over (null: the video)
    resolution: null             # e.g. 0.5 GSD: units per pixel from kwcoco's field

Fields added after the first release have defaults, so a version-1 file
without them loads unchanged (``balance: none``, ``split_by: none``,
``mode: random``). Version 2 added the training options (``epoch_length``, ...),
all off by default: a version-1 file loads as version 2 and means the same.

Each field has one role (:attr:`SamplingConfig.FIELD_ROLES`): changing it rebuilds
the sampler, redraws the pools, only changes how a window is read, or changes
nothing sampled; :meth:`SamplingConfig.change_role` gives the strongest role of
a set of changed fields (the explorer redraws what it says).

Loading checks every key: an unknown key raises ``KeyError``, a value of the
wrong type ``TypeError`` and one out of range ``ValueError``, each naming the
key. Config text is checked before anything is built from it (see
:meth:`SamplingConfig.loads`): no YAML anchors or aliases, no key twice, at most
:data:`MAX_CONFIG_DEPTH` levels of nesting and :data:`MAX_CONFIG_CHARS`
characters; numbers follow YAML 1.2 (``1e-3`` is a float). A relative
``dataset`` path in a config file is relative to the file's folder. A dataset
whose content hash changed raises ``ValueError`` unless
``allow_hash_mismatch=True`` (then it warns).

Example:
    >>> import tempfile, os
    >>> from sampler_core.config import SamplingConfig
    >>> cfg = SamplingConfig(dataset='shapes8', window_dims=(64, 64), n_pos=4, n_neg=4, seed=1)
    >>> path = os.path.join(tempfile.mkdtemp(), 'cfg.yaml')
    >>> cfg.dump(path)
    >>> SamplingConfig.load(path).to_dict() == cfg.to_dict()
    True
"""
from __future__ import annotations

import json
import math
import re
import os
import warnings
from pathlib import Path
from types import MappingProxyType
from typing import Any

import param

from sampler_core.resolution import parse_resolution
from sampler_core.target import PAD_MODES, TIME_SAMPLING

#: the version written by this code
CONFIG_VERSION = 2

WITH_ANNOTS_CHOICES = ['boxes', 'segmentation', 'keypoints']
#: ``mode``: random positive / negative pools, or a sliding-window grid
MODE_CHOICES = ['random', 'grid']
#: ``grid_edge``: what happens to the last grid window of a row / column
GRID_EDGE_CHOICES = ['shift', 'pad', 'drop']
#: ``balance`` of the positive pool over categories
BALANCE_CHOICES = ['none', 'inverse', 'weights']
#: ``split_by``: the unit assigned as a whole to train or val
SPLIT_BY_CHOICES = ['none', 'image', 'video', 'block']
#: largest seed numpy accepts
MAX_SEED = 2 ** 32 - 1
#: roles of config fields (:attr:`SamplingConfig.FIELD_ROLES`), weakest first: a change
#: of a stronger role does what a weaker one does too
ROLES = ('inert', 'read', 'pools', 'sampler')
#: fields holding (height, width) pairs of whole pixels
_PIXEL_PAIRS = ('window_dims', 'pad', 'split_block')
#: integer fields (bools are rejected although Python counts them as ints)
_INT_FIELDS = ('n_pos', 'n_neg', 'seed', 'split_seed', 'version', 'epoch_length',
               'time_steps', 'time_span')
#: number fields
_NUM_FIELDS = ('pad_value', 'visible_thresh', 'neg_to_pos_ratio', 'neg_overlap',
               'grid_overlap', 'val_fraction')


def _migrate(data: dict) -> dict:
    """Upgrade a config dict of an older version to :data:`CONFIG_VERSION`."""
    version = data.get('version', CONFIG_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise TypeError(f'config key "version" must be an integer, got {version!r}')
    if version > CONFIG_VERSION:
        raise ValueError(f'config key "version" is {version}, newer than this library '
                         f'understands ({CONFIG_VERSION}); upgrade sampler-explorer')
    if version < 1:
        raise ValueError(f'config key "version" must be >= 1, got {version}')
    # version 1 -> 2: version 2 only added fields (the training options), each off by
    # default, so a version-1 file means the same without them
    data = dict(data)
    data['version'] = CONFIG_VERSION
    return data


class WindowDims(param.NumericTuple):
    """``(height, width)`` in pixels, ``None`` (each positive's box size) or ``'square'``
    (each positive's box, widened to its larger side)."""

    def _validate(self, val):
        if val != 'square':
            super()._validate(val)

    @classmethod
    def serialize(cls, value):
        return value if value == 'square' else super().serialize(value)

    @classmethod
    def deserialize(cls, value):
        return value if value == 'square' else super().deserialize(value)


class SamplingConfig(param.Parameterized):
    """How windows are sampled from a dataset (the exported, versioned config).

    Coordinates: ``window_dims`` and ``pad`` are ``(height, width)`` in pixels
    of the image.
    """

    version = param.Integer(default=CONFIG_VERSION, bounds=(1, CONFIG_VERSION), constant=True,
                            doc='Format version of this config.')

    # --- dataset -------------------------------------------------------------
    dataset = param.String(default='shapes8', doc=(
        'Path of the .kwcoco.json file, or a kwcoco demo key such as "shapes8".'))
    dataset_hash = param.String(default=None, allow_None=True, doc=(
        'Content hash of the dataset when the config was made; checked on load.'))
    backend = param.Selector(default='npy', objects=[None, 'npy', 'cog'], doc=(
        'Pixel backend: None decodes source images each time (tiled TIFFs and URLs by window), '
        '"npy" uses a memmap cache, "cog" a tiled, compressed GeoTIFF cache (the cog extra).'))
    workdir = param.String(default=None, allow_None=True, doc='Folder of the frame cache.')

    # --- windows -------------------------------------------------------------
    window_dims = WindowDims(default=(256, 256), length=2, allow_None=True, doc=(
        '(height, width) of every window in pixels; None: each positive uses its box size; '
        '"square": its box widened to the larger side (negatives: square sizes).'))
    pad = param.NumericTuple(default=(0, 0), length=2, doc=(
        '(height, width) context added on each side of the window, pixels.'))
    pad_mode = param.Selector(default='constant', objects=sorted(PAD_MODES), doc=(
        'numpy.pad mode for the part of a window outside the image.'))
    pad_value = param.Number(default=0, doc='Fill value of pad_mode="constant".')
    scale = param.Parameter(default=None, doc=(
        'Extra resampling of every window: None (none), a factor s, or [sy, sx]; the window '
        'is chosen in image pixels, then returned scaled (annotations too).'))
    channels = param.String(default=None, allow_None=True, doc=(
        'kwcoco channel code such as "r|g|b"; None: all channels.'))
    visible_thresh = param.Number(default=0.0, bounds=(0.0, 1.0), doc=(
        'Drop annotations with less than this fraction of their box inside the window.'))
    with_annots = param.ListSelector(default=list(WITH_ANNOTS_CHOICES),
                                     objects=list(WITH_ANNOTS_CHOICES),
                                     doc='Annotation kinds returned with each window.')

    # --- pools ---------------------------------------------------------------
    categories = param.List(default=[], item_type=str, doc=(
        'Category names whose annotations are positives; empty: all.'))
    n_pos = param.Integer(default=None, allow_None=True, bounds=(0, None), doc=(
        'Number of positives; None: every annotation.'))
    n_neg = param.Integer(default=None, allow_None=True, bounds=(0, None), doc=(
        'Number of negatives; None: neg_to_pos_ratio * n_pos.'))
    neg_to_pos_ratio = param.Number(default=1.0, bounds=(0.0, None), doc=(
        'Negatives per positive when n_neg is None.'))
    neg_overlap = param.Number(default=0.0, bounds=(0.0, 1.0), doc=(
        'Largest overlap of a negative with any annotation, fraction of its area.'))
    seed = param.Integer(default=0, bounds=(0, MAX_SEED), doc='Random seed of the pools.')

    # --- sampling mode (added in version 1, default keeps older files' meaning)
    mode = param.Selector(default='random', objects=MODE_CHOICES, doc=(
        '"random": positive / negative pools (n_pos, n_neg); "grid": every window of a '
        'sliding grid over each image (needs window_dims).'))
    grid_overlap = param.Number(default=0.0, bounds=(0.0, 1.0), inclusive_bounds=(True, False),
                                doc='Fraction of a window shared with its grid neighbour.')
    grid_edge = param.Selector(default='shift', objects=GRID_EDGE_CHOICES, doc=(
        'Last grid window of a row / column: "shift" it inside the image, "pad" the part '
        'outside, or "drop" it.'))

    # --- class balance of the positives --------------------------------------
    balance = param.Selector(default='none', objects=BALANCE_CHOICES, doc=(
        '"none": positives in dataset proportions; "inverse": every category equally '
        'often (inverse category frequency); "weights": in proportion to class_weights. '
        'Grid mode: n_pos windows (default: every positive one) drawn with replacement, '
        'each weighted by the rarest category it holds.'))
    class_weights = param.Dict(default={}, doc=(
        '{category name: relative frequency >= 0} used by balance="weights"; '
        'categories not listed get 1.0.'))

    # --- leak-free train / val split -----------------------------------------
    split_by = param.Selector(default='none', objects=SPLIT_BY_CHOICES, doc=(
        'Unit assigned as a whole to train or val: "image", "video" (images without a '
        'video count as their own), "block" (square tiles of split_block pixels); "none": '
        'no split, every window is in "train".'))
    val_fraction = param.Number(default=0.2, bounds=(0.0, 1.0), doc=(
        'Fraction of the units (images, videos or blocks) assigned to val.'))
    split_seed = param.Integer(default=0, bounds=(0, MAX_SEED), doc=(
        'Seed of the split (independent of seed, so pools can change and the split not).'))
    split_block = param.NumericTuple(default=(1024, 1024), length=2, doc=(
        '(height, width) of a split block, pixels (split_by="block").'))

    # --- training options (added in version 2; the defaults keep version 1's meaning)
    epoch_length = param.Integer(default=None, allow_None=True, bounds=(1, None), doc=(
        'Items per training epoch drawn from the pools (SampleDataset): fewer than the pools '
        'takes a different part of them each epoch, more repeats windows (every window '
        'floor or ceil(epoch_length / pool size) times); None: each pool window once.'))
    scale_range = param.Parameter(default=None, doc=(
        'Scale jitter: [min, max]; each item is read at scale times a factor drawn uniformly '
        'from it (the same for both axes), reproducible from seed, epoch and pool index; '
        'None: off.'))
    window_size_range = param.Parameter(default=None, doc=(
        'Random window sizes: [min, max] pixels; each item reads a square window of a side '
        'drawn uniformly in the range (whole pixels), centred where the pool window is and '
        'inside it (needs window_dims [h, w] with max <= min(h, w): window_dims is the '
        'largest window, the one pools and splits use); None: off.'))
    output_dims = param.Parameter(default=None, doc=(
        '[height, width]: every item resampled to this size (pad included; annotations and '
        'tf_rel_to_abs follow); needs window_dims [h, w]; exclusive with scale and '
        'scale_range; None: items keep their window size.'))
    max_nodata_fraction = param.Number(default=None, allow_None=True, bounds=(0.0, 1.0), doc=(
        'Largest fraction (0..1) of a pool window\'s pixels (window_dims plus pad) that may be '
        'padding outside the image: a positive above it is moved towards the image inside '
        'keeping its whole box, a negative is drawn again elsewhere; windows that cannot be '
        'replaced are dropped (counted, one warning); grid windows above it are dropped. '
        'None: off.'))
    time_steps = param.Integer(default=None, allow_None=True, bounds=(1, None), doc=(
        'Video datasets: frames per item, chosen around the pool window\'s frame by '
        'time_sampling (a video shorter than this is padded with nodata frames); splits must '
        'be by video; None: each item is one image.'))
    time_sampling = param.Selector(default='contiguous', objects=list(TIME_SAMPLING), doc=(
        'How the time_steps frames are chosen, always including the pool window\'s frame: '
        '"contiguous" (consecutive frames around it), "uniform" (evenly spread over '
        'time_span frames centred on it), "random" (sorted distinct frames of that span, '
        'drawn from seed, epoch and pool index).'))
    time_span = param.Integer(default=None, allow_None=True, bounds=(1, None), doc=(
        'uniform / random: the frames (>= time_steps) the frames are chosen in, centred on '
        'the pool window\'s frame and moved to stay inside the video; None: the whole video.'))
    resolution = param.Parameter(default=None, doc=(
        'Read every window at this resolution, units per pixel: a number or text such as '
        '"0.5 GSD" / "0.5 mpp" / "0.5 meters" (GSD, mpp and metres are one unit); each '
        'image is scaled by its own kwcoco "resolution" / this (the window is still '
        'window_dims image pixels); exclusive with scale and output_dims; None: off.'))

    #: What changing each field does, one entry per field, in file order (the keys written
    #: to files). A role names the strongest thing a change needs, checked against what
    #: reads the field: ``'sampler'`` opens the dataset again (``CocoSampler(dataset,
    #: backend, workdir)``); ``'pools'`` draws the pools again (:meth:`preselect_kwargs`,
    #: :meth:`split_selector`, :meth:`balance_arg` and the grid fields
    #: ``CocoSampler.apply_config`` passes; ``pad`` too, as a block split keeps the windows
    #: whose *padded* extent lies in one subset); ``'read'`` changes only how a pool window
    #: is read (:meth:`target_extra`, :meth:`item_target`: the per-item draws of
    #: ``scale_range`` / ``window_size_range`` / ``output_dims``, which stay inside the pool
    #: window; the frames around the pool window's frame (``time_*``); the scale of
    #: ``resolution``; ``visible_thresh``, ``with_annots``) or served in training epochs
    #: (``epoch_length``); ``'inert'``
    #: changes nothing sampled (the format version, the dataset hash filled on export).
    FIELD_ROLES = MappingProxyType({
        'version': 'inert', 'dataset': 'sampler', 'dataset_hash': 'inert',
        'backend': 'sampler', 'workdir': 'sampler',
        'window_dims': 'pools', 'pad': 'pools', 'pad_mode': 'read', 'pad_value': 'read',
        'scale': 'read', 'channels': 'read', 'visible_thresh': 'read', 'with_annots': 'read',
        'categories': 'pools', 'n_pos': 'pools', 'n_neg': 'pools', 'neg_to_pos_ratio': 'pools',
        'neg_overlap': 'pools', 'seed': 'pools',
        'mode': 'pools', 'grid_overlap': 'pools', 'grid_edge': 'pools',
        'balance': 'pools', 'class_weights': 'pools',
        'split_by': 'pools', 'val_fraction': 'pools', 'split_seed': 'pools',
        'split_block': 'pools',
        'epoch_length': 'read', 'scale_range': 'read', 'window_size_range': 'read',
        'output_dims': 'read', 'max_nodata_fraction': 'pools',
        'time_steps': 'read', 'time_sampling': 'read', 'time_span': 'read',
        'resolution': 'read',
    })
    #: keys written to files, in order
    FIELDS = tuple(FIELD_ROLES)
    #: fields whose change opens the dataset again (and so redraws the pools)
    SAMPLER_FIELDS = frozenset(k for k, r in FIELD_ROLES.items() if r == 'sampler')
    #: fields whose change draws the pools again
    POOL_FIELDS = frozenset(k for k, r in FIELD_ROLES.items() if r == 'pools')
    #: fields that change only how a pool window is read (pixels, annotations)
    READ_FIELDS = frozenset(k for k, r in FIELD_ROLES.items() if r == 'read')
    #: fields that change nothing sampled
    INERT_FIELDS = frozenset(k for k, r in FIELD_ROLES.items() if r == 'inert')

    @classmethod
    def change_role(cls, names) -> str:
        """The strongest role (:attr:`FIELD_ROLES`) among the changed fields ``names``.

        Args:
            names (Iterable[str]): names of changed config fields.

        Returns:
            ``'sampler'``, ``'pools'``, ``'read'`` or ``'inert'`` (also for no names).

        Raises:
            KeyError: a name that is not a config field.

        Example:
            >>> SamplingConfig.change_role(['pad_mode', 'seed'])
            'pools'
            >>> SamplingConfig.change_role(['channels', 'dataset_hash'])
            'read'
            >>> SamplingConfig.change_role(['pad'])   # block splits keep padded windows
            'pools'
        """
        names = list(names)
        unknown = sorted(set(names) - set(cls.FIELD_ROLES), key=str)
        if unknown:
            raise KeyError(f'unknown config key(s) {unknown}; known keys: {list(cls.FIELDS)}')
        ranks = [ROLES.index(cls.FIELD_ROLES[n]) for n in names]
        return ROLES[max(ranks, default=0)]

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.FIELDS) - {'name'})
        if unknown:
            raise KeyError(f'unknown config key(s) {unknown}; known keys: {list(self.FIELDS)}')
        params = {k: self._coerce_value(k, v) for k, v in params.items()}
        try:
            super().__init__(**params)
        except (ValueError, TypeError) as ex:  # param names the parameter in its message
            raise _typed_error(ex) from None
        self._check()

    @classmethod
    def _coerce_value(cls, key: str, value: Any) -> Any:
        """JSON/YAML gives lists where the config holds tuples; ints for whole numbers."""
        if isinstance(value, bool) and key in _INT_FIELDS + _NUM_FIELDS:
            raise TypeError(f'config key {key!r} must be a number, got {value!r}')
        if key == 'scale':
            return _coerce_scale(value)
        if key == 'scale_range':
            return _coerce_range(value, key, whole=False)
        if key == 'window_size_range':
            return _coerce_range(value, key, whole=True)
        if key == 'max_nodata_fraction':
            from sampler_core.regions import check_max_nodata_fraction
            try:
                return check_max_nodata_fraction(value)
            except (TypeError, ValueError) as ex:
                raise type(ex)(f'config key "max_nodata_fraction" must be null or a number in '
                               f'[0, 1], got {value!r}') from None
        if key == 'resolution':
            if value is None:
                return None
            try:
                parse_resolution(value)
            except (TypeError, ValueError) as ex:   # raised here: a config error, named
                raise type(ex)(str(ex)) from None
            return value.strip() if isinstance(value, str) else float(value)
        if key == 'output_dims':
            if value is None:
                return None
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise TypeError(f'config key "output_dims" must be null or [height, width], '
                                f'got {value!r}')
            return _coerce_range(tuple(value), key, whole=True, ordered=False)
        if key == 'window_dims' and isinstance(value, str) and value != 'square':
            raise ValueError(f'config key "window_dims" must be [height, width], "square" or '
                             f'null, got {value!r}')
        if key in _PIXEL_PAIRS and isinstance(value, list):
            value = tuple(value)
        if key in _PIXEL_PAIRS and isinstance(value, tuple):
            for v in value:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                        not float(v).is_integer():
                    raise TypeError(f'config key {key!r} must hold whole numbers of pixels, '
                                    f'got {value!r}')
            value = tuple(int(v) for v in value)
        if key == 'version' and value != CONFIG_VERSION:
            value = _migrate({'version': value})['version']
        return value

    def _check(self) -> None:
        check_dataset_name(self.dataset)
        if self.channels is not None and not self.channels.strip():
            raise ValueError('config key "channels" must be a channel code such as "r|g|b" or '
                             'null, got ""')
        if isinstance(self.window_dims, tuple) and min(self.window_dims) <= 0:
            raise ValueError(f'config key "window_dims" must be positive, got {self.window_dims}')
        if min(self.pad) < 0:
            raise ValueError(f'config key "pad" must not be negative, got {self.pad}')
        if isinstance(self.pad_value, float) and not math.isfinite(self.pad_value) \
                and self.pad_mode == 'constant' and not math.isnan(self.pad_value):
            raise ValueError(f'config key "pad_value" must be finite or NaN, got {self.pad_value}')
        if not math.isfinite(self.neg_to_pos_ratio):
            raise ValueError(f'config key "neg_to_pos_ratio" must be finite, '
                             f'got {self.neg_to_pos_ratio}')
        if min(self.split_block) <= 0:
            raise ValueError(f'config key "split_block" must be positive, got {self.split_block}')
        self._check_class_weights()
        fixed = isinstance(self.window_dims, tuple)
        for key in ('window_size_range', 'output_dims'):
            if getattr(self, key) is not None and not fixed:
                raise ValueError(f'config key "{key}" needs window_dims [height, width] (the '
                                 f'largest window), got window_dims={self.window_dims!r}')
        if self.window_size_range is not None and \
                self.window_size_range[1] > min(self.window_dims):
            raise ValueError(f'config key "window_size_range" must fit in window_dims (the '
                             f'largest window, used by the pools and splits): its max '
                             f'{self.window_size_range[1]} > min(window_dims)='
                             f'{min(self.window_dims)}; raise window_dims')
        self._check_time()
        if self.resolution is not None:
            for key in ('scale', 'output_dims'):
                if getattr(self, key) is not None:
                    raise ValueError(f'config keys "resolution" and "{key}" are exclusive '
                                     f'(resolution sets the scale of each image), got '
                                     f'{key}={getattr(self, key)!r}')
        if self.output_dims is not None:
            for key in ('scale', 'scale_range'):
                if getattr(self, key) is not None:
                    raise ValueError(f'config keys "output_dims" and "{key}" are exclusive '
                                     f'(output_dims fixes the scale of each item), got '
                                     f'{key}={getattr(self, key)!r}')
        if self.mode == 'grid' and not isinstance(self.window_dims, tuple):
            raise ValueError(f'config key "window_dims" must be [height, width] when mode is '
                             f'"grid", got {self.window_dims!r}')

    def _check_time(self) -> None:
        """The ``time_*`` fields: sampling and span need ``time_steps``; a span is at least
        ``time_steps`` frames and means something for uniform / random only."""
        if self.time_steps is None:
            for key, default in (('time_sampling', 'contiguous'), ('time_span', None)):
                if getattr(self, key) != default:
                    raise ValueError(f'config key "{key}" needs time_steps (frames per item), '
                                     f'got {key}={getattr(self, key)!r} with time_steps=null')
            return
        if self.split_by in ('image', 'block'):
            raise ValueError(f'config key "time_steps" reads other frames of the pool window\'s '
                             f'video, which split_by="{self.split_by}" may give to the other '
                             f'subset (train and val would share pixels): use split_by "video" '
                             f'(or "none"), got time_steps={self.time_steps}')
        if self.time_span is None:
            return
        if self.time_sampling == 'contiguous':
            raise ValueError(f'config key "time_span" is used by time_sampling "uniform" and '
                             f'"random"; "contiguous" reads time_steps consecutive frames: set '
                             f'time_span to null, got time_span={self.time_span}')
        if self.time_span < self.time_steps:
            raise ValueError(f'config key "time_span" must hold time_steps={self.time_steps} '
                             f'distinct frames, got time_span={self.time_span}')

    def _check_class_weights(self) -> None:
        for name, weight in self.class_weights.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f'config key "class_weights" must map category names to '
                                f'weights, got the key {name!r}')
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise TypeError(f'config key "class_weights" must hold numbers, got '
                                f'{name!r}: {weight!r}')
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f'config key "class_weights" must hold finite weights >= 0, '
                                 f'got {name!r}: {weight!r}')
        if self.balance == 'weights' and not any(w > 0 for w in self.class_weights.values()):
            raise ValueError('config key "class_weights" needs at least one weight > 0 when '
                             'balance is "weights"')

    def validate(self) -> None:
        """Check the cross-field rules again (after parameters were set one by one).

        Raises:
            ValueError / TypeError: naming the key.
        """
        self._check()

    # ------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field (tuples as lists)."""
        out = {}
        for key in self.FIELDS:
            value = getattr(self, key)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, list):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> 'SamplingConfig':
        """Validate and build a config from a dict (e.g. parsed YAML).

        Raises:
            KeyError: an unknown key.
            TypeError: a value of the wrong type.
            ValueError: a value out of range, or a newer version.
        """
        if not isinstance(data, dict):
            raise TypeError(f'a config must be a mapping of keys to values, got {type(data).__name__}')
        bad = [k for k in data if not isinstance(k, str)]
        if bad:
            raise KeyError(f'unknown config key(s) {bad!r}: keys must be strings; known keys: '
                           f'{list(cls.FIELDS)}')
        try:
            data = _migrate(data)
            data.pop('version')
            return cls(**data)
        except (KeyError, TypeError, ValueError) as ex:   # never print a huge value
            msg = str(ex.args[0]) if ex.args else str(ex)
            if len(msg) <= MAX_MESSAGE_CHARS:
                raise
            raise type(ex)(_shorten(msg)) from None

    def dump(self, path: str | os.PathLike) -> None:
        """Write the config as YAML (``.yaml`` / ``.yml``) or JSON (anything else).

        The file is written under a temporary name and renamed into place.
        """
        path = Path(path)
        text = self.dumps(fmt='json' if path.suffix.lower() == '.json' else 'yaml')
        tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
        tmp.write_text(text, encoding='utf8')
        os.replace(tmp, path)

    def dumps(self, fmt: str = 'yaml') -> str:
        """The config as YAML or JSON text.

        YAML strings that a YAML 1.1 or 1.2 reader would take for another value
        (``'1e5'``, ``'09'``, ``'no'``) are quoted, so :meth:`loads` and other
        YAML readers read back what was written.
        """
        data = self.to_dict()
        if fmt == 'json':
            return json.dumps(data, indent=2, ensure_ascii=False) + '\n'
        if fmt != 'yaml':
            raise ValueError(f'unknown config format {fmt!r}; use "yaml" or "json"')
        import yaml
        header = '# sampler-explorer sampling config; load with SamplingConfig.load(path)\n'
        return header + yaml.dump(data, Dumper=_config_yaml()[1], sort_keys=False,
                                  allow_unicode=True)

    @classmethod
    def loads(cls, text: str, relative_to: str | os.PathLike | None = None) -> 'SamplingConfig':
        r"""Parse YAML or JSON text (JSON is YAML).

        The text is checked before anything is built from it: at most
        :data:`MAX_CONFIG_CHARS` characters, no YAML anchors / aliases (``&a`` /
        ``*a``: a config never needs them, and a few hundred bytes of them
        expand to gigabytes), no mapping or list nested deeper than
        :data:`MAX_CONFIG_DEPTH`, no key given twice. Numbers follow YAML 1.2
        (``1e-3`` is a float).

        Args:
            text: the YAML / JSON text.
            relative_to: folder a relative ``dataset`` path is resolved against
                (:meth:`load` gives the config file's folder); ``None`` leaves it
                relative (to the working directory of whoever opens it).

        Raises:
            ValueError: text that is not YAML / JSON, too long, too deep, with
                aliases or duplicate keys (naming the line or key).
            KeyError / TypeError / ValueError: a bad key or value (see :meth:`from_dict`).

        Example:
            >>> cfg = SamplingConfig.loads('dataset: data/a.kwcoco.json\nvisible_thresh: 1e-3\n',
            ...                            relative_to='/proj/configs')
            >>> cfg.dataset, cfg.visible_thresh
            ('/proj/configs/data/a.kwcoco.json', 0.001)
            >>> SamplingConfig.loads('seed: 1\nseed: 2\n')
            Traceback (most recent call last):
            ValueError: config is not valid YAML/JSON: the key 'seed' appears twice (line 2)
        """
        data = _parse_config_text(text)
        if relative_to is not None and isinstance(data, dict):
            data = dict(data)
            data['dataset'] = _resolve_dataset(data.get('dataset'), relative_to)
            if data['dataset'] is None:
                data.pop('dataset')
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> 'SamplingConfig':
        """Read a config file written by :meth:`dump` (or by hand).

        A relative ``dataset`` path in the file is relative to the file's folder
        (not to the working directory); the loaded config holds it as an
        absolute path, so :meth:`dumps` of it means the same file from anywhere.
        Demo keys stay as they are.

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: a folder, a file larger than a config can be, text
                that is not UTF-8 (each naming the file), or bad content
                (see :meth:`loads`).
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f'config file does not exist: {path}')
        if path.is_dir():
            raise ValueError(f'config path is a folder, not a file: {path}')
        size = path.stat().st_size
        if size > 4 * MAX_CONFIG_CHARS:   # UTF-8: at most 4 bytes a character
            raise ValueError(f'config file {path} is {size} bytes, more than a config may '
                             f'hold ({MAX_CONFIG_CHARS} characters)')
        try:
            text = path.read_text(encoding='utf8')
        except UnicodeDecodeError as ex:
            raise ValueError(f'config file {path} is not UTF-8 text ({ex.reason} at byte '
                             f'{ex.start})') from None
        return cls.loads(text, relative_to=os.path.abspath(path.parent))

    # ------------------------------------------------------------ use
    def target_extra(self) -> dict:
        """The target keys this config adds to every pool target."""
        extra = {'pad': tuple(self.pad), 'padkw': {'mode': self.pad_mode}}
        if self.pad_mode == 'constant':
            extra['padkw']['constant_values'] = self.pad_value
        if self.window_dims is not None:
            extra['window_dims'] = self.window_dims   # (h, w) tuple or 'square'
        if self.scale is not None:
            extra['scale'] = self.scale
        if self.channels is not None:
            extra['channels'] = self.channels
        return extra

    def item_target(self, index: int, epoch: int = 0) -> dict:
        """The target keys drawn for pool item ``index`` in ``epoch`` (training options).

        Each option draws from its own stream, ``numpy.random.default_rng([seed, epoch,
        index, k])`` (``k`` numbers the option), so an item is read the same way in
        every process and run, and turning one option on leaves the others' draws alone.
        ``load_item(index, epoch=e)``, ``SampleDataset`` (the item's pool index and its
        epoch) and ``export-chips`` (epoch 0) read the same windows.

        * ``scale_range: [a, b]``: ``scale`` times a factor drawn uniformly in ``[a, b]``
          (both axes).
        * ``window_size_range: [a, b]``: ``window_dims = (s, s)``, ``s`` drawn uniformly
          among the whole numbers ``a..b``; the window is centred on the pool target
          (the window rule), so it lies inside the pool's ``window_dims`` window.
        * ``output_dims: [h, w]``: ``scale = (h / H, w / W)``, ``H x W`` the padded
          window, nudged down by at most a few ulps so the sample is exactly ``h x w``.

        Args:
            index: pool index (positives, then negatives), >= 0.
            epoch: the epoch, >= 0.

        Returns:
            target keys to update the pool target with (empty when no option is on).

        Example:
            >>> cfg = SamplingConfig(scale_range=[0.5, 2.0], seed=3)
            >>> s = cfg.item_target(7, epoch=1)['scale']
            >>> 0.5 <= s <= 2.0, s == cfg.item_target(7, epoch=1)['scale']
            (True, True)
            >>> SamplingConfig().item_target(7)
            {}
        """
        import numpy as np
        index, epoch = int(index), int(epoch)
        if index < 0 or epoch < 0:
            raise ValueError(f'item_target needs index >= 0 and epoch >= 0, got index={index}, '
                             f'epoch={epoch}')
        out = {}
        if self.scale_range is not None:
            lo, hi = self.scale_range
            rng = np.random.default_rng([self.seed, epoch, index, _STREAM_SCALE])
            factor = float(lo + (hi - lo) * rng.random()) if hi > lo else float(lo)
            base = self.scale if self.scale is not None else 1.0
            out['scale'] = tuple(b * factor for b in base) if isinstance(base, tuple) \
                else base * factor
        dims = self.window_dims
        if self.window_size_range is not None:
            lo, hi = self.window_size_range
            rng = np.random.default_rng([self.seed, epoch, index, _STREAM_SIZE])
            side = int(rng.integers(lo, hi + 1))
            dims = out['window_dims'] = (side, side)
        if self.output_dims is not None:
            out['scale'] = tuple(_fit_scale(o, d + 2 * p)
                                 for o, d, p in zip(self.output_dims, dims, self.pad))
        return out

    def time_rng(self, index: int, epoch: int = 0):
        """The random stream of item ``index``'s frames in ``epoch`` (``time_sampling:
        random``): ``numpy.random.default_rng([seed, epoch, index, 2])``, like the other
        per-item draws of :meth:`item_target`.

        Example:
            >>> cfg = SamplingConfig(seed=4)
            >>> cfg.time_rng(3, 1).random() == cfg.time_rng(3, 1).random()
            True
        """
        import numpy as np
        return np.random.default_rng([self.seed, int(epoch), int(index), _STREAM_TIME])

    def category_ids(self, dset) -> list[int] | None:
        """Ids of :attr:`categories` in ``dset`` (``None``: all categories).

        Raises:
            KeyError: a category name the dataset does not have.
        """
        if not self.categories:
            return None
        unknown = [c for c in self.categories if c not in dset.name_to_cat]
        if unknown:
            raise KeyError(f'config key "categories" names unknown categories {unknown}; '
                           f'the dataset has {sorted(dset.name_to_cat)}')
        return [dset.name_to_cat[c]['id'] for c in self.categories]

    def balance_arg(self, dset):
        """The ``balance`` argument of ``preselect``: ``None``, ``'inverse'`` or ``{id: w}``.

        Raises:
            KeyError: ``class_weights`` names a category the dataset does not have.
        """
        if self.balance == 'none':
            return None
        if self.balance == 'inverse':
            return 'inverse'
        unknown = [c for c in self.class_weights if c not in dset.name_to_cat]
        if unknown:
            raise KeyError(f'config key "class_weights" names unknown categories {unknown}; '
                           f'the dataset has {sorted(dset.name_to_cat)}')
        return {cat['id']: float(self.class_weights.get(name, 1.0))
                for name, cat in dset.name_to_cat.items()}

    def split_selector(self, dset, subset: str | None = 'train'):
        """The :class:`~sampler_core.split.SubsetSelector` of ``subset`` (``None``: no split).

        Args:
            dset (kwcoco.CocoDataset): the dataset.
            subset: ``'train'``, ``'val'``, or ``None`` for every window
                regardless of the split.

        Raises:
            ValueError: an unknown subset, or ``'val'`` when ``split_by`` is ``'none'``.
        """
        from sampler_core.split import Split
        if subset not in (None, 'train', 'val'):
            raise ValueError(f"subset must be 'train', 'val' or None, got {subset!r}")
        split = Split.from_config(self)
        if split is None:
            if subset == 'val':
                raise ValueError('config key "split_by" is "none": there is no "val" subset; '
                                 'set split_by to image, video or block')
            return None
        if subset is None:
            return None
        return split.select(dset, subset, pad=tuple(self.pad))

    def preselect_kwargs(self, dset, subset: str | None = 'train') -> dict:
        """Keyword arguments of ``CocoRegions.preselect`` that build this config's pools.

        Example:
            >>> import kwcoco
            >>> dset = kwcoco.CocoDataset.demo('shapes8')
            >>> cfg = SamplingConfig(n_pos=4, balance='inverse', split_by='image')
            >>> kw = cfg.preselect_kwargs(dset, 'val')
            >>> kw['balance'], kw['split'].name, kw['n_pos']
            ('inverse', 'val', 4)
        """
        n_neg = self.n_neg
        return dict(
            n_pos=self.n_pos, n_neg=n_neg,
            neg_to_pos_ratio=self.neg_to_pos_ratio if n_neg is None else None,
            window_dims=self.window_dims, rng=self.seed, thresh=self.neg_overlap,
            category_ids=self.category_ids(dset), balance=self.balance_arg(dset),
            split=self.split_selector(dset, subset),
            max_nodata_fraction=self.max_nodata_fraction, pad=tuple(self.pad))

    def check_dataset(self, dset, allow_hash_mismatch: bool = False) -> str:
        """Compare ``dataset_hash`` with the dataset's current hash; return the latter.

        Raises:
            ValueError: the hashes differ (a warning with ``allow_hash_mismatch``);
                the message names the dataset, shows both hashes shortened and
                says what to do.

        Example:
            >>> import kwcoco
            >>> cfg = SamplingConfig(dataset='shapes8', dataset_hash='ab' * 64)
            >>> cfg.check_dataset(kwcoco.CocoDataset.demo('shapes8'))
            Traceback (most recent call last):
            ValueError: dataset 'shapes8' changed since this config was made: ...
        """
        current = dataset_hash(dset)
        if self.dataset_hash is not None and self.dataset_hash != current:
            msg = (f'dataset {self.dataset!r} changed since this config was made: its content '
                   f'hash is now {_short_hash(current)}, the config\'s "dataset_hash" is '
                   f'{_short_hash(self.dataset_hash)} (annotations, images or categories were '
                   f'edited, or the file was replaced)')
            from sampler_core.demo import demo_key
            if demo_key(self.dataset):
                msg += (f'; {self.dataset!r} is a demo generated on first use into '
                        f'{os.path.dirname(dset.fpath) if dset.fpath else "its folder"}: '
                        f'another kwcoco version may draw other content')
            if allow_hash_mismatch:
                warnings.warn(msg + '; using it anyway (allow_hash_mismatch=True)')
            else:
                raise ValueError(msg + '. Re-export the config from the current dataset (or '
                                 'set its dataset_hash to null), or pass '
                                 'allow_hash_mismatch=True to use the changed dataset anyway')
        return current


#: the random stream of each per-item option (:meth:`SamplingConfig.item_target`)
_STREAM_SCALE, _STREAM_SIZE, _STREAM_TIME = 0, 1, 2


def _fit_scale(out: int, size: int) -> float:
    """The scale that reads ``size`` pixels as exactly ``out``: ``out / size``, nudged down
    while ``ceil(size * scale)`` (how delayed_image sizes a scaled window) exceeds ``out``.

    Example:
        >>> import math
        >>> all(math.ceil(size * _fit_scale(out, size)) == out
        ...     for size in range(1, 300) for out in (1, 57, 100, 256))
        True
    """
    scale = out / size
    while math.ceil(size * scale) > out:
        scale = math.nextafter(scale, 0.0)
    return scale


def _coerce_range(value: Any, key: str, whole: bool, ordered: bool = True) -> tuple | None:
    """``[min, max]`` fields: None, or a pair of positive finite numbers with min <= max
    (whole numbers for pixel sizes; any order when not ``ordered``)."""
    if value is None:
        return None
    kind = 'whole numbers of pixels' if whole else 'numbers'
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise TypeError(f'config key "{key}" must be null or [min, max] ({kind}), got {value!r}')
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                (whole and not float(v).is_integer()):
            raise TypeError(f'config key "{key}" must hold {kind}, got {value!r}')
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f'config key "{key}" must hold positive finite values, got {value!r}')
    if ordered and value[0] > value[1]:
        raise ValueError(f'config key "{key}" must be [min, max] with min <= max, got {value!r}')
    return tuple(int(v) for v in value) if whole else tuple(float(v) for v in value)


def _coerce_scale(value: Any) -> float | tuple[float, float] | None:
    """``scale``: None, a positive factor, or a ``(sy, sx)`` pair of them."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        pair = tuple(_coerce_scale(v) for v in value)
        if None in pair:
            raise TypeError(f'config key "scale" must be a number or [sy, sx], got {value!r}')
        return pair
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'config key "scale" must be null, a number or [sy, sx], got {value!r}')
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f'config key "scale" must be positive and finite, got {value!r}')
    return float(value)


def dataset_hash(dset) -> str:
    """Content hash of a kwcoco dataset's images, annotations and categories."""
    return dset._build_hashid(hash_pixels=False)


def _typed_error(ex: ValueError) -> Exception:
    """Param raises ValueError for wrong types too; give those back as TypeError."""
    msg = str(ex)
    if isinstance(ex, TypeError):
        return TypeError(msg)
    if 'must be' in msg and ('type' in msg or 'not of' in msg or 'instance' in msg
                             or ', not <class' in msg) \
            and 'bound' not in msg and not re.search(r'\blength\b', msg.lower()):
        return TypeError(msg)
    return ValueError(msg)


# ---------------------------------------------------------------- reading config text
#: longest config text read, in characters (a config is about 1 KB)
MAX_CONFIG_CHARS = 1_000_000
#: deepest nesting of mappings / lists in a config text (a config needs 2)
MAX_CONFIG_DEPTH = 8
#: longest error message about a config value (longer ones are cut in the middle)
MAX_MESSAGE_CHARS = 400
#: the YAML 1.2 core schema: tag -> (pattern of plain scalars, their possible first characters).
#: PyYAML reads YAML 1.1, where ``1e-3`` is a string, ``010`` is 8, ``1:30`` is 90, ``no`` /
#: ``on`` are booleans and ``2020-01-01`` a date
_YAML12_RESOLVERS = {
    'tag:yaml.org,2002:null': (r'^(?:~|null|Null|NULL|)$', ['~', 'n', 'N', '']),
    'tag:yaml.org,2002:bool': (r'^(?:true|True|TRUE|false|False|FALSE)$', list('tTfF')),
    'tag:yaml.org,2002:int': (r'^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$',
                              list('-+0123456789')),
    'tag:yaml.org,2002:float': (r'^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?'
                                r'|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$',
                                list('-+0123456789.')),
    'tag:yaml.org,2002:merge': (r'^(?:<<)$', ['<']),   # found, then refused
}


def check_dataset_name(text: str, what: str = 'config key "dataset"') -> str:
    """Refuse a dataset name that cannot be meant: empty, spaces around it, control characters.

    ``"shapes8 "`` would otherwise be read as a file name and ``"shapes8\\0"``
    cut short by the operating system.

    Args:
        text: a demo key or a dataset path.
        what: how the message names the value.

    Returns:
        ``text`` unchanged.

    Raises:
        ValueError: naming the value.

    Example:
        >>> check_dataset_name('shapes8')
        'shapes8'
        >>> check_dataset_name('shapes8 ')
        Traceback (most recent call last):
        ValueError: config key "dataset" starts or ends with white space: 'shapes8 '; ...
    """
    import unicodedata
    if not text:
        raise ValueError(f'{what} must name a dataset file or demo key, got ""')
    bad = sorted({c for c in text if unicodedata.category(c) in ('Cc', 'Cs')})
    if bad:
        raise ValueError(f'{what} holds the control character(s) {bad}: {_short(text)}')
    if text != text.strip():
        raise ValueError(f'{what} starts or ends with white space: {_short(text)}; did you '
                         f'mean {_short(text.strip())}?')
    return text


def _resolve_dataset(dataset: Any, folder: str | os.PathLike) -> Any:
    """A relative dataset path made absolute against ``folder``; other values unchanged."""
    from sampler_core.demo import demo_key
    if not isinstance(dataset, str) or not dataset or demo_key(dataset) \
            or os.path.isabs(dataset):
        return dataset
    try:
        check_dataset_name(dataset)
    except ValueError:
        return dataset   # refused by the config check, with the value as written
    return os.path.normpath(os.path.join(os.fspath(folder), dataset))


def _parse_config_text(text: str) -> Any:
    """The data of YAML / JSON config text, checked before it is built (see ``loads``)."""
    if not isinstance(text, str):
        raise TypeError(f'config text must be a str, got {type(text).__name__}')
    if len(text) > MAX_CONFIG_CHARS:
        raise ValueError(f'config text is {len(text)} characters, more than a config may '
                         f'hold ({MAX_CONFIG_CHARS})')
    if text.lstrip().startswith('{'):
        try:  # JSON proper (YAML reads JSON's surrogate-pair escapes differently)
            data = json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError:
            pass  # YAML flow mapping, or broken: YAML says what is wrong
        except RecursionError:
            raise ValueError(f'config is not valid YAML/JSON: nested deeper than '
                             f'{MAX_CONFIG_DEPTH} levels') from None
        except ValueError as ex:   # e.g. an integer of more digits than Python converts
            if str(ex).startswith('config is not valid'):
                raise
            raise ValueError(f'config is not valid YAML/JSON: {_shorten(str(ex))}') from None
        else:
            _check_depth(data)
            return data
    import yaml
    loader = None
    try:
        loader = _config_yaml()[0](text)
        return loader.get_single_data()
    except yaml.YAMLError as ex:
        raise ValueError(f'config is not valid YAML/JSON: {_shorten(str(ex))}') from None
    except RecursionError:   # pragma: no cover - the depth bound comes first
        raise ValueError(f'config is not valid YAML/JSON: nested deeper than '
                         f'{MAX_CONFIG_DEPTH} levels') from None
    finally:
        if loader is not None:
            loader.dispose()


def _json_object(pairs: list) -> dict:
    """``object_pairs_hook`` of ``json.loads``: refuse a key given twice."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f'config is not valid YAML/JSON: the key {_short(key)} appears '
                             f'twice')
        out[key] = value
    return out


def _check_depth(data: Any) -> None:
    """Refuse JSON data nested deeper than :data:`MAX_CONFIG_DEPTH` (iteratively)."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth + 1 > MAX_CONFIG_DEPTH:
                raise ValueError(f'config is not valid YAML/JSON: nested deeper than '
                                 f'{MAX_CONFIG_DEPTH} levels')
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)


_YAML_CLASSES: tuple = ()


def _config_yaml() -> tuple:
    """``(Loader, Dumper)``: PyYAML's safe ones with the checks of :meth:`SamplingConfig.loads`
    and the YAML 1.2 core schema (built on first use: no yaml import at module import)."""
    global _YAML_CLASSES
    if _YAML_CLASSES:
        return _YAML_CLASSES
    import re

    import yaml

    def line(node_or_event) -> str:
        return f'line {node_or_event.start_mark.line + 1}'

    class ConfigLoader(yaml.SafeLoader):
        """SafeLoader that refuses anchors, aliases, merge keys, duplicate keys and deep
        nesting while composing (before any value is built)."""

        def __init__(self, stream):
            super().__init__(stream)
            self._depth = 0

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, 'anchor', None):
                name = getattr(event, 'anchor', None)
                raise ValueError(f'config is not valid YAML/JSON: YAML anchors and aliases '
                                 f'(&{name} / *{name}) are not allowed in a config '
                                 f'({line(event)})')
            self._depth += 1
            try:
                if self._depth > MAX_CONFIG_DEPTH:
                    raise ValueError(f'config is not valid YAML/JSON: nested deeper than '
                                     f'{MAX_CONFIG_DEPTH} levels ({line(event)})')
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == 'tag:yaml.org,2002:merge':
                    raise ValueError(f'config is not valid YAML/JSON: YAML merge keys (<<) are '
                                     f'not allowed in a config ({line(key_node)})')
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:   # unhashable: PyYAML's own error names it
                    continue
                if duplicate:
                    raise ValueError(f'config is not valid YAML/JSON: the key {_short(key)} '
                                     f'appears twice ({line(key_node)})')
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    class ConfigDumper(yaml.SafeDumper):
        """SafeDumper that also quotes strings a YAML 1.2 reader takes for other values
        (``'1e5'``, ``'09'``), so YAML 1.1 and 1.2 readers both read back what was written."""

    # the loader resolves plain scalars by YAML 1.2 only; the dumper quotes by both
    ConfigLoader.yaml_implicit_resolvers = {}
    for tag, (pattern, first) in _YAML12_RESOLVERS.items():
        ConfigLoader.add_implicit_resolver(tag, re.compile(pattern), first)
        if tag in ('tag:yaml.org,2002:int', 'tag:yaml.org,2002:float'):
            ConfigDumper.add_implicit_resolver(tag, re.compile(pattern), first)

    def construct_int12(loader, node) -> int:
        text = loader.construct_scalar(node)
        sign, body = (-1, text[1:]) if text[:1] == '-' else (1, text.lstrip('+'))
        base = {'0o': 8, '0x': 16}.get(body[:2], 10)
        try:
            return sign * int(body[2:] if base != 10 else body, base)
        except ValueError:   # more digits than Python converts
            raise ValueError(f'config is not valid YAML/JSON: the number {_short(text, 40)} '
                             f'({line(node)}) has too many digits') from None

    ConfigLoader.add_constructor('tag:yaml.org,2002:int', construct_int12)
    _YAML_CLASSES = (ConfigLoader, ConfigDumper)
    return _YAML_CLASSES


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters (never builds a huge repr)."""
    import reprlib
    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 8
    short.maxlevel = 3
    return short.repr(value)


def _shorten(msg: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``msg`` cut in the middle to at most about ``limit`` characters."""
    if len(msg) <= limit:
        return msg
    head, tail = msg[:limit * 2 // 3], msg[-(limit // 3):]
    return f'{head} ...[{len(msg) - len(head) - len(tail)} characters cut]... {tail}'


def _short_hash(value: str) -> str:
    """The first 12 characters of a content hash (enough to tell two apart)."""
    return value[:12] + '...' if isinstance(value, str) and len(value) > 12 else repr(value)
