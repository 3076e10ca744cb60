"""Ahead-of-time work for training: build the frame cache, export chips.

* :func:`prepare_cache` decodes every image of a config's dataset once into the
  frame cache (``.npy``, see :mod:`sampler_core.frames`, or tiled, compressed
  TIFFs with ``backend: cog``, see :mod:`sampler_core.cog`), with a thread pool or
  on an existing ``dask.distributed`` cluster. Each file is written under a
  temporary name and renamed into place, so several processes (or cluster
  workers) may prepare the same cache at once, and a process killed mid-write
  leaves only a temporary file that is never read (and is removed by a later
  :func:`prepare_cache` once it is an hour old).
* :func:`export_chips` writes the sampled windows of a config as a new kwcoco
  dataset (one image per window, annotations clipped to it), for training code
  that wants pre-chipped data.

Both are what the ``sampler-explorer prepare`` and ``export-chips`` commands run.

Example:
    >>> import tempfile, kwcoco
    >>> from sampler_core import SamplingConfig
    >>> from sampler_core.prepare import prepare_cache, export_chips
    >>> tmp = tempfile.mkdtemp()
    >>> cfg = SamplingConfig(dataset='shapes8', workdir=tmp, window_dims=(32, 32),
    ...                      n_pos=3, n_neg=1, backend='npy')
    >>> stats = prepare_cache(cfg, verbose=0)
    >>> stats['built'] + stats['cached'] == stats['n_images'] == 8
    True
    >>> paths = export_chips(cfg, tmp + '/chips', verbose=0)
    >>> chips = kwcoco.CocoDataset(paths['train'])
    >>> chips.n_images, chips.imgs[1]['width']
    (4, 32)
"""
from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sampler_core.frames import (CacheCorruptError, open_backend_file, read_image,
                                 write_backend_file, write_error)

#: temporary cache files older than this (seconds) are left-overs of killed writers
STALE_TMP_SECONDS = 3600


def _coerce_config(config, allow_hash_mismatch: bool = False):
    from sampler_core.config import SamplingConfig
    if isinstance(config, SamplingConfig):
        return config
    if isinstance(config, dict):
        return SamplingConfig.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        if os.path.isdir(path):
            raise ValueError(f'config {path} is a folder; give the .yaml / .json config file '
                             f'exported by the explorer')
        try:
            return SamplingConfig.load(path)
        except UnicodeDecodeError as ex:
            raise ValueError(f'config {path} is not UTF-8 text (byte {ex.object[ex.start]:#04x} '
                             f'at offset {ex.start}); save it as UTF-8') from None
    raise TypeError(f'expected a SamplingConfig, dict or path, got {type(config).__name__}')


def build_cache_file(cache_fpath: str, image_fpath: str, expect_hw=None,
                     verify: bool = False, backend: dict | None = None) -> str:
    """Make sure ``cache_fpath`` holds the decoded pixels of ``image_fpath``.

    Safe to run in several processes at once: each writes a complete temporary
    file and renames it into place.

    Args:
        cache_fpath: the ``.npy`` cache file.
        image_fpath: the source image.
        expect_hw: ``(height, width)`` the image must have, when known.
        verify: check every tile of an existing file against its checksums
            (reads the whole file); a damaged one is rebuilt with a warning.
        backend: the frames' backend config (default ``{'type': 'npy'}``); ``cog``
            writes a tiled, compressed TIFF (:mod:`sampler_core.cog`).

    Returns:
        ``'cached'`` (a valid file existed) or ``'built'``.

    Raises:
        FileNotFoundError: the source image does not exist.
        ValueError: its size differs from ``expect_hw`` or it cannot be decoded.
    """
    expect_hw = None if expect_hw is None else tuple(expect_hw)
    backend = backend or {'type': 'npy'}
    data, problem = open_backend_file(backend, cache_fpath, expect_hw)
    if data is not None:
        if not verify:
            return 'cached'
        try:
            data.verify()
            return 'cached'
        except CacheCorruptError as ex:
            warnings.warn(f'{ex}; rebuilt from {image_fpath}', stacklevel=2)
        finally:
            del data
    elif problem != 'missing':
        warnings.warn(f'cache file {cache_fpath} cannot be used ({problem}); rebuilt from '
                      f'{image_fpath}', stacklevel=2)
    pixels = read_image(image_fpath)
    if expect_hw is not None and tuple(pixels.shape[:2]) != expect_hw:
        raise ValueError(f'image {image_fpath} has shape {pixels.shape[:2]} but the dataset says '
                         f'(height, width)={expect_hw}')
    os.makedirs(os.path.dirname(cache_fpath), exist_ok=True)
    write_backend_file(backend, cache_fpath, pixels)
    if open_backend_file(backend, cache_fpath, expect_hw)[0] is None:  # pragma: no cover
        raise OSError(f'cache file {cache_fpath} is unreadable right after writing it')
    return 'built'


