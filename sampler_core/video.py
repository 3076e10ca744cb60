"""Video, multi-asset and rescaled windows, loaded through delayed_image.

The plain 2-D path of :class:`sampler_core.CocoSampler` crops one image file. This
module handles everything else:

* **video targets** (``vidid``, ``gids``, ``time_slice``, ``slices=(t, y, x)``): the
  window is in *video space* and ``im`` is ``(T, H, W, C)``;
* **multi-asset images** (kwcoco ``auxiliary`` / ``assets``: one file per group of
  channels, each at its own resolution);
* ``channels`` the image does not have, ``scale``, ``use_native_scale``,
  ``interpolation`` / ``antialias``.

Coordinate spaces (all pixels, ``(x, y)`` in transforms, ``(y, x)`` in slices):

* *asset space*: the pixel grid of one file;
* *image space*: the image's grid (``warp_aux_to_img`` maps an asset into it);
* *video space*: the common grid of a video's frames (``warp_img_to_vid``);
* *sample space*: the padded window, scaled by ``scale``: what ``im`` holds and
  what every ``rel_*`` / ``frame_dets`` coordinate refers to.

A 3-D target's window is in video space, a 2-D target's in image space.
``params['frame_sample_from_grid_warps'][i]`` maps that space into sample space
for frame ``i``; annotations go through ``warp_vid_from_img`` first.

Each frame is ``coco_img.imdelay(channels, space)`` (built once per image and
cached, its file leaves reading the ``.npy`` cache of :class:`CocoFrames` instead
of decoding the file), then ``crop(window, clip=False)`` (the part outside the
data is padded: 0 for integers, NaN for floats), then ``warp({'scale': s})``,
then ``optimize().finalize()``. delayed_image does every resampling. With a
``padkw`` other than that fill (``'reflect'``, ``'edge'``, a constant ...), the
part inside the frame is read, ``numpy.pad``-ed exactly as a 2-D window is, and
then scaled; this needs a single-file frame whose image is its sampling space
(see :func:`_mode_padded_frame`).

Channels a frame does not have come back as NaN (the sample is then float32, or
float64 for float64 data); a code naming only channels no image of the dataset
has is a ``KeyError`` when the target is parsed.

Example:
    >>> import sampler_core as ndsampler
    >>> self = ndsampler.CocoSampler.demo('vidshapes1', num_frames=4, image_size=(64, 64))
    >>> sample = self.load_sample({'vidid': 1, 'time_slice': slice(1, 3),
    ...                            'space_slice': (slice(8, 40), slice(0, 48))})
    >>> sample['im'].shape
    (2, 32, 48, 3)
    >>> [dets.meta['gid'] for dets in sample['annots']['frame_dets']]
    [2, 3]
"""
from __future__ import annotations

import math
import numbers
import threading
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np

from sampler_core.target import (CENTER_KEYS, MAX_WINDOW_PIXELS, _is_int, center_target_slices,
                                 coerce_pad, coerce_padkw, coerce_space_slice,
                                 coerce_window_dims, pad_crop)

try:  # pragma: no cover - ubelt is a kwcoco dependency
    from ubelt import NoParam
except ImportError:  # pragma: no cover
    from sampler_core.frames import NoParam

#: interpolation names delayed_image / kwimage accept
INTERPOLATIONS = ('nearest', 'linear', 'cubic', 'area', 'lanczos')

#: keys of a target that make it 3-D
VIDEO_KEYS = ('vidid', 'gids', 'time_slice')

#: how many per-image delayed trees stay cached
MAX_CACHED_TREES = 1024


# --------------------------------------------------------------------------- parsing
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


def _is_multi_asset(img: dict) -> bool:
    return img.get('file_name') is None or bool(img.get('auxiliary')) or bool(img.get('assets'))


