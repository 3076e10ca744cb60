"""The read path: a :class:`~sampler_core.window.Window` -> pixels + params + annotations.

One flow for 2-D and video targets::

    target --resolve--> Window --read--> {'im', 'params', 'annots'}
                                  |
                                  +-- pixels: one of three readers (chosen in :func:`read`)
                                  |     * crop: the window of one image file,
                                  |       cut from its memmap (``.npy`` cache) and padded;
                                  |     * scaled crop: a scaled 2-D window of one image
                                  |       file: the crop (plus the interpolation's
                                  |       margin), then one cv2 warp by
                                  |       ``sample_from_space`` (:func:`_read_scaled`);
                                  |     * delayed: every frame through delayed_image
                                  |       (video space, multi-asset images, missing
                                  |       channels, use_native_scale, downscales by
                                  |       more than 8 with antialias)
                                  +-- params: :func:`sample_params`
                                  +-- annots: :func:`sample_annots`

The readers only look at the Window: its frames, space, padded window, pad
mode, channels, nodata, dtype and ``sample_from_space`` transform. Coordinate
spaces (all pixels, ``(x, y)`` in transforms, ``(y, x)`` in slices):

* *asset space*: the pixel grid of one file;
* *image space*: the image's grid (``warp_aux_to_img`` maps an asset into it);
* *video space*: the common grid of a video's frames (``warp_img_to_vid``);
* *sample space*: the padded window, scaled by ``scale``: what ``im`` holds and
  what every ``rel_*`` / ``frame_dets`` coordinate refers to.

The delayed reader builds ``coco_img.imdelay(channels, space)`` once per image
(cached, its file leaves reading the ``.npy`` cache of :class:`CocoFrames`
instead of decoding the file), then ``crop(window, clip=False)`` (the part
outside the data is padded: 0 for integers, NaN for floats), then
``warp({'scale': s})``, then ``optimize().finalize()`` (with the work-arounds of
:mod:`sampler_core._delayed_compat`). With a ``padkw`` other than that fill,
the part inside the frame is read, ``numpy.pad``-ed exactly as a 2-D window
is, and then scaled (see :func:`_mode_padded_frame`). Channels a frame lacks
come back as NaN (the sample is then float32, or float64 for float64 data).

Example:
    >>> import sampler_core as ndsampler
    >>> from sampler_core.window import resolve
    >>> sampler = ndsampler.CocoSampler.demo('shapes8')
    >>> win = resolve(sampler, {'gid': 1, 'cx': 5, 'cy': 2, 'window_dims': (6, 6)})
    >>> sample = read(win, sampler.frames, sampler.regions, sampler.annot_geometry)
    >>> sample['im'].shape, sample['params']['offset'].tolist()
    ((6, 6, 3), [-2, 1])
"""
from __future__ import annotations

import math
import threading
import warnings
from collections import OrderedDict

import numpy as np

from sampler_core._delayed_compat import finalize
from sampler_core.annots import clip_dets
from sampler_core.target import (coerce_channels, coerce_interpolation, pad_crop,
                                 pad_mode_needs_data)
from sampler_core.window import MAX_WINDOW_PIXELS, _is_int, embed_window

#: how many per-image delayed trees stay cached
MAX_CACHED_TREES = 1024


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


def _warp_vid_from_img(dset, gid):
    import kwimage
    warp = dset.imgs[gid].get('warp_img_to_vid', None)
    return kwimage.Affine.eye() if warp is None else kwimage.Affine.coerce(warp)


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
    arr = finalize(tree.crop(read, clip=False, wrap=False).optimize(), interpolation, antialias)
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
    return finalize(node.optimize(), interpolation, antialias)


def _check_size(n_frames: int, height: int, width: int, scale) -> None:
    """Refuse samples of more than ``MAX_WINDOW_PIXELS`` pixels (frames x scaled window)."""
    sy, sx = scale or (1.0, 1.0)
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