def remove_stale_tmp(cache_dpath, max_age: float = STALE_TMP_SECONDS) -> int:
    """Delete temporary cache files (``*.npy.tmp-*``, ``*.tif.tmp-*``) older than ``max_age`` s.

    Returns:
        the number removed.
    """
    cache_dpath = Path(cache_dpath)
    if not cache_dpath.exists():
        return 0
    now = time.time()
    removed = 0
    for path in [*cache_dpath.glob('*.npy.tmp-*'), *cache_dpath.glob('*.tif.tmp-*')]:
        try:
            if now - path.stat().st_mtime > max_age:
                path.unlink()
                removed += 1
        except OSError:  # another process removed or renamed it
            pass
    return removed


def _frames_of(config, allow_hash_mismatch: bool = False, backend=None):
    from sampler_core.frames import CocoFrames
    from sampler_core.sampler import _coerce_dset, _ensure_imgsize
    if config.backend is None and backend is None:
        raise ValueError('config key "backend" is null: there is no frame cache to prepare; '
                         'set backend: npy (or cog)')
    dset = _coerce_dset(config.dataset)
    _ensure_imgsize(dset)
    config.check_dataset(dset, allow_hash_mismatch=allow_hash_mismatch)
    frames = CocoFrames(dset, workdir=config.workdir, backend=backend or config.backend)
    frames.workdir = frames.workdir.absolute()
    return frames


def prepare_cache(config, workers: int = 0, scheduler: Any = None, verbose: int = 1,
                  allow_hash_mismatch: bool = False, verify: bool = False,
                  backend: Any = None) -> dict:
    """Build the frame cache (``.npy`` or ``cog``) of every image of a config's dataset.

    Args:
        config: a :class:`~sampler_core.config.SamplingConfig`, its dict, or the
            path of a YAML / JSON config.
        workers: threads decoding images (0: in this thread).
        scheduler: run on a ``dask.distributed`` cluster instead: its address
            (``'tcp://host:8786'``) or a ``distributed.Client``. The workers must
            see the dataset and the cache folder at the same paths.
        verbose: progress bar when > 0.
        allow_hash_mismatch: see :meth:`sampler_core.CocoSampler.from_config`.
        verify: read every existing cache file whole and check it against its
            checksums, rebuilding damaged ones (otherwise a file is checked tile
            by tile when a sampler first reads it).
        backend: ``'npy'``, ``'cog'`` or a backend dict, instead of the config's.

    Returns:
        dict: ``n_images``, ``cached`` (already valid), ``built``,
        ``stale_removed`` (temporary files of killed writers), ``seconds``,
        ``cache_dpath``.

    Raises:
        ValueError: the config has no backend, or the dataset's hash changed.
        FileNotFoundError: the dataset or an image is missing.
    """
    import ubelt as ub
    t0 = time.perf_counter()
    config = _coerce_config(config)
    frames = _frames_of(config, allow_hash_mismatch, backend)
    cache_dpath = frames.cache_dpath
    frames._ensure_cache_dir()
    stale = remove_stale_tmp(cache_dpath)
    jobs = []
    for gid in frames.image_ids:
        jobs.append((os.fspath(frames._cache_fpath(gid)), frames._lookup_gpath(gid),
                     frames._lookup_hw(gid), bool(verify), frames.backend))
    counts = {'cached': 0, 'built': 0}
    desc = 'prepare frames'
    if scheduler is not None:
        results = _run_dask(jobs, scheduler, desc, verbose)
    else:
        workers = int(workers)
        if workers < 0:
            raise ValueError(f'workers must not be negative, got {workers}')
        pool = ub.JobPool(mode='thread' if workers > 0 else 'serial', max_workers=workers)
        for job in jobs:
            pool.submit(build_cache_file, *job)
        results = (fut.result() for fut in ub.ProgIter(
            pool.as_completed(), total=len(jobs), desc=desc, enabled=verbose > 0,
            verbose=verbose))
    for status in results:
        counts[status] += 1
    return {'n_images': len(jobs), 'cached': counts['cached'], 'built': counts['built'],
            'stale_removed': stale, 'seconds': time.perf_counter() - t0,
            'cache_dpath': os.fspath(cache_dpath)}