# --------------------------------------------------------------------------- state
class _AssetRef:
    """Stands in for a ``DelayedLoad``'s lazy file reference.

    Slicing it reads the asset through :meth:`CocoFrames.load_asset` (a memmap of
    the ``.npy`` cache, or a decode without a backend) and returns a copy; with a
    numeric ``nodata`` the values equal to it become NaN (float32) before any warp.
    """
    ndim = 3
    num_overviews = 0

    def __init__(self, frames, fpath: str, hw, num_bands, nodata):
        self.frames = frames
        self.fpath = fpath
        self.hw = None if hw is None or None in hw else (int(hw[0]), int(hw[1]))
        self.num_bands = num_bands
        self.nodata = nodata
        self.nodata_method = None  # set by DelayedLoad._finalize

    def _load(self) -> np.ndarray:
        return self.frames.load_asset(self.fpath, self.hw)

    @property
    def shape(self) -> tuple[int, int, int]:
        if self.hw is None or self.num_bands is None:
            shape = self._load().shape
            self.hw, self.num_bands = shape[:2], shape[2]
        return (self.hw[0], self.hw[1], self.num_bands)

    @property
    def dtype(self):
        return np.dtype(np.float32) if self.nodata is not None else self._load().dtype

    def __getitem__(self, index) -> np.ndarray:
        out = self._load()[index]
        if self.nodata is None:
            return np.array(out)
        out = np.array(out, dtype=np.float32)
        if not isinstance(self.nodata, str):
            out[out == self.nodata] = np.nan
        return out

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class _DelayedState:
    """Per-frames caches: delayed trees per image, channel names, warnings given."""

    def __init__(self, frames):
        self.frames = frames
        self.trees: OrderedDict = OrderedDict()
        self.image_channels: dict = {}
        self.num_bands: dict = {}
        self._dataset_channels = None
        self._dataset_key = None
        self.warned: set = set()
        self.checked: set = set()
        self.vid_warps: dict = {}
        self.lock = threading.Lock()

    def __getstate__(self):
        return {'frames': self.frames}

    def __setstate__(self, state):
        self.__init__(state['frames'])

    @property
    def dset(self):
        return self.frames.dset

    # ------------------------------------------------------------ channels
    def band_count(self, gid) -> int:
        """Number of bands of a single-file image (cache header / memmap)."""
        try:
            return self.num_bands[gid]
        except KeyError:
            pass
        frames = self.frames
        if frames.backend is not None:
            n = int(frames._data(gid).shape[2])
        else:
            import kwimage
            fpath = frames._lookup_gpath(gid)
            try:
                shape = kwimage.load_image_shape(fpath)
            except Exception:
                shape = frames._read_source(gid).shape
            n = 1 if len(shape) == 2 else int(shape[2])
        self.num_bands[gid] = n
        return n

    def channel_names(self, gid) -> list[str]:
        """Normalised channel names of an image (all its assets), in asset order."""
        try:
            return self.image_channels[gid]
        except KeyError:
            pass
        from delayed_image.channel_spec import FusedChannelSpec
        img = self.dset.imgs[gid]
        if _is_multi_asset(img):
            names = []
            for obj in self._asset_objs(img):
                if obj.get('channels') is not None:
                    names.extend(_code_names(obj['channels']))
        elif img.get('channels') is not None:
            names = _code_names(img['channels'])
        else:
            code = self.frames._lookup_channels(gid, self.band_count(gid))
            names = FusedChannelSpec.coerce(code).normalize().as_list()
        self.image_channels[gid] = names
        return names

    @staticmethod
    def _asset_objs(img):
        objs = []
        if img.get('file_name') is not None:
            objs.append({'file_name': img['file_name'], 'channels': img.get('channels')})
        objs.extend(img.get('auxiliary', None) or [])
        objs.extend(img.get('assets', None) or [])
        return objs

    def dataset_channels(self) -> set | None:
        """All channel names of the dataset, ``None`` when some image declares none."""
        dset = self.dset
        key = (id(dset.imgs), len(dset.imgs))
        if self._dataset_key == key:
            return self._dataset_channels
        known: set = set()
        memo: dict = {}
        undeclared = False
        for img in dset.imgs.values():
            objs = self._asset_objs(img)
            if not objs:
                continue
            for obj in objs:
                code = obj.get('channels')
                if code is None:
                    undeclared = True
                    continue
                if code not in memo:
                    memo[code] = _code_names(code)
                known.update(memo[code])
        self._dataset_channels = None if undeclared else known
        self._dataset_key = key
        return self._dataset_channels

    def check_known(self, spec) -> None:
        """Raise when none of ``spec``'s channels exists in the dataset; warn on some."""
        if spec is None:
            return
        known = self.dataset_channels()
        if known is None:
            return
        key = (self._dataset_key, spec.spec)
        if key in self.checked:
            return
        names = spec.as_list()
        missing = [n for n in names if n not in known]
        if len(missing) == len(names):
            raise KeyError(f'channels {spec.spec!r}: no image of this dataset has any of them; '
                           f'the dataset has {sorted(known)}')
        if missing and spec.spec not in self.warned:
            self.warned.add(spec.spec)
            warnings.warn(f'channels {missing} of {spec.spec!r} exist in no image of the '
                          f'dataset; they come back as nodata (NaN)')
        self.checked.add(key)

    def vid_warp(self, gid):
        """``(warp_vid_from_img, its inverse)`` as 3x3 arrays, ``(None, None)`` for identity."""
        try:
            return self.vid_warps[gid]
        except KeyError:
            pass
        m = np.asarray(_warp_vid_from_img(self.dset, gid).matrix, dtype=np.float64)
        out = (None, None) if np.array_equal(m, np.eye(3)) else (m, np.linalg.inv(m))
        self.vid_warps[gid] = out
        return out

    # ------------------------------------------------------------ trees
    def coco_image(self, gid):
        """``kwcoco.CocoImage`` of ``gid``; undeclared channels get default names."""
        import kwcoco
        img = self.dset.imgs[gid]
        if not _is_multi_asset(img) and img.get('channels') is None:
            img = dict(img)
            img['channels'] = '|'.join(self.channel_names(gid))
        return kwcoco.CocoImage(img, dset=self.dset)

    def tree(self, gid, spec, space: str, interpolation: str, antialias: bool, nodata):
        """The (prepared) ``imdelay`` tree of an image, its file leaves bound to our cache."""
        key = (gid, None if spec is None else spec.spec, space, interpolation, antialias,
               _hashable(nodata))
        trees = self.trees
        with self.lock:
            tree = trees.get(key)
            if tree is not None:
                trees.move_to_end(key)
                return tree
        from delayed_image.delayed_leafs import DelayedLoad
        coco_img = self.coco_image(gid)
        tree = coco_img.imdelay(channels=spec, space=space, interpolation=interpolation,
                                antialias=antialias)
        for path in list(tree._leaf_paths()):
            leaf = path[0]
            if isinstance(leaf, DelayedLoad) and leaf.lazy_ref is None:
                dsize = leaf.meta.get('dsize', None)
                hw = None if dsize is None else (dsize[1], dsize[0])
                chans = leaf.meta.get('channels', None)
                num_bands = None if chans is None else chans.numel()
                leaf.lazy_ref = _AssetRef(self.frames, str(leaf.fpath), hw, num_bands, nodata)
                leaf.meta['num_overviews'] = 0
        tree = tree.prepare()
        with self.lock:
            trees[key] = tree
            while len(trees) > MAX_CACHED_TREES:
                trees.popitem(last=False)
        return tree


def _safe_nearest_warp_cls():
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
        from delayed_image.delayed_leafs import DelayedIdentity
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
                tx, ty = (float(v) for v in params.get('offset', (0, 0)))
                out_w, out_h = (int(v) for v in self.dsize)
                in_h, in_w = prewarp.shape[0:2]
                yi = np.floor((np.arange(out_h) - ty) / sy).astype(np.int64)
                xi = np.floor((np.arange(out_w) - tx) / sx).astype(np.int64)
                inside = (out_h == 0 or (yi.min() >= 0 and yi.max() < in_h)) and \
                    (out_w == 0 or (xi.min() >= 0 and xi.max() < in_w))
                # without a translation delayed_image resizes the input to the output
                # size: exact only when the output is the input times the scale
                stretches = tx == 0 and ty == 0 and (in_w * sx != out_w or in_h * sy != out_h)
                if inside and not stretches:
                    node = DelayedWarp(DelayedIdentity(prewarp, channels=self.channels),
                                       transform, dsize=self.dsize, antialias=meta['antialias'],
                                       interpolation='nearest',
                                       border_value=meta['border_value'],
                                       noop_eps=meta['noop_eps'], backend=meta['backend'])
                    return DelayedWarp._finalize(node)
                border = meta['border_value']
                if isinstance(border, str):
                    border = np.nan if prewarp.dtype.kind == 'f' else 0
                data = np.asarray(prewarp)
                if data.ndim == 2:
                    data = data[:, :, None]
                out = np.full((out_h, out_w, data.shape[2]), border, dtype=data.dtype)
                vy = (yi >= 0) & (yi < in_h)
                vx = (xi >= 0) & (xi < in_w)
                if vy.any() and vx.any():
                    out[np.ix_(vy, vx)] = data[np.ix_(yi[vy], xi[vx])]
                return out

        _SAFE_NEAREST_WARP = SafeNearestWarp
    return _SAFE_NEAREST_WARP