# --------------------------------------------------------------------------- reading
def read(win, frames, regions, geometry, kinds=('boxes',), annot_ids=None,
         visible_thresh: float = 0.0) -> dict:
    """Pixels, params and (optionally) annotations of a resolved window.

    Args:
        win (Window): the resolved request (:func:`sampler_core.window.resolve`).
        frames (CocoFrames): pixel access.
        regions (CocoRegions): the spatial index (annotation lookup).
        geometry (AnnotGeometry): parsed annotation geometry.
        kinds: annotation kinds (``()`` for none, see ``coerce_with_annots``).
        annot_ids: use these annotations instead of the spatial lookup.
        visible_thresh: leave out annotations with less of their box (in image
            space) inside the padded window.

    Returns:
        ``{'im', 'target', 'params'[, 'annots']}``: ``im`` is ``(T, H, W, C)``
        for video targets and ``(H, W, C)`` for 2-D targets (a ``DataArray``
        with ``as_xarray``; with ``use_native_scale`` a list (per frame) of
        lists of arrays, one per asset, at their native resolution).

    Example:
        >>> import sampler_core as ndsampler
        >>> from sampler_core.window import resolve
        >>> self = ndsampler.CocoSampler.demo('vidshapes1-multispectral', num_frames=2,
        ...                                   image_size=(64, 64))
        >>> win = resolve(self, {'vidid': 1, 'channels': 'B1|B8', 'scale': 0.5})
        >>> read(win, self.frames, self.regions, self.annot_geometry)['im'].shape
        (2, 32, 32, 2)
    """
    margin = _scaled_crop_margin(frames, win) if win.delayed else None
    if margin is not None:
        im, extra = _read_scaled(frames, win, margin)
    elif win.delayed:
        im, extra = _read_delayed(frames, win)
    else:
        im, extra = _read_crop(frames, win), None
    t = win.target
    x0, y0, x1, y1 = win.padded_ltrb
    sy, sx = win.scale or (1.0, 1.0)
    cx, cy = t.get('cx', None), t.get('cy', None)
    t['rel_cx'] = float((cx - x0) * sx) if cx is not None else (x1 - x0) * sx / 2
    t['rel_cy'] = float((cy - y0) * sy) if cy is not None else (y1 - y0) * sy / 2
    params = sample_params(win, extra)
    sample = {'im': im, 'target': t, 'params': params}
    if kinds or annot_ids is not None:
        sample['annots'] = sample_annots(win, frames, regions, geometry,
                                         kinds or ('boxes',), annot_ids, visible_thresh,
                                         params.get('sample_dims'))
    return sample


def sample_params(win, extra: dict | None = None) -> dict:
    """``sample['params']`` of a window (``extra``: what the delayed reader adds).

    ``offset`` is ``(dx, dy)`` (space -> unscaled window), ``tf_rel_to_abs`` the
    3x3 sample -> space matrix, ``sample_tlbr`` the padded window (ltrb, space
    pixels), ``st_dims`` its ``[(y0, y1), (x0, x1)]``, ``pad`` as the target gave
    it (video) or ``(ph, pw)`` / the pairs (2-D).

    Example:
        >>> import sampler_core as ndsampler
        >>> from sampler_core.window import resolve
        >>> sampler = ndsampler.CocoSampler.demo('shapes8')
        >>> win = resolve(sampler, {'gid': 1, 'slices': (slice(0, 4), slice(2, 8)), 'pad': 1})
        >>> sample_params(win)['st_dims']
        [(-1, 5), (1, 9)]
    """
    import kwimage
    x0, y0, x1, y1 = win.padded_ltrb
    if win.scale is None:   # the translation written out: exact, and no matrix inverse
        tf = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    else:
        tf = win.sample_from_space.inv().matrix
    t = win.target
    params = {
        'offset': np.array([-x0, -y0]),
        'tf_rel_to_abs': tf,
        'sample_tlbr': kwimage.Boxes(np.array([x0, y0, x1, y1]), 'ltrb'),
        'st_dims': [(y0, y1), (x0, x1)],
        'data_dims': t['data_dims'],
        'pad': t.get('pad', None) if win.is3d else win.symmetric_pad,
    }
    if extra:
        params.update(extra)
    return params