def _run_dask(jobs, scheduler, desc: str, verbose: int):
    import ubelt as ub
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ValueError('--scheduler needs dask.distributed: pip install dask distributed') from None
    own = not isinstance(scheduler, Client)
    if own:
        try:
            client = Client(scheduler, timeout='20s')
        except (OSError, TimeoutError) as ex:
            if isinstance(ex, FileNotFoundError):
                raise
            raise ValueError(f'cannot connect to the dask scheduler {scheduler!r}: {ex}') from None
    else:
        client = scheduler
    try:
        if not jobs:
            return []
        cache, image, hw, verify, backend = zip(*jobs)
        futures = client.map(build_cache_file, cache, image, hw, verify, backend, pure=False)
        out = []
        for fut in ub.ProgIter(as_completed(futures), total=len(futures), desc=desc,
                               enabled=verbose > 0, verbose=verbose):
            out.append(fut.result())
        return out
    finally:
        if own:
            client.close()


# ---------------------------------------------------------------------------
# export chips
# ---------------------------------------------------------------------------
def _image_ext(im: np.ndarray) -> str:
    return '.png' if im.dtype == np.uint8 and im.shape[2] in (1, 3, 4) else '.tif'


def _chip_annots(dets, kp_name_to_id: dict) -> list[dict]:
    """kwcoco annotation dicts (no ids) of clipped, window-relative detections."""
    out = []
    xywh = dets.boxes.to_xywh().data.reshape(-1, 4)
    ssegs = dets.data.get('segmentations', None)
    kpts = dets.data.get('keypoints', None)
    visible = dets.data.get('visible', None)
    for i in range(len(dets)):
        x, y, w, h = (float(v) for v in xywh[i])
        ann = {'category_id': int(dets.data['cids'][i]), 'bbox': [x, y, w, h],
               'area': w * h, 'source_aid': int(dets.data['aids'][i])}
        if visible is not None:
            ann['visible'] = float(visible[i])
        sseg = None if ssegs is None else ssegs.data[i]
        if sseg is not None:
            ann['segmentation'] = sseg.to_coco('orig')
            ann['area'] = float(sseg.to_shapely().area)
        pts = None if kpts is None else kpts.data[i]
        if pts is not None and len(pts):
            kps = pts.to_coco('new')
            for kp in kps:
                name = kp.pop('keypoint_category', None)
                if name is not None and name in kp_name_to_id:
                    kp['keypoint_category_id'] = kp_name_to_id[name]
            ann['keypoints'] = kps
        out.append(ann)
    return out