_SAFE_NEAREST_WARP = None


def _set_warp_params(node, interpolation: str, antialias: bool) -> None:
    """Set ``interpolation`` / ``antialias`` on every node of a tree that has them.

    What delayed_image's ``_set_nested_params`` does, in one walk that also makes
    every nearest ``DelayedWarp`` a safe one (see :func:`_safe_nearest_warp_cls`).
    """
    from delayed_image.delayed_nodes import DelayedWarp
    safe = _safe_nearest_warp_cls() if interpolation == 'nearest' else None
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


def _finalize(node, interpolation: str, antialias: bool) -> np.ndarray:
    """``node.finalize`` of an optimised tree (nearest warps guarded)."""
    # the nested parameters ndsampler passes to finalize (optimize may reset them), and
    # nearest warps guarded
    _set_warp_params(node, interpolation, antialias)
    return np.asarray(node.finalize(prepare=False, optimize=False))


def _hashable(value):
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


def _code_names(code) -> list[str]:
    from delayed_image.channel_spec import ChannelSpec
    return ChannelSpec.coerce(code).fuse().normalize().as_list()


def _state(frames) -> _DelayedState:
    state = frames.__dict__.get('_delayed_state', None)
    if state is None:
        state = _DelayedState(frames)
        frames._delayed_state = state
    return state


# --------------------------------------------------------------------------- targets
def _warp_vid_from_img(dset, gid):
    import kwimage
    warp = dset.imgs[gid].get('warp_img_to_vid', None)
    return kwimage.Affine.eye() if warp is None else kwimage.Affine.coerce(warp)


def _norm_time_slice(time_slice, n_frames: int) -> slice:
    if time_slice is None:
        time_slice = slice(0, n_frames)
    elif _is_int(time_slice):
        time_slice = slice(int(time_slice), int(time_slice) + 1)
    if not isinstance(time_slice, slice):
        raise TypeError(f'time_slice must be a slice of frame indices, got {time_slice!r}')
    start = 0 if time_slice.start is None else time_slice.start
    stop = n_frames if time_slice.stop is None else time_slice.stop
    step = 1 if time_slice.step is None else time_slice.step
    if not (_is_int(start) and _is_int(stop) and _is_int(step)):
        raise ValueError(f'time_slice bounds must be integers, got {time_slice!r}')
    if step < 1:
        raise ValueError(f'time_slice step must be a positive integer, got {time_slice!r}')
    if stop <= start:
        raise ValueError(f'time_slice must hold at least one frame, got {time_slice!r}')
    return slice(int(start), int(stop), None if step == 1 else int(step))


def _coerce_video_pad(pad) -> tuple[tuple[int, int], tuple[tuple[int, int], tuple[int, int]]]:
    """``pad`` of a 3-D target: ``(ph, pw)`` or ``(pt, ph, pw)`` -> (time, space)."""
    if pad is None or _is_int(pad):
        space = coerce_pad(pad)
        return ((space[0][0],) * 2 if _is_int(pad) else (0, 0)), space
    items = list(pad)
    if len(items) == 3:
        full = coerce_pad(items, ndim=3)
        return full[0], full[1:]
    return (0, 0), coerce_pad(items)