def _read_crop(frames, win) -> np.ndarray:
    """The crop reader: the padded window of one image, cut from its memmap."""
    im, _, idxs, num_bands = _padded_block(frames, win, win.pad)
    if win.dtype is not None:
        im = im.astype(win.dtype, copy=False)
    if win.as_xarray:
        im = _to_xarray(frames, im, win.frames[0], idxs, num_bands)
    return im


def _padded_block(frames, win, pad, clip: bool = False):
    """``win``'s window of its one image grown by ``pad``, cut from the memmap, padded.

    The part inside the image is read (the requested channels; float32 with NaN
    for the ``nodata`` value when ``win.nodata`` is set) and padded to the grown
    window as ``win.padkw`` says, or not padded at all with ``clip``.

    Returns:
        ``(block, (top, left), idxs, num_bands)``: the ``(H, W, C)`` block, the
        space pixel of its top-left corner, the band indices read (``None``:
        all) and the image's band count.
    """
    gid = win.frames[0]
    padkw = dict(win.padkw)
    outer, inner, extra = embed_window(win.space_slice, pad, win.space_dims)
    data = frames._data(gid)
    idxs = frames.channel_indices(gid, win.channels, data.shape[2])
    n_chan = data.shape[2] if idxs is None else len(idxs)
    nodata = win.nodata

    crop = data[inner[0], inner[1]]
    if idxs is not None:
        crop = crop[:, :, idxs]
    out_dtype = data.dtype
    as_float = nodata is not None
    if as_float:
        out_dtype = np.float32
    out_shape = (outer[0].stop - outer[0].start, outer[1].stop - outer[1].start, n_chan)
    has_pad = any(a or b for a, b in extra)
    mode = padkw.get('mode', 'constant')
    origin = (outer[0].start, outer[1].start)
    if clip:
        im = np.array(crop, dtype=out_dtype)
        origin = (inner[0].start, inner[1].start)
    elif not has_pad:
        im = np.array(crop, dtype=out_dtype)
    elif mode == 'constant':
        cval = padkw.get('constant_values', np.nan if as_float else 0)
        if np.ndim(cval) != 0:
            im = np.pad(np.asarray(crop, dtype=out_dtype), list(extra) + [(0, 0)], **padkw)
        else:
            try:
                im = np.full(out_shape, cval, dtype=out_dtype)
            except (ValueError, OverflowError, TypeError):
                raise ValueError(
                    f'padkw constant_values={cval!r} does not fit dtype {out_dtype}') from None
            (t0, _), (l0, _) = extra
            im[t0:t0 + crop.shape[0], l0:l0 + crop.shape[1]] = crop
    else:
        im = pad_crop(np.asarray(crop, dtype=out_dtype), extra, padkw, outer, gid,
                      win.space_dims)
    if as_float and nodata not in ('float', 'auto'):
        im[im == nodata] = np.nan
    return im, origin, idxs, data.shape[2]


def _sample_channels(state, fgids, channels):
    """``(spec, names)``: the channels a sample has (the request, else the union of its
    frames' channels in asset order) as a ``FusedChannelSpec`` (``None``: none) and names."""
    spec = coerce_channels(channels)
    if spec is None:
        names: list = []
        for g in fgids:
            if g is not None:
                names.extend(n for n in state.channel_names(g) if n not in names)
        from delayed_image.channel_spec import FusedChannelSpec
        spec = FusedChannelSpec.coerce(names) if names else None
    names = [] if spec is None else spec.as_list()
    return spec, names


def _delayed_params(win, spec, names, out_hw) -> dict:
    """The params only samples read in their space (scaled, video ...) have."""
    fgids = list(win.frames)
    return {
        'space': win.space,
        'scale': win.scale,
        'sample_dims': out_hw,
        'request_chanspec': spec,
        'channels': list(names),
        'frame_gids': fgids,
        'frame_sample_from_grid_warps': [win.sample_from_space] * len(fgids),
    }


# --------------------------------------------------------------------------- scaled crop
#: source pixels an interpolation reads on each side of the point it samples
#: (cv2's INTER_AREA in a warp is bilinear)
_KERNEL_RADIUS = {'linear': 1, 'area': 1, 'cubic': 2, 'lanczos': 4}