def export_chips(config, outdir, subsets=None, workers: int = 0, overwrite: bool = False,
                 verbose: int = 1, allow_hash_mismatch: bool = False) -> dict[str, str]:
    """Write the sampled windows of ``config`` as new kwcoco datasets.

    For each subset, ``OUTDIR/<subset>.kwcoco.json`` lists one image per pool
    window (positives, then negatives), stored as ``OUTDIR/<subset>/chip_<i>.png``
    (``.tif`` for data that is not 1, 3 or 4 channels of uint8). Annotations are
    clipped to the window (including its pad): boxes clipped, polygons
    intersected, keypoints outside dropped; coordinates are chip pixels. Each
    image records where it came from (``source``: ``gid``, ``file_name``,
    ``window`` ltrb in source pixels, ``pool_index``, ``aid``) and each
    annotation its ``source_aid``. With ``time_steps`` every window is a kwcoco video
    (``videos``) of ``time_steps`` images ``chip_<i>_t<step>``, in order
    (``frame_index``); each names its source frame (``gid``, ``None`` for a padding
    frame; ``time_index`` in the source video) and its window is in video pixels.

    Args:
        config: a config, its dict or path (see :func:`prepare_cache`).
        outdir: output folder (created).
        subsets: ``'train'``, ``'val'`` or a list; default ``['train']``, plus
            ``'val'`` when the config has a split.
        workers: threads loading windows.
        overwrite: replace existing exports (else refuse).
        verbose: progress bar when > 0.
        allow_hash_mismatch: see :meth:`sampler_core.CocoSampler.from_config`.

    Returns:
        ``{subset: path of the written .kwcoco.json}``.

    Raises:
        ValueError: an export exists and ``overwrite`` is False, an unknown subset,
            or more windows than fit in memory.
        OSError: a chip or the dataset cannot be written (the message names it).
    """
    from sampler_core.sampler import CocoSampler
    config = _coerce_config(config)
    if subsets is None:
        subsets = ['train'] if config.split_by == 'none' else ['train', 'val']
    elif isinstance(subsets, str):
        subsets = [subsets]
    for subset in subsets:
        if subset not in ('train', 'val'):
            raise ValueError(f"subsets must be 'train' and/or 'val', got {subset!r}")
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ValueError(f'output folder {outdir} is a file; give a folder (created if missing)')
    for subset in subsets:
        fpath = outdir / f'{subset}.kwcoco.json'
        if fpath.exists() and not overwrite:
            raise ValueError(f'{fpath} exists; pass overwrite=True (--overwrite) to replace it')
    written = {}
    for subset in subsets:
        try:
            sampler = CocoSampler.from_config(config, subset=subset,
                                              allow_hash_mismatch=allow_hash_mismatch)
        except MemoryError as ex:
            asked = ', '.join(f'{key}={getattr(config, key, None)!r}' for key in
                              ('mode', 'n_pos', 'n_neg', 'neg_to_pos_ratio', 'window_dims'))
            raise ValueError(f'not enough memory to draw the windows the config asks for '
                             f'({asked}): {ex}; ask for fewer windows') from None
        written[subset] = os.fspath(_export_subset(sampler, outdir, subset, workers, verbose))
    return written