def infer_video_target(sampler, t: dict) -> dict:
    """Resolve a 3-D target (``vidid`` / ``gids`` / ``time_slice``) in place.

    Fills ``vidid``, ``gids`` (the real frames, in order), ``time_slice``,
    ``space_slice``, ``slices = (time_slice, y, x)``, ``space_dims`` /
    ``data_dims`` (video space), ``window_dims`` ((h, w)) and ``padkw``.

    * ``vidid`` alone: every frame; with ``time_slice`` (frame indices, may
      reach outside the video: those frames are padding) the frames it selects.
    * ``gids``: exactly these frames (one video); a ``time_slice`` given with
      them that selects the same frames may extend past the video (padding).
    * ``gid`` / ``aid`` with ``time_slice``: the frames of the image's video.
    * The window: ``space_slice`` / ``slices[1:]``, or ``cx, cy, width,
      height`` (+ ``window_dims``) in video space (an ``aid``'s box is warped
      into video space), or the whole video frame.
    * ``pad``: ``(ph, pw)`` or ``(pt, ph, pw)``; time padding needs frames
      defined by ``time_slice``.

    Raises:
        KeyError: unknown video, image, annotation or channel.
        ValueError: gids from several videos, an empty time slice, conflicting
            window sizes, bad pad / scale / interpolation / channels.

    Example:
        >>> import sampler_core as ndsampler
        >>> self = ndsampler.CocoSampler.demo('vidshapes1', num_frames=5, image_size=(64, 64))
        >>> t = self._infer_target_attributes({'vidid': 1, 'time_slice': slice(3, 7)})
        >>> t['gids'], t['slices'][0], t['data_dims']
        ([4, 5], slice(3, 7, None), (5, 64, 64))
    """
    dset = sampler.dset
    vidid, gids, time_slice = t.get('vidid'), t.get('gids'), t.get('time_slice')
    slices = t.get('slices', None)
    space_slice = t.get('space_slice', None)
    if slices is not None:
        slices = tuple(slices)
        if len(slices) == 3:
            if time_slice is None and gids is None:
                time_slice = slices[0]
            if space_slice is None:
                space_slice = slices[1:]
        elif len(slices) == 2:
            if space_slice is None:
                space_slice = slices
        else:
            raise ValueError(f'video targets need slices=(t, y, x) or (y, x), got {slices!r}')

    aid = t.get('aid', None)
    ann = None
    if aid is not None and aid != -1:
        try:
            ann = dset.anns[aid]
        except (KeyError, TypeError):
            raise KeyError(f'unknown annotation id {aid!r}') from None
        if t.get('gid') is None:
            t['gid'] = ann['image_id']
        t.setdefault('category_id', ann['category_id'])
    gid = t.get('gid', None)
    if gid is not None and gid not in dset.imgs:
        raise KeyError(f'unknown image id {gid!r}')

    if gids is not None:
        if _is_int(gids):
            gids = [gids]
        gids = list(gids)
        if not gids:
            raise ValueError('target gids must name at least one image')
        for g in gids:
            if g not in dset.imgs:
                raise KeyError(f'unknown image id {g!r}')
        vidids = {dset.imgs[g].get('video_id', None) for g in gids}
        if len(vidids) > 1:
            raise ValueError(f'target gids {gids} belong to several videos '
                             f'{sorted(vidids, key=str)}')
        gid_vidid = vidids.pop()
        if vidid is None:
            vidid = gid_vidid
        elif gid_vidid != vidid:
            raise ValueError(f'target gids {gids} are not frames of video {vidid!r}')
    elif vidid is None:
        if gid is None:
            raise ValueError(f'a time_slice needs a video: give vidid, gids, gid or aid '
                             f'(target={t!r})')
        vidid = dset.imgs[gid].get('video_id', None)
        if vidid is None:
            raise ValueError(f'image {gid!r} belongs to no video, so time_slice means nothing')

    if vidid is not None:
        if vidid not in dset.index.videos:
            raise KeyError(f'unknown video id {vidid!r}')
        video = dset.index.videos[vidid]
        vid_gids = list(dset.index.vidid_to_gids[vidid])
        if video.get('height') is not None and video.get('width') is not None:
            space_dims = (int(video['height']), int(video['width']))
        else:
            first = dset.imgs[vid_gids[0]] if vid_gids else dset.imgs[gids[0]]
            space_dims = (int(first['height']), int(first['width']))
    else:
        vid_gids = None
        first = dset.imgs[gids[0]]
        space_dims = (int(first['height']), int(first['width']))

    n_video = len(vid_gids) if vid_gids is not None else len(gids)
    time_pad, space_pad = _coerce_video_pad(t.get('pad'))
    if gids is None:
        time_slice = _norm_time_slice(time_slice, n_video)
        idxs = range(time_slice.start, time_slice.stop, time_slice.step or 1)
        gids = [vid_gids[i] for i in idxs if 0 <= i < n_video]
    else:
        from_slice = False
        if time_slice is not None and vid_gids is not None:
            ts = _norm_time_slice(time_slice, n_video)
            idxs = range(ts.start, ts.stop, ts.step or 1)
            expect = [vid_gids[i] for i in idxs if 0 <= i < n_video]
            if expect == gids:
                time_slice, from_slice = ts, True
        if not from_slice:
            if time_pad != (0, 0):
                raise ValueError('time padding needs frames given by time_slice, not an explicit '
                                 f'list of gids {gids}')
            if time_slice is None:
                time_slice = slice(0, len(gids))
    t['vidid'] = vidid
    t['gids'] = gids
    t['time_slice'] = time_slice
    t['space_dims'] = space_dims
    t['data_dims'] = (n_video,) + space_dims

    window_dims = t.get('window_dims', None)
    if window_dims is not None and not isinstance(window_dims, str) and not _is_int(window_dims):
        window_dims = tuple(window_dims)
        if len(window_dims) == 3:
            n_t = _n_time_steps(sampler, t, time_pad)
            if window_dims[0] != n_t:
                raise ValueError(f'window_dims={window_dims} asks for {window_dims[0]} frames '
                                 f'but the target selects {n_t}')
            window_dims = window_dims[1:]
    if space_slice is not None:
        space_slice = coerce_space_slice(space_slice, space_dims)
        if window_dims is not None and not isinstance(window_dims, str):
            want = coerce_window_dims(window_dims)
            have = (space_slice[0].stop - space_slice[0].start,
                    space_slice[1].stop - space_slice[1].start)
            if want != have:
                raise ValueError(f'window_dims={want} conflicts with space_slice of size {have}')
    elif any(k in t for k in CENTER_KEYS) or ann is not None:
        if ann is not None and not all(k in t for k in CENTER_KEYS):
            if ann.get('bbox') is None:
                raise ValueError(f'annotation {aid!r} has no bbox to centre a window on')
            import kwimage
            box = kwimage.Boxes(np.array([ann['bbox']], dtype=np.float64), 'xywh')
            if vidid is not None:
                box = box.warp(_warp_vid_from_img(dset, ann['image_id']))
            cx, cy, w, h = box.to_cxywh().data[0].tolist()
            t.setdefault('cx', cx)
            t.setdefault('cy', cy)
            t.setdefault('width', w)
            t.setdefault('height', h)
        space_slice = center_target_slices(t, window_dims)
    else:
        space_slice = (slice(0, space_dims[0]), slice(0, space_dims[1]))
    t['space_slice'] = space_slice
    t['slices'] = (time_slice,) + tuple(space_slice)
    t['window_dims'] = (space_slice[0].stop - space_slice[0].start,
                        space_slice[1].stop - space_slice[1].start)
    _check_sampling_keys(sampler, t)
    return t


def _time_indices(sampler, t: dict):
    """Frame indices of a resolved 3-D target's time steps, or ``None`` for explicit gids.

    The frames come from ``time_slice`` when the target has a video and the
    in-range frames of ``time_slice`` are exactly ``gids``.
    """
    vidid, ts = t.get('vidid'), t.get('time_slice')
    if vidid is None or not isinstance(ts, slice) or ts.start is None or ts.stop is None:
        return None
    vid_gids = sampler.dset.index.vidid_to_gids[vidid]
    idxs = range(ts.start, ts.stop, ts.step or 1)
    if [vid_gids[i] for i in idxs if 0 <= i < len(vid_gids)] != list(t['gids']):
        return None
    return idxs