def _use_antialias(win) -> bool:
    """Whether the warp of ``win`` blurs first (delayed_image's rule: a downscale on an axis)."""
    sy, sx = win.scale
    return win.antialias and win.interpolation != 'nearest' and (sx < 1 or sy < 1)


def _scaled_margin(win) -> tuple[int, int] | None:
    """``(my, mx)``: source pixels beyond the padded window that its scaled pixels read.

    Nearest reads none. The other interpolations read their kernel's radius around
    each sampled point, plus the radius of kwimage's antialias blur (``ceil(2.5 / s)``
    pixels wide at most, for a downscale by ``s``); and the last sampled point lies
    up to ``1 / s`` pixels past the window (the sample's size is rounded up). ``None``
    when the scaled crop reader does not apply: kwimage downscales by more than 8
    through an image pyramid, whose grid depends on where the block starts.
    """
    if win.interpolation == 'nearest':
        return (0, 0)
    sy, sx = win.scale
    if _use_antialias(win) and min(sx, sy) <= 1 / 8:
        return None
    out = []
    for s in (sy, sx):
        margin = _KERNEL_RADIUS[win.interpolation] + 1 + int(math.ceil(1 / s))
        if _use_antialias(win) and s < 1:
            margin += int(math.ceil(2.5 / s)) // 2 + 1
        out.append(margin)
    return tuple(out)


def _scaled_crop_margin(frames, win) -> tuple[int, int] | None:
    """The margin of :func:`_read_scaled` when it can read ``win``, else ``None``.

    It can for a scaled 2-D window of one image file holding every requested
    channel (not ``use_native_scale``), with a pad mode whose values do not depend
    on the pad's width (all but ``'linear_ramp'``).
    """
    if win.is3d or win.native or win.scale is None or \
            win.padkw.get('mode', 'constant') == 'linear_ramp':
        return None
    gid = win.frames[0]
    if _is_multi_asset(frames.dset.imgs[gid]):
        return None
    margin = _scaled_margin(win)
    if margin is None:
        return None
    spec = coerce_channels(win.channels)
    if spec is not None:
        have = _state(frames).channel_names(gid)
        if any(n not in have for n in spec.as_list()):
            return None
    return margin


def _read_scaled(frames, win, margin):
    """The scaled crop reader: a scaled 2-D window as one crop and one cv2 warp.

    The padded window grown by ``margin`` source pixels is cut from the memmap as
    the crop reader cuts it (:func:`_padded_block`): padded as ``win.padkw`` says,
    or, for the nodata fill, only its part inside the image (the warp fills the
    rest with 0 / NaN as the delayed reader does). It is then warped by
    ``win.sample_from_space`` (moved to the block's corner) into the sample:
    nearest by :func:`~sampler_core._delayed_compat.nearest_warp`, the other
    interpolations by :func:`_warp_block` (cv2, with kwimage's antialias blur), so
    the pixels at the window's edge are interpolated from the image's real
    neighbours (the delayed reader blends them with nodata).

    Returns:
        ``(im, extra_params)`` like :func:`_read_delayed`.
    """
    from sampler_core._delayed_compat import nearest_warp
    gid = win.frames[0]
    padkw = win.padkw
    mode_pad = _mode_padding(padkw)
    if mode_pad and pad_mode_needs_data(padkw):
        # the window itself must hold image pixels, as for the other readers
        _, inner, _ = embed_window(win.space_slice, win.pad, win.space_dims)
        if any(sl.stop <= sl.start for sl in inner):
            pad_crop(np.zeros((0, 0, 1)), [(0, 0), (0, 0)], padkw, win.padded_slice, gid,
                     win.space_dims)
    my, mx = margin
    (pt, pb), (pl, pr) = win.pad
    grown = ((pt + my, pb + my), (pl + mx, pr + mx))
    block, (oy, ox), idxs, num_bands = _padded_block(frames, win, grown, clip=not mode_pad)
    x0, y0, x1, y1 = win.padded_ltrb
    sy, sx = win.scale
    # delayed_image's size of a scaled window (dsize='auto')
    out_hw = (int(math.ceil((y1 - y0) * sy)), int(math.ceil((x1 - x0) * sx)))
    fill = np.nan if block.dtype.kind == 'f' else 0
    # block pixels -> sample pixels (the Window's transform, from the block's corner)
    matrix = win.sample_from_space.matrix @ np.array([[1.0, 0.0, ox], [0.0, 1.0, oy],
                                                      [0.0, 0.0, 1.0]])
    if win.interpolation == 'nearest':
        im = nearest_warp(block, matrix, (out_hw[1], out_hw[0]), fill)
    else:
        im = _warp_block(block, matrix, out_hw, win.interpolation, _use_antialias(win), fill)
    if win.dtype is not None:
        im = _cast(im, win.dtype)
    if win.as_xarray:
        im = _to_xarray(frames, im, gid, idxs, num_bands)
    spec, names = _sample_channels(_state(frames), [gid], win.channels)
    return im, _delayed_params(win, spec, names, out_hw)