def _export_subset(sampler, outdir: Path, subset: str, workers: int, verbose: int) -> Path:
    import kwimage
    import ubelt as ub
    dset = sampler.dset
    img_dpath = outdir / subset
    if img_dpath.exists():
        shutil.rmtree(img_dpath)
    img_dpath.mkdir(parents=True)
    kp_name_to_id = {kc['name']: kc['id'] for kc in dset.dataset.get('keypoint_categories', [])}
    n_pos = sampler.regions.n_positives
    n = sampler.n_samples
    width = max(6, len(str(max(n - 1, 0))))

    def one(index):
        sample = sampler.load_item(index, target={'clip_annots': True})
        im = np.asarray(sample['im'])
        if im.ndim == 2:
            im = im[:, :, None]
        tr = sample['target']
        is_video = im.ndim == 4      # time_steps frames: one image per time step
        x0, y0, x1, y1 = (int(round(v)) for v in
                          np.asarray(sample['params']['sample_tlbr'].data).reshape(-1)[:4])
        main = dset.imgs[tr['gid']]
        frame_gids = list(sample['params']['frame_gids']) if is_video else [tr['gid']]
        out = []
        for step, frame in enumerate(im if is_video else im[None]):
            stem = f'chip_{index:0{width}d}' + (f'_t{step}' if is_video else '')
            rel = f'{subset}/{stem}{_image_ext(frame)}'
            chip = os.fspath(outdir / rel)
            try:
                if rel.endswith('.png'):
                    kwimage.imwrite(chip, frame[:, :, 0] if frame.shape[2] == 1 else frame)
                else:
                    kwimage.imwrite(chip, frame, backend='skimage')
            except OSError as ex:  # e.g. a full disk: no partial chip is left
                _remove_quietly(chip)
                raise write_error(chip, ex, 'chip') from None
            gid = frame_gids[step]
            src = dset.imgs[gid] if gid is not None else {}
            img = {
                'file_name': rel, 'width': int(frame.shape[1]), 'height': int(frame.shape[0]),
                'source': {'gid': None if gid is None else int(gid),
                           'file_name': src.get('file_name'),
                           'window': [x0, y0, x1, y1], 'pool_index': int(index),
                           'aid': int(tr.get('aid', -1) if tr.get('aid') is not None else -1),
                           'kind': 'positive' if index < n_pos else 'negative'},
            }
            if is_video:   # the window is in video pixels; the frame's index in its video
                img['frame_index'] = step
                img['source'].update(space='video', vidid=tr['vidid'],
                                     time_index=int(tr['time_indices'][step]))
            channels = tr.get('channels') or main.get('channels')
            if channels:
                img['channels'] = channels
            out.append((img, _chip_annots(sample['annots']['clipped_dets'][step],
                                          kp_name_to_id)))
        video = None
        if is_video:
            video = {'name': f'chip_{index:0{width}d}', 'width': int(im.shape[2]),
                     'height': int(im.shape[1]),
                     'source': {'vidid': tr['vidid'], 'gid': int(tr['gid']),
                                'pool_index': int(index)}}
        return video, out

    pool = ub.JobPool(mode='thread' if workers > 0 else 'serial', max_workers=workers)
    futures = [pool.submit(one, i) for i in range(n)]
    for _ in ub.ProgIter(pool.as_completed(), total=n, desc=f'export {subset} chips',
                         enabled=verbose > 0, verbose=verbose):
        pass
    images, annotations, videos = [], [], []
    for fut in futures:
        video, frames = fut.result()
        if video is not None:
            video['id'] = len(videos) + 1
            videos.append(video)
        for img, anns in frames:
            img['id'] = len(images) + 1
            if video is not None:
                img['video_id'] = video['id']
            images.append(img)
            for ann in anns:
                ann['id'] = len(annotations) + 1
                ann['image_id'] = img['id']
                annotations.append(ann)
    data = {
        'info': [{'type': 'sampler-explorer export-chips', 'subset': subset,
                  'source_dataset': os.fspath(getattr(dset, 'fpath', '') or ''),
                  'config': sampler.config.to_dict() if sampler.config is not None else None}],
        'categories': [dict(c) for c in dset.dataset.get('categories', [])],
        'keypoint_categories': [dict(c) for c in dset.dataset.get('keypoint_categories', [])],
        'images': images,
        'annotations': annotations,
    }
    if videos:
        data['videos'] = videos
    fpath = outdir / f'{subset}.kwcoco.json'
    tmp = fpath.with_name(f'.{fpath.name}.tmp-{os.getpid()}')
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, fpath)
    except OSError as ex:
        raise write_error(fpath, ex, 'dataset') from None
    finally:
        _remove_quietly(tmp)
    return fpath