def _n_time_steps(sampler, t: dict, time_pad=(0, 0)) -> int:
    idxs = _time_indices(sampler, t)
    n = len(t['gids']) if idxs is None else len(idxs)
    return n + time_pad[0] + time_pad[1]


def _check_sampling_keys(sampler, t: dict) -> None:
    """Validate the loading keys (pad, padkw, scale, interpolation, channels) early."""
    _coerce_video_pad(t.get('pad'))
    padkw = coerce_padkw(t.get('padkw'))
    if _mode_padding(padkw) and t.get('use_native_scale', False):
        raise ValueError(f'padkw={padkw!r}: use_native_scale windows pad with nodata only '
                         f'(0 for integers, NaN for floats)')
    t['padkw'] = padkw
    coerce_scale(t.get('scale'))
    coerce_interpolation(t.get('interpolation', 'auto'), t.get('antialias', 'auto'))
    spec = coerce_channels(t.get('channels', None))
    _state(sampler.frames).check_known(spec)


def _mode_padding(padkw: dict) -> bool:
    """Whether ``padkw`` asks for more than the nodata fill (0 for integers, NaN for floats)."""
    if padkw.get('mode', 'constant') != 'constant':
        return True
    cval = padkw.get('constant_values', 0)
    return np.ndim(cval) != 0 or not (cval == 0 or np.isnan(cval))


def _mode_padded_frame(state, gid: int, tree, crop_slice, padkw: dict, scale, space: str,
                       interpolation: str, antialias: bool, missing: bool) -> np.ndarray:
    """One frame's window padded by ``numpy.pad(**padkw)`` in its space, then scaled.

    The window's pixels inside the frame are read as usual; the rest comes from
    ``numpy.pad`` (``'reflect'``, ``'edge'``, a constant ...) in the frame's own
    pixels, before the scale, exactly as the 2-D path pads. This needs a frame
    whose image is its sampling space: one file (not multi-asset), no
    ``warp_img_to_vid`` other than the identity, and every requested channel.
    """
    img = state.dset.imgs[gid]
    why = None
    if _is_multi_asset(img):
        why = f'image {gid} has several assets'
    elif space == 'video' and not np.allclose(_warp_vid_from_img(state.dset, gid).matrix,
                                              np.eye(3)):
        why = f'image {gid} is warped into its video (warp_img_to_vid is not the identity)'
    elif missing:
        why = f'image {gid} lacks some of the channels requested'
    if why is not None:
        raise ValueError(f'padkw={padkw!r} cannot be applied: {why}; such windows pad with '
                         f'nodata only (0 for integers, NaN for floats)')
    h, w = int(img['height']), int(img['width'])
    (y0, y1), (x0, x1) = ((sl.start, sl.stop) for sl in crop_slice)
    # the part of the window inside the frame; when there is none, an empty part at
    # the window's edge (so the pad widths stay the window's size)
    iy0, iy1 = max(y0, 0), min(y1, h)
    ix0, ix1 = max(x0, 0), min(x1, w)
    empty = iy1 <= iy0 or ix1 <= ix0
    if empty:
        iy0 = iy1 = min(max(y0, 0), y1)
        ix0 = ix1 = min(max(x0, 0), x1)
        read = (slice(0, 1), slice(0, 1))          # one pixel, for the dtype and channels
    else:
        read = (slice(iy0, iy1), slice(ix0, ix1))
    arr = _finalize(tree.crop(read, clip=False, wrap=False).optimize(), interpolation, antialias)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if empty:
        arr = arr[:0, :0]
    arr = pad_crop(arr, [(iy0 - y0, y1 - iy1), (ix0 - x0, x1 - ix1)], padkw, crop_slice, gid,
                   (h, w))
    if scale is None:
        return arr
    from delayed_image.delayed_leafs import DelayedIdentity
    node = DelayedIdentity(arr).warp({'scale': (scale[1], scale[0])},
                                     interpolation=interpolation, antialias=antialias)
    return _finalize(node.optimize(), interpolation, antialias)


def wants_delayed(sampler, target_: dict) -> bool:
    """Whether a resolved target needs this module rather than the 2-D file crop.

    True for 3-D targets, ``use_native_scale``, a ``scale`` other than 1,
    multi-asset images, and channels the image does not have.

    Example:
        >>> import sampler_core as ndsampler
        >>> self = ndsampler.CocoSampler.demo('shapes8')
        >>> wants_delayed(self, {'gid': 1}), wants_delayed(self, {'gid': 1, 'scale': 0.5})
        (False, True)
        >>> wants_delayed(self, {'gid': 1, 'channels': 'r|B1'})
        True
    """
    if target_.get('gids') is not None or target_.get('use_native_scale', False):
        return True
    scale = target_.get('scale', None)
    if scale is not None and coerce_scale(scale) is not None:
        return True
    gid = target_['gid']
    img = sampler.dset.imgs[gid]
    if _is_multi_asset(img):
        return True
    channels = target_.get('channels', None)
    if channels is None or channels is NoParam or \
            (isinstance(channels, str) and channels.strip() == '<all>'):
        return False
    spec = coerce_channels(channels)
    if spec is None:
        return False
    state = _state(sampler.frames)
    state.check_known(spec)
    have = state.channel_names(gid)
    return any(name not in have for name in spec.as_list())


# --------------------------------------------------------------------------- loading
def frame_gids(sampler, target_: dict) -> list:
    """The image id of every time step of a resolved 3-D target, ``None`` for padding.

    Example:
        >>> import sampler_core as ndsampler
        >>> self = ndsampler.CocoSampler.demo('vidshapes1', num_frames=3, image_size=(32, 32))
        >>> t = self._infer_target_attributes({'vidid': 1, 'time_slice': slice(-1, 2)})
        >>> frame_gids(self, t)
        [None, 1, 2]
    """
    time_pad, _ = _coerce_video_pad(target_.get('pad'))
    idxs = _time_indices(sampler, target_)
    if idxs is not None:
        vid_gids = sampler.dset.index.vidid_to_gids[target_['vidid']]
        step = idxs.step
        idxs = range(idxs.start - time_pad[0] * step, idxs.stop + time_pad[1] * step, step)
        return [vid_gids[i] if 0 <= i < len(vid_gids) else None for i in idxs]
    return [None] * time_pad[0] + list(target_['gids']) + [None] * time_pad[1]