#: dtypes cv2.warpAffine takes as they are
_CV2_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def _warp_block(block: np.ndarray, matrix: np.ndarray, out_hw: tuple[int, int],
                interpolation: str, antialias: bool, fill) -> np.ndarray:
    """``block`` warped by the axis-aligned ``matrix`` (block -> sample pixels, pixel
    corners at whole numbers) into ``out_hw``, as ``kwimage.warp_affine(...,
    origin_convention='corner')`` does it: the antialias blur of kwimage (for a
    downscale by more than 1/8: one Gaussian, no pyramid), then one ``cv2.warpAffine``
    (the outside filled with ``fill``), without kwimage's per-call overhead.
    """
    import cv2
    import kwimage
    if block.dtype not in _CV2_DTYPES:
        return kwimage.warp_affine(block, kwimage.Affine(matrix), dsize=(out_hw[1], out_hw[0]),
                                   interpolation=interpolation, antialias=antialias,
                                   border_value=fill, origin_convention='corner').reshape(
                                       out_hw + block.shape[2:])
    if block.shape[0] == 0 or block.shape[1] == 0:   # the window lies outside the image
        return np.full(out_hw + block.shape[2:], fill, dtype=block.dtype)
    from kwimage.im_cv2 import _coerce_interpolation, _cv2_prepare_downscale
    # cv2 puts pixel centres at whole numbers
    centre = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]]) @ matrix @ \
        np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    n_chan = block.shape[2]
    if antialias:
        block, _, _ = _cv2_prepare_downscale(block, matrix[0, 0], matrix[1, 1])
        block = block.reshape(block.shape[:2] + (n_chan,))
    flags = _coerce_interpolation(interpolation)
    # cv2 warps at most 4 channels at a time with cubic / lanczos
    step = 4 if interpolation in ('cubic', 'lanczos') else n_chan
    parts = [cv2.warpAffine(np.ascontiguousarray(block[:, :, c:c + step]), centre[:2],
                            (out_hw[1], out_hw[0]), flags=flags,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(fill,) * 4)
             for c in range(0, n_chan, step)]
    parts = [p[:, :, None] if p.ndim == 2 else p for p in parts]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def _to_xarray(frames, im, gid, idxs, num_bands):
    import xarray as xr
    from delayed_image.channel_spec import FusedChannelSpec
    names = FusedChannelSpec.coerce(
        frames._lookup_channels(gid, num_bands)).normalize().as_list()
    if idxs is not None:
        names = [names[i] for i in idxs]
    return xr.DataArray(im, dims=('y', 'x', 'c'), coords={'c': names})


