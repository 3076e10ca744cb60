"""Video targets: which frames and which window a 3-D target asks for.

A target is 3-D when it names frames (``vidid``, ``gids``, ``time_slice``,
``slices=(t, y, x)``): its window is in *video space* (the common grid of the
video's frames, ``warp_img_to_vid``) and ``im`` is ``(T, H, W, C)``. This module
resolves such targets (:func:`infer_video_target`), lists their frames with
time padding (:func:`frame_gids`) and decides which 2-D targets need the
delayed_image reader (:func:`wants_delayed`: multi-asset images, ``scale``,
channels the image lacks, ``use_native_scale``). Reading is
:mod:`sampler_core.read`'s job, for 2-D and video windows alike.

Channels a frame does not have come back as NaN; a code naming only channels no
image of the dataset has is a ``KeyError`` when the target is parsed.

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

import numpy as np
from ubelt import NoParam

# the delayed reader's per-frames state (tests and callers reach it as video._state)
from sampler_core.read import (_image_window, _is_multi_asset, _mode_padding,  # noqa: F401
                               _state, _warp_vid_from_img)
from sampler_core.target import (CENTER_KEYS, INTERPOLATIONS, TIME_SAMPLING,  # noqa: F401
                                 VIDEO_KEYS,
                                 _is_int, center_target_slices, coerce_channels,
                                 coerce_interpolation, coerce_pad, coerce_padkw, coerce_scale,
                                 coerce_space_slice, coerce_window_dims, is_video_target)


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
            if time_slice is None and t.get('time_indices') is None:
                time_slice = slice(0, len(gids))   # explicit gids: positions in the sample
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
    """Validate the loading keys (padkw, scale, interpolation, channels) early.

    The pad was parsed when the target was resolved (``coerce_pad`` /
    :func:`_coerce_video_pad`).
    """
    padkw = coerce_padkw(t.get('padkw'))
    if _mode_padding(padkw) and t.get('use_native_scale', False):
        raise ValueError(f'padkw={padkw!r}: use_native_scale windows pad with nodata only '
                         f'(0 for integers, NaN for floats)')
    t['padkw'] = padkw
    coerce_scale(t.get('scale'))
    coerce_interpolation(t.get('interpolation', 'auto'), t.get('antialias', 'auto'))
    spec = coerce_channels(t.get('channels', None))
    _state(sampler.frames).check_known(spec)


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
def frame_gids(sampler, target_: dict, time_pad=None) -> list:
    """The image id of every time step of a resolved 3-D target, ``None`` for padding.

    Example:
        >>> import sampler_core as ndsampler
        >>> self = ndsampler.CocoSampler.demo('vidshapes1', num_frames=3, image_size=(32, 32))
        >>> t = self._infer_target_attributes({'vidid': 1, 'time_slice': slice(-1, 2)})
        >>> frame_gids(self, t)
        [None, 1, 2]
    """
    if time_pad is None:   # (before, after) padding frames, as resolve parsed them
        time_pad, _ = _coerce_video_pad(target_.get('pad'))
    idxs = _time_indices(sampler, target_)
    if idxs is not None:
        vid_gids = sampler.dset.index.vidid_to_gids[target_['vidid']]
        step = idxs.step
        idxs = range(idxs.start - time_pad[0] * step, idxs.stop + time_pad[1] * step, step)
        return [vid_gids[i] if 0 <= i < len(vid_gids) else None for i in idxs]
    return [None] * time_pad[0] + list(target_['gids']) + [None] * time_pad[1]


def window_aids(sampler, win, visible_thresh: float = 0.0) -> list[int]:
    """Annotation ids of every frame of a window inside its padded window.

    Args:
        sampler (CocoSampler): the sampler.
        win (Window): a resolved window (:func:`sampler_core.window.resolve`).
        visible_thresh: leave out annotations less visible than this.

    Example:
        >>> import sampler_core as ndsampler
        >>> from sampler_core.window import resolve
        >>> self = ndsampler.CocoSampler.demo('vidshapes1', num_frames=2, image_size=(64, 64))
        >>> t = {'vidid': 1, 'space_slice': (slice(0, 40), slice(20, 64))}
        >>> window_aids(self, resolve(self, t)) == self.load_sample(t)['annots']['aids'].tolist()
        True
    """
    state = _state(sampler.frames)
    out = []
    for gid in win.frames:
        if gid is not None:
            _, img_window = _image_window(state, gid, win.space, win.padded_ltrb)
            out.extend(sampler.regions.visible_aids(gid, img_window, visible_thresh)[0].tolist())
    return out


# --------------------------------------------------------------------------- time sampling
def time_indices(n_frames: int, frame: int, time_steps: int, sampling: str = 'contiguous',
                 time_span: int | None = None, rng=None) -> list[int]:
    """The frame indices an item of ``time_steps`` frames reads, around its target frame.

    Every mode reads the target frame ``frame`` and returns sorted, distinct indices:

    * a video of at most ``time_steps`` frames: ``0 .. time_steps - 1``, every frame of
      the video then padding frames (indices ``>= n_frames``: nodata frames);
    * ``'contiguous'``: ``time_steps`` consecutive frames starting at
      ``frame - time_steps // 2``, moved (not cut) to stay inside the video;
    * ``'uniform'`` and ``'random'`` use the span: ``S = min(time_span or n_frames,
      n_frames)`` consecutive frames starting at ``frame - S // 2``, moved to stay inside
      the video. ``'uniform'``: ``start + round_half_up(j * (S - 1) / (time_steps - 1))``
      for ``j = 0 .. time_steps - 1`` (the span's first and last frame included), the one
      nearest ``frame`` (the earlier on a tie) replaced by ``frame``; one step is
      ``frame``. ``'random'``: ``frame`` plus ``time_steps - 1`` frames of the span drawn
      without replacement from ``rng``.

    Args:
        n_frames: frames in the video (>= 1).
        frame: index of the target frame, ``0 <= frame < n_frames``.
        time_steps: frames per item (>= 1).
        sampling: ``'contiguous'``, ``'uniform'`` or ``'random'``.
        time_span: frames the uniform / random frames are spread over (>= time_steps);
            ``None``: the video's length.
        rng (numpy.random.Generator): the draw of ``'random'``.

    Raises:
        ValueError: a bad value, naming it.

    Example:
        >>> time_indices(10, 0, 3), time_indices(10, 9, 3), time_indices(10, 5, 4)
        ([0, 1, 2], [7, 8, 9], [3, 4, 5, 6])
        >>> time_indices(10, 5, 3, 'uniform', time_span=5), time_indices(10, 5, 3, 'uniform')
        ([3, 5, 7], [0, 5, 9])
        >>> time_indices(2, 1, 4, 'random')   # a short video: padded after its frames
        [0, 1, 2, 3]
        >>> import numpy as np
        >>> idx = time_indices(20, 7, 4, 'random', 9, rng=np.random.default_rng(0))
        >>> 7 in idx and idx == sorted(set(idx)) and 3 <= idx[0] and idx[-1] <= 11
        True
    """
    for name, value, low in (('n_frames', n_frames, 1), ('time_steps', time_steps, 1)):
        if not _is_int(value) or value < low:
            raise ValueError(f'{name} must be an integer >= {low}, got {value!r}')
    if not _is_int(frame) or not 0 <= frame < n_frames:
        raise ValueError(f'frame must be an index of the video\'s {n_frames} frames, '
                         f'got {frame!r}')
    if sampling not in TIME_SAMPLING:
        raise ValueError(f'time_sampling must be one of {list(TIME_SAMPLING)}, got {sampling!r}')
    if time_span is not None and (not _is_int(time_span) or time_span < time_steps):
        raise ValueError(f'time_span must be null or an integer >= time_steps={time_steps}, '
                         f'got {time_span!r}')
    n, f, k = int(n_frames), int(frame), int(time_steps)
    if n <= k:
        return list(range(k))
    if sampling == 'contiguous':
        start = min(max(f - k // 2, 0), n - k)
        return list(range(start, start + k))
    span = min(time_span or n, n)
    start = min(max(f - span // 2, 0), n - span)
    if sampling == 'uniform':
        if k == 1:
            return [f]
        grid = [start + (2 * j * (span - 1) + (k - 1)) // (2 * (k - 1)) for j in range(k)]
        nearest = min(range(k), key=lambda j: (abs(grid[j] - f), j))
        grid[nearest] = f
        return grid
    if rng is None:
        raise ValueError('time_sampling="random" needs an rng (numpy.random.Generator)')
    others = [i for i in range(start, start + span) if i != f]
    picked = rng.choice(len(others), size=k - 1, replace=False)
    return sorted([f] + [others[int(i)] for i in picked])


def time_target(sampler, tr: dict, time_steps: int, sampling: str = 'contiguous',
                time_span: int | None = None, rng=None) -> dict:
    """The 3-D target keys that read a 2-D pool target ``tr`` as ``time_steps`` frames.

    The target frame is ``tr['gid']``; the frames are :func:`time_indices` of its
    video. The window keeps its centre and size, warped from the image into video
    space (``warp_img_to_vid``; identical for the kwcoco video demos).

    Returns:
        ``{'vidid', 'gids' (the frames read, in order), 'time_indices' (each time
        step's index in the video; ``>= len(video)`` is a padding frame), 'cx', 'cy',
        'width', 'height'}`` plus ``time_slice`` (``slice(first, last + 1, step)``) when
        the frames are evenly spaced; otherwise the resolved target's ``time_slice`` is
        ``None`` (no slice selects them) and ``time_indices`` names them.

    Raises:
        ValueError: the image belongs to no video (naming it).

    Example:
        >>> import sampler_core as ndsampler
        >>> self = ndsampler.CocoSampler.demo('vidshapes1', num_frames=5, image_size=(64, 64))
        >>> out = time_target(self, {'gid': 1, 'cx': 30.0, 'cy': 20.0}, 3)
        >>> out['gids'], out['time_indices'], out['time_slice']
        ([1, 2, 3], [0, 1, 2], slice(0, 3, None))
    """
    dset = sampler.dset
    gid = tr['gid']
    img = dset.imgs[gid]
    vidid = img.get('video_id', None)
    if vidid is None:
        name = img.get('name') or img.get('file_name')
        raise ValueError(f'image {gid!r} ({name!r}) belongs to no video: config key '
                         f'"time_steps"={time_steps} reads frames of a video; set time_steps '
                         f'to null for 2-D images')
    vid_gids = list(dset.index.vidid_to_gids[vidid])
    idxs = time_indices(len(vid_gids), vid_gids.index(gid), time_steps, sampling, time_span,
                        rng)
    out = {'vidid': vidid, 'time_indices': idxs,
           'gids': [vid_gids[i] for i in idxs if i < len(vid_gids)]}
    steps = {b - a for a, b in zip(idxs, idxs[1:])}
    if len(steps) <= 1:   # evenly spaced: the time_slice that selects them
        step = steps.pop() if steps else 1
        out['time_slice'] = slice(idxs[0], idxs[-1] + 1, None if step == 1 else step)
    if all(k in tr for k in CENTER_KEYS):
        import kwimage
        box = kwimage.Boxes(np.array([[tr['cx'], tr['cy'], tr['width'], tr['height']]],
                                     dtype=np.float64), 'cxywh')
        box = box.warp(_warp_vid_from_img(dset, gid)).to_cxywh().data[0]
        out.update(zip(('cx', 'cy', 'width', 'height'), (float(v) for v in box)))
    return out