def _check_size(n_frames: int, height: int, width: int, scale) -> None:
    """Refuse samples of more than ``MAX_WINDOW_PIXELS`` pixels (frames x scaled window)."""
    sy, sx = coerce_scale(scale) or (1.0, 1.0)
    size = (n_frames, int(math.ceil(height * sy)), int(math.ceil(width * sx)))
    if size[0] * size[1] * size[2] > MAX_WINDOW_PIXELS:
        raise ValueError(f'sample of (frames, height, width)={size} with padding and scale is '
                         f'larger than MAX_WINDOW_PIXELS={MAX_WINDOW_PIXELS}; ask for a smaller '
                         f'window')


def _output_dtype(frames_info) -> np.dtype:
    complete = [arr.dtype for arr, missing in frames_info if arr is not None and not missing]
    native = np.result_type(*complete) if complete else np.dtype(np.float32)
    if any(missing for arr, missing in frames_info if arr is not None):
        return np.result_type(native, np.float32)
    return native


def _cast(arr: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if arr.dtype == dtype:
        return arr
    if dtype.kind in 'iub' and arr.dtype.kind == 'f':
        arr = np.nan_to_num(arr, nan=0.0)
    return arr.astype(dtype)


def load_sample(sampler, target_: dict, with_annots=('boxes',), annot_ids=None,
                visible_thresh: float = 0.0) -> dict:
    """Load a resolved video / multi-asset / scaled target.

    Args:
        sampler (CocoSampler): the sampler.
        target_: a target resolved by ``sampler._infer_target_attributes``.
        with_annots: annotation kinds (``()`` for none).
        annot_ids: use these annotations instead of the spatial lookup.
        visible_thresh: leave out annotations with less of their box (in image
            space) inside the window.

    Returns:
        ``{'im', 'target', 'params'[, 'annots']}``. ``im`` is ``(T, H, W, C)``
        for 3-D and ``(H, W, C)`` for 2-D targets (a ``DataArray`` with
        ``as_xarray``); with ``use_native_scale`` it is a list (per frame) of
        lists of arrays, one per asset, at their native resolution (2-D: the
        list of one frame), aligned by ``params['jagged_meta']``.

    Example:
        >>> import sampler_core as ndsampler
        >>> self = ndsampler.CocoSampler.demo('vidshapes1-multispectral', num_frames=2,
        ...                                   image_size=(64, 64))
        >>> sample = self.load_sample({'vidid': 1, 'channels': 'B1|B8', 'scale': 0.5})
        >>> sample['im'].shape
        (2, 32, 32, 2)
    """
    import kwimage
    is3d = target_.get('gids') is not None
    if not is3d:
        _check_sampling_keys(sampler, target_)
    state = _state(sampler.frames)
    if is3d:
        fgids = frame_gids(sampler, target_)
        space = 'video' if target_.get('vidid') is not None else 'image'
    else:
        fgids = [target_['gid']]
        space = 'image'
    space_h, space_w = target_['space_dims'] if is3d else target_['data_dims']
    _, space_pad = _coerce_video_pad(target_.get('pad')) if is3d else \
        (None, coerce_pad(target_.get('pad')))
    (pt, pb), (pl, pr) = space_pad
    sl_y, sl_x = target_['space_slice']
    y0, y1 = sl_y.start - pt, sl_y.stop + pb
    x0, x1 = sl_x.start - pl, sl_x.stop + pr
    crop_slice = (slice(y0, y1), slice(x0, x1))
    _check_size(len(fgids), y1 - y0, x1 - x0, target_.get('scale', None))

    spec = coerce_channels(target_.get('channels', None))
    if spec is None:
        names: list = []
        for g in fgids:
            if g is not None:
                names.extend(n for n in state.channel_names(g) if n not in names)
        from delayed_image.channel_spec import FusedChannelSpec
        spec = FusedChannelSpec.coerce(names) if names else None
    names = [] if spec is None else spec.as_list()
    scale = coerce_scale(target_.get('scale', None))
    interpolation, antialias = coerce_interpolation(target_.get('interpolation', 'auto'),
                                                    target_.get('antialias', 'auto'))
    native = bool(target_.get('use_native_scale', False))
    nodata = target_.get('nodata', None)
    as_xarray = bool(target_.get('as_xarray', False))
    warp_kw = dict(interpolation=interpolation, antialias=antialias)
    padkw = target_['padkw']          # coerced by _check_sampling_keys
    mode_pad = _mode_padding(padkw)

    tf_sample_from_space = kwimage.Affine.translate((-x0, -y0))
    if scale is not None:
        tf_sample_from_space = kwimage.Affine.scale((scale[1], scale[0])) @ tf_sample_from_space

    frames_info = []
    jagged = []
    jagged_meta = []
    for g in fgids:
        if g is None:
            frames_info.append((None, True))
            jagged.append(None)
            jagged_meta.append(None)
            continue
        tree = state.tree(g, spec, space, interpolation, antialias, nodata)
        have = state.channel_names(g)
        missing = any(n not in have for n in names)
        if mode_pad:
            frames_info.append((_mode_padded_frame(state, g, tree, crop_slice, padkw, scale,
                                                   space, interpolation, antialias, missing),
                                False))
            continue
        crop = tree.crop(crop_slice, clip=False, wrap=False).optimize()
        if not native:
            if scale is not None:
                crop = crop.warp({'scale': (scale[1], scale[0])}, **warp_kw).optimize()
            arr = _finalize(crop, interpolation, antialias)
            frames_info.append((arr, missing))
        else:
            parts, aligns = crop.undo_warps(remove=['scale'], squash_nans=False, return_warps=True)
            tf_scale = kwimage.Affine.eye() if scale is None else \
                kwimage.Affine.scale((scale[1], scale[0]))
            arrs, chans, warps = [], [], []
            for part, align in zip(parts, aligns):
                if scale is not None:
                    part = part.warp({'scale': (scale[1], scale[0])}, **warp_kw)
                arrs.append(_finalize(part.optimize(), interpolation, antialias))
                chans.append(part.channels)
                # video space -> this part's pixels
                warps.append(tf_scale @ align @ kwimage.Affine.translate((-x0, -y0)))
            jagged.append(arrs)
            # 'align': the aligned (scaled) sample -> each part; scales commute
            jagged_meta.append({'align': list(aligns), 'chans': chans,
                                'grid_to_part_warps': warps})
            frames_info.append((None, missing))

    # ------------------------------------------------------------ pixels
    # the sample's (height, width): delayed_image's size for this crop and scale
    from delayed_image.delayed_leafs import DelayedNans
    probe = DelayedNans(dsize=(space_w, space_h), channels=spec).crop(
        crop_slice, clip=False, wrap=False)
    if scale is not None:
        probe = probe.warp({'scale': (scale[1], scale[0])})
    out_hw = (int(probe.dsize[1]), int(probe.dsize[0]))
    if not native:
        dtype = _output_dtype(frames_info)
        stack = []
        for arr, _ in frames_info:
            if arr is None:
                fill = np.nan if np.dtype(dtype).kind == 'f' else 0
                arr = np.full(out_hw + (len(names),), fill, dtype=dtype)
            stack.append(_cast(arr, dtype))
        im = np.stack(stack, axis=0) if is3d else stack[0]
        want = target_.get('dtype', None)
        if want is not None:
            im = _cast(im, want)
        if as_xarray:
            import xarray as xr
            dims = ('t', 'y', 'x', 'c') if is3d else ('y', 'x', 'c')
            im = xr.DataArray(im, dims=dims, coords={'c': list(names)})
    else:
        im = []
        for idx, (arrs, meta) in enumerate(zip(jagged, jagged_meta)):
            if arrs is None:  # a padding frame: one all-nodata part the size of the sample
                arrs = [np.full(out_hw + (len(names),), np.nan, dtype=np.float32)]
                meta = jagged_meta[idx] = {
                    'align': [kwimage.Affine.eye()], 'chans': [spec],
                    'grid_to_part_warps': [tf_sample_from_space]}
            if as_xarray:
                import xarray as xr
                chans = meta['chans']
                arrs = [xr.DataArray(a, dims=('y', 'x', 'c'),
                                     coords={'c': c.as_list() if c is not None else
                                             [f'c{i}' for i in range(a.shape[2])]})
                        for a, c in zip(arrs, chans)]
            im.append(arrs)
        if not is3d:
            im = im[0]

    # ------------------------------------------------------------ target / params
    cx = target_.get('cx', None)
    cy = target_.get('cy', None)
    sx, sy = (1.0, 1.0) if scale is None else (scale[1], scale[0])
    target_['rel_cx'] = float((cx - x0) * sx) if cx is not None else (x1 - x0) * sx / 2
    target_['rel_cy'] = float((cy - y0) * sy) if cy is not None else (y1 - y0) * sy / 2
    sym = all(a == b for a, b in space_pad)
    params = {
        'offset': np.array([-x0, -y0]),
        'tf_rel_to_abs': tf_sample_from_space.inv().matrix,
        'sample_tlbr': kwimage.Boxes(np.array([x0, y0, x1, y1]), 'ltrb'),
        'st_dims': [(y0, y1), (x0, x1)],
        'data_dims': target_['data_dims'],
        'pad': target_.get('pad', None) if is3d else
        (tuple(a for a, _ in space_pad) if sym else space_pad),
        'space': space,
        'scale': scale,
        'sample_dims': out_hw,
        'request_chanspec': spec,
        'channels': list(names),
        'frame_gids': list(fgids),
        'frame_sample_from_grid_warps': [tf_sample_from_space] * len(fgids),
    }
    if native:
        params['jagged_meta'] = jagged_meta if is3d else jagged_meta[0]
    sample = {'im': im, 'target': target_, 'params': params}
    if with_annots or annot_ids is not None:
        _populate_annots(sampler, sample, fgids, space, tf_sample_from_space,
                         with_annots or ('boxes',), annot_ids, visible_thresh)
    return sample


def _image_window(state, gid, space: str, window):
    """``(warp_vid_from_img or None, window in image space)`` of a space-``space`` window.

    The image-space window is the bounding box of the window's corners warped by
    the inverse of ``warp_img_to_vid`` (the window itself in image space).
    """
    x0, y0, x1, y1 = (float(v) for v in window)
    m_vid, m_img_from_vid = state.vid_warp(gid) if space == 'video' else (None, None)
    if m_vid is None:
        return None, np.array([x0, y0, x1, y1], dtype=np.float64)
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], dtype=np.float64)
    xy = corners @ m_img_from_vid.T
    return m_vid, np.concatenate([xy[:, :2].min(axis=0), xy[:, :2].max(axis=0)])