def _read_delayed(frames, win):
    """The delayed reader: every frame of ``win`` through delayed_image.

    Returns:
        ``(im, extra_params)``: ``extra_params`` are the params only this
        reader has (``space``, ``scale``, ``sample_dims``, channels,
        ``frame_gids``, ``frame_sample_from_grid_warps``, ``jagged_meta``).
    """
    import kwimage
    state = _state(frames)
    is3d = win.is3d
    fgids = list(win.frames)
    space = win.space
    space_h, space_w = win.space_dims
    x0, y0, x1, y1 = win.padded_ltrb
    crop_slice = win.padded_slice
    scale = win.scale
    _check_size(len(fgids), y1 - y0, x1 - x0, scale)

    spec, names = _sample_channels(state, fgids, win.channels)
    interpolation, antialias = win.interpolation, win.antialias
    native = win.native
    nodata = win.nodata
    warp_kw = dict(interpolation=interpolation, antialias=antialias)
    padkw = win.padkw
    mode_pad = _mode_padding(padkw)
    tf_sample_from_space = win.sample_from_space

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
            arr = finalize(crop, interpolation, antialias)
            frames_info.append((arr, missing))
        else:
            parts, aligns = crop.undo_warps(remove=['scale'], squash_nans=False, return_warps=True)
            tf_scale = kwimage.Affine.eye() if scale is None else \
                kwimage.Affine.scale((scale[1], scale[0]))
            arrs, chans, warps = [], [], []
            for part, align in zip(parts, aligns):
                if scale is not None:
                    part = part.warp({'scale': (scale[1], scale[0])}, **warp_kw)
                arrs.append(finalize(part.optimize(), interpolation, antialias))
                chans.append(part.channels)
                # video space -> this part's pixels
                warps.append(tf_scale @ align @ kwimage.Affine.translate((-x0, -y0)))
            jagged.append(arrs)
            # 'align': the aligned (scaled) sample -> each part; scales commute
            jagged_meta.append({'align': list(aligns), 'chans': chans,
                                'grid_to_part_warps': warps})
            frames_info.append((None, missing))

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
        if win.dtype is not None:
            im = _cast(im, win.dtype)
        if win.as_xarray:
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
            if win.as_xarray:
                import xarray as xr
                chans = meta['chans']
                arrs = [xr.DataArray(a, dims=('y', 'x', 'c'),
                                     coords={'c': c.as_list() if c is not None else
                                             [f'c{i}' for i in range(a.shape[2])]})
                        for a, c in zip(arrs, chans)]
            im.append(arrs)
        if not is3d:
            im = im[0]
    extra = _delayed_params(win, spec, names, out_hw)
    if native:
        extra['jagged_meta'] = jagged_meta if is3d else jagged_meta[0]
    return im, extra