def _remove_quietly(path) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


# ---------------------------------------------------------------------------
# command line (registered by app/cli.py)
# ---------------------------------------------------------------------------
def add_subcommands(sub) -> None:
    """Add ``prepare`` and ``export-chips`` to the ``sampler-explorer`` subparsers."""
    p = sub.add_parser(
        'prepare', help='build the frame cache of a config\'s dataset (before training)',
        description='Decode every image of the config\'s dataset once into the frame cache '
                    '(config keys backend: npy or cog, and workdir), with a progress bar. Safe '
                    'to run in several processes at once.')
    p.add_argument('config', help='sampling config (.yaml or .json) exported by the explorer')
    p.add_argument('--workers', type=int, default=0, metavar='N',
                   help='threads decoding images (default: 0, decode in the main thread)')
    p.add_argument('--scheduler', default=None, metavar='ADDRESS',
                   help='run on an existing dask.distributed cluster at ADDRESS '
                        '(e.g. tcp://10.0.0.5:8786) instead of local threads; the workers must '
                        'see the dataset and the cache folder at the same paths')
    p.add_argument('--allow-hash-mismatch', action='store_true',
                   help='warn instead of failing when the dataset changed since the config '
                        'was exported')
    p.add_argument('--backend', choices=['npy', 'cog'], default=None,
                   help='cache to build instead of the config\'s backend: npy (memory-mapped, '
                        'uncompressed) or cog (tiled, compressed TIFFs; the cog extra)')
    p.add_argument('--verify', action='store_true',
                   help='read every existing cache file and check it against its checksums, '
                        'rebuilding damaged ones (samplers otherwise check each part of a file '
                        'when they first read it)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser(
        'export-chips', help='write the sampled windows as a new kwcoco dataset',
        description='Sample the windows of a config and write each as an image of a new kwcoco '
                    'dataset OUTDIR/<subset>.kwcoco.json, with its annotations clipped to the '
                    'window, for training on pre-chipped data.')
    p.add_argument('config', help='sampling config (.yaml or .json) exported by the explorer')
    p.add_argument('outdir', help='output folder (created)')
    p.add_argument('--subset', action='append', choices=['train', 'val'], default=None,
                   help='subset to export; repeatable (default: train, and val when the config '
                        'has a split)')
    p.add_argument('--workers', type=int, default=0, metavar='N',
                   help='threads loading windows (default: 0)')
    p.add_argument('--overwrite', action='store_true',
                   help='replace an existing export in OUTDIR')
    p.add_argument('--allow-hash-mismatch', action='store_true',
                   help='warn instead of failing when the dataset changed since the config '
                        'was exported')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=_cmd_export_chips)


def _cmd_prepare(args) -> int:
    try:
        stats = prepare_cache(args.config, workers=args.workers, scheduler=args.scheduler,
                              verbose=0 if args.quiet else 1,
                              allow_hash_mismatch=args.allow_hash_mismatch,
                              verify=args.verify, backend=args.backend)
    except NotImplementedError as ex:
        raise ValueError(str(ex)) from None
    print(f"prepared {stats['n_images']} images in {stats['seconds']:.1f} s "
          f"({stats['built']} built, {stats['cached']} already cached) -> {stats['cache_dpath']}")
    return 0


def _cmd_export_chips(args) -> int:
    try:
        paths = export_chips(args.config, args.outdir, subsets=args.subset, workers=args.workers,
                             overwrite=args.overwrite, verbose=0 if args.quiet else 1,
                             allow_hash_mismatch=args.allow_hash_mismatch)
    except NotImplementedError as ex:
        raise ValueError(str(ex)) from None
    for subset, path in paths.items():
        print(f'wrote {subset} chips: {path}')
    return 0