def window_aids(sampler, target_: dict, visible_thresh: float = 0.0) -> list[int]:
    """Annotation ids of every frame of a resolved 3-D target inside its padded window.

    Example:
        >>> import sampler_core as ndsampler
        >>> self = ndsampler.CocoSampler.demo('vidshapes1', num_frames=2, image_size=(64, 64))
        >>> t = self._infer_target_attributes({'vidid': 1, 'space_slice': (slice(0, 40),
        ...                                                             slice(20, 64))})
        >>> window_aids(self, t) == self.load_sample(t)['annots']['aids'].tolist()
        True
    """
    state = _state(sampler.frames)
    _, ((pt, pb), (pl, pr)) = _coerce_video_pad(target_.get('pad'))
    sl_y, sl_x = target_['space_slice']
    window = (sl_x.start - pl, sl_y.start - pt, sl_x.stop + pr, sl_y.stop + pb)
    space = 'video' if target_.get('vidid') is not None else 'image'
    out = []
    for gid in frame_gids(sampler, target_):
        if gid is not None:
            _, img_window = _image_window(state, gid, space, window)
            out.extend(sampler.regions.visible_aids(gid, img_window, visible_thresh)[0].tolist())
    return out


def _populate_annots(sampler, sample, fgids, space, tf_sample_from_space, kinds, annot_ids,
                     visible_thresh) -> None:
    import kwimage
    from sampler_core.annots import clip_dets
    from sampler_core.index import visible_fractions
    visible_thresh = float(visible_thresh)
    if not (0.0 <= visible_thresh <= 1.0):
        raise ValueError(f'visible_thresh must be in [0, 1], got {visible_thresh!r}')
    dset = sampler.dset
    state = _state(sampler.frames)
    target = sample['target']
    x0, y0, x1, y1 = sample['params']['sample_tlbr'].data.tolist()
    m_sample = np.asarray(tf_sample_from_space.matrix, dtype=np.float64)
    geometry = sampler._geometry
    frame_dets, visibles = [], []
    for idx, gid in enumerate(fgids):
        if gid is None:
            dets = geometry.frame_dets([], gid=None, offset=(0.0, 0.0), with_annots=kinds,
                                       rel_frame_index=idx, visible=np.empty(0))
            vis = np.empty(0)
        else:
            m_vid, img_window = _image_window(state, gid, space, (x0, y0, x1, y1))
            mat = m_sample if m_vid is None else m_sample @ m_vid
            img = dset.imgs[gid]
            if annot_ids is None:
                aids, vis = sampler.regions.visible_aids(gid, img_window, visible_thresh)
            else:
                aids = np.array([a for a in annot_ids if dset.anns[a]['image_id'] == gid],
                                dtype=np.int64)
                xywh = np.array([dset.anns[a]['bbox'] for a in aids.tolist()],
                                dtype=np.float64).reshape(-1, 4)
                xywh[:, 2:] += xywh[:, :2]
                vis = visible_fractions(xywh, np.asarray(img_window, dtype=np.float64))
            space_dims = (int(img['height']), int(img['width']))
            if mat[0, 0] == 1 and mat[1, 1] == 1 and mat[0, 1] == 0 and mat[1, 0] == 0:
                dets = geometry.frame_dets(aids.tolist(), gid, (float(mat[0, 2]), float(mat[1, 2])),
                                           space_dims=space_dims, with_annots=kinds,
                                           rel_frame_index=idx, visible=vis)
            else:
                dets = geometry.frame_dets(aids.tolist(), gid, (0.0, 0.0), space_dims=space_dims,
                                           with_annots=kinds, rel_frame_index=idx, visible=vis)
                dets = dets.warp(mat)
        dets.data['track_ids'] = _track_ids(dset, dets.data['aids'])
        frame_dets.append(dets)
        visibles.append(np.asarray(vis, dtype=np.float64))
    annots = {
        'aids': np.concatenate([d.data['aids'] for d in frame_dets]).astype(np.int64),
        'cids': np.concatenate([d.data['cids'] for d in frame_dets]).astype(np.int64),
        'track_ids': np.concatenate([d.data['track_ids'] for d in frame_dets]),
        'rel_frame_index': np.concatenate(
            [np.full(len(d), i, dtype=np.int64) for i, d in enumerate(frame_dets)]),
        'rel_boxes': kwimage.Boxes.concatenate([d.boxes for d in frame_dets]),
        'rel_ssegs': kwimage.PolygonList(
            [p for d in frame_dets for p in d.data['segmentations'].data]),
        'rel_kpts': kwimage.PointsList([p for d in frame_dets for p in d.data['keypoints'].data]),
        'visible': np.concatenate(visibles),
        'frame_dets': frame_dets,
    }
    annots['rel_kpts'].meta['classes'] = sampler.kp_classes
    if target.get('clip_annots', False):  # clipped to the (scaled) sample window
        annots['clipped_dets'] = [clip_dets(d, sample['params']['sample_dims'])
                                  for d in frame_dets]
    main_aid = target.get('aid', None)
    hits = np.where(annots['aids'] == main_aid)[0] if main_aid is not None else []
    target['annot_idx'] = int(hits[0]) if len(hits) else -1
    sample['annots'] = annots