# --------------------------------------------------------------------------- annotations
def sample_annots(win, frames, regions, geometry, kinds=('boxes',), annot_ids=None,
                  visible_thresh: float = 0.0, sample_dims=None) -> dict:
    """``sample['annots']``: the annotations of each frame inside the padded window.

    Each frame's annotations are looked up in image space (the window warped
    back by ``warp_img_to_vid`` for video windows) and mapped into the sample
    by ``win.sample_from_space`` (after ``warp_vid_from_img``): a translation
    for plain windows, a warp otherwise. 2-D windows read by the crop reader
    keep ndsampler's 2-D form (one frame, no ``track_ids``).

    Args:
        win (Window): the window.
        frames (CocoFrames): its frames (dataset, video warps).
        regions (CocoRegions): the spatial index.
        geometry (AnnotGeometry): parsed annotation geometry.
        kinds: annotation kinds.
        annot_ids: use these annotations instead of the spatial lookup.
        visible_thresh: in ``[0, 1]``.
        sample_dims: ``(height, width)`` of the (scaled) sample, to clip to.

    Raises:
        ValueError: ``visible_thresh`` outside ``[0, 1]``.

    Example:
        >>> import sampler_core as ndsampler
        >>> from sampler_core.window import resolve
        >>> sampler = ndsampler.CocoSampler.demo('shapes8')
        >>> win = resolve(sampler, {'aid': 1, 'window_dims': (64, 64)})
        >>> annots = sample_annots(win, sampler.frames, sampler.regions, sampler.annot_geometry)
        >>> int(annots['aids'][win.target['annot_idx']])
        1
    """
    visible_thresh = float(visible_thresh)
    if not (0.0 <= visible_thresh <= 1.0):
        raise ValueError(f'visible_thresh must be in [0, 1], got {visible_thresh!r}')
    dset = frames.dset
    target = win.target
    window = win.padded_ltrb
    x0, y0, x1, y1 = window
    if sample_dims is None:
        sample_dims = (y1 - y0, x1 - x0)
    # a plain window maps image -> sample by a translation: no matrix needed
    m_sample = None if win.scale is None else \
        np.asarray(win.sample_from_space.matrix, dtype=np.float64)
    state = _state(frames) if win.space == 'video' else None
    frame_dets, visibles = [], []
    for idx, gid in enumerate(win.frames):
        if gid is None:
            dets = geometry.frame_dets([], gid=None, offset=(0.0, 0.0), with_annots=kinds,
                                       rel_frame_index=idx, visible=np.empty(0))
            vis = np.empty(0)
        else:
            if state is None:   # image space: the window itself
                m_vid, img_window = None, window
            else:
                m_vid, img_window = _image_window(state, gid, win.space, window)
            if m_sample is None and m_vid is None:
                mat = None
            else:
                mat = np.asarray(win.sample_from_space.matrix, dtype=np.float64) \
                    if m_sample is None else m_sample
                mat = mat if m_vid is None else mat @ m_vid
            img = dset.imgs[gid]
            if annot_ids is None:
                aids, vis = regions.visible_aids(gid, img_window, visible_thresh)
            else:
                from sampler_core.index import visible_fractions
                aids = np.array([a for a in annot_ids if dset.anns[a]['image_id'] == gid],
                                dtype=np.int64)
                xywh = np.array([dset.anns[a]['bbox'] for a in aids.tolist()],
                                dtype=np.float64).reshape(-1, 4)
                xywh[:, 2:] += xywh[:, :2]
                vis = visible_fractions(xywh, np.asarray(img_window, dtype=np.float64))
            space_dims = (int(img['height']), int(img['width']))
            if mat is None:
                dets = geometry.frame_dets(aids.tolist(), gid, (float(-x0), float(-y0)),
                                           space_dims=space_dims, with_annots=kinds,
                                           rel_frame_index=idx, visible=vis)
            elif mat[0, 0] == 1 and mat[1, 1] == 1 and mat[0, 1] == 0 and mat[1, 0] == 0:
                dets = geometry.frame_dets(aids.tolist(), gid, (float(mat[0, 2]), float(mat[1, 2])),
                                           space_dims=space_dims, with_annots=kinds,
                                           rel_frame_index=idx, visible=vis)
            else:
                dets = geometry.frame_dets(aids.tolist(), gid, (0.0, 0.0), space_dims=space_dims,
                                           with_annots=kinds, rel_frame_index=idx, visible=vis)
                dets = dets.warp(mat)
        if win.delayed:
            dets.data['track_ids'] = _track_ids(dset, dets.data['aids'])
        frame_dets.append(dets)
        visibles.append(vis)
    if win.delayed:
        annots = _stack_frame_annots(frame_dets, visibles, geometry.kp_classes)
    else:   # ndsampler's 2-D form
        dets, = frame_dets
        annots = {
            'aids': dets.data['aids'],
            'cids': dets.data['cids'],
            'rel_frame_index': np.zeros(len(dets), dtype=np.int64),
            'rel_boxes': dets.boxes,
            'rel_ssegs': dets.data['segmentations'],
            'rel_kpts': dets.data['keypoints'],
            'visible': visibles[0],
            'frame_dets': frame_dets,
        }
    if target.get('clip_annots', False):  # clipped to the (scaled) sample window
        annots['clipped_dets'] = [clip_dets(d, sample_dims) for d in frame_dets]
    main_aid = target.get('aid', None)
    hits = np.where(annots['aids'] == main_aid)[0] if main_aid is not None else []
    target['annot_idx'] = int(hits[0]) if len(hits) else -1
    return annots


def _stack_frame_annots(frame_dets, visibles, kp_classes) -> dict:
    """The per-frame detections concatenated into the flat ``annots`` fields."""
    import kwimage
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
        'visible': np.concatenate([np.asarray(v, dtype=np.float64) for v in visibles]),
        'frame_dets': frame_dets,
    }
    annots['rel_kpts'].meta['classes'] = kp_classes
    return annots


# --------------------------------------------------------------------------- helpers
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
    return finalize(crop.optimize(), interpolation, antialias)