def _track_ids(dset, aids) -> np.ndarray:
    tids = [dset.anns[a].get('track_id', None) for a in np.asarray(aids).tolist()]
    if all(t is None or _is_int(t) for t in tids):
        return np.array([-1 if t is None else int(t) for t in tids], dtype=np.int64)
    return np.array(tids, dtype=object)


# --------------------------------------------------------------------------- frames API
def load_image_space(frames, gid, channels=None, region=None) -> np.ndarray:
    """Pixels of a (multi-asset) image in image space, ``(H, W, C)``.

    Every asset is warped into the image's grid by delayed_image; channels the
    image lacks are NaN.

    Args:
        frames (CocoFrames): frames of the dataset.
        gid: image id.
        channels: channel code, default all of the image's channels.
        region: ``(slice_y, slice_x)`` with numpy semantics (clipped to the image).

    Example:
        >>> import kwcoco
        >>> from sampler_core.frames import CocoFrames
        >>> dset = kwcoco.CocoDataset.demo('vidshapes1-msi', num_frames=1, image_size=(32, 32))
        >>> load_image_space(CocoFrames(dset, backend=None), 1, 'B1|B8').shape
        (32, 32, 2)
    """
    state = _state(frames)
    img = frames.dset.imgs[gid]
    h, w = int(img['height']), int(img['width'])
    spec = coerce_channels(channels)
    if spec is None:
        from delayed_image.channel_spec import FusedChannelSpec
        spec = FusedChannelSpec.coerce(state.channel_names(gid))
    if region is None:
        region = (slice(None), slice(None))
    ys, xs = (range(h)[region[0]], range(w)[region[1]])
    if ys.step != 1 or xs.step != 1:
        raise ValueError(f'region slices must have step 1, got {region!r}')
    interpolation, antialias = coerce_interpolation()
    tree = state.tree(gid, spec, 'image', interpolation, antialias, None)
    crop = tree.crop((slice(ys.start, max(ys.stop, ys.start)),
                      slice(xs.start, max(xs.stop, xs.start))), clip=False, wrap=False)
    return _finalize(crop.optimize(), interpolation, antialias)
