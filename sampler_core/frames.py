"""Pixel access: read image regions, optionally through an ``.npy`` memmap cache.

``Frames`` maps an image id to pixels. Two backends exist:

* ``backend=None``: every read decodes the source file (PNG, JPEG, TIFF ...)
  with kwimage and crops it. Nothing is written to disk.
* ``backend='npy'`` (``'auto'`` means the same): on first use each image is
  decoded once and stored as a raw ``.npy`` file under :attr:`Frames.cache_dpath`;
  later reads memory-map it, so a window costs only the pages it touches.

The cache file of an image is named after a hash of the source file's absolute
path, size and modification time, so an edited image gets a new cache file (a
running sampler notices the edit on its next read: one ``stat`` per read). A
cache file is written under a temporary name in the same folder and renamed
into place, so a reader never sees a half-written file, and two processes
preparing the same image at once each rename a complete file. A cache file
whose header cannot be parsed, whose size disagrees with its header, or whose
shape disagrees with the image's known size is treated as missing and rebuilt.

Pixel arrays are always ``(H, W, C)``: grayscale images get ``C == 1``.

Example:
    >>> from sampler_core.frames import SimpleFrames
    >>> self = SimpleFrames.demo(backend='npy')
    >>> self.load_image(1).shape
    (512, 512, 3)
    >>> self.load_region(1, (slice(-20), slice(-10))).shape
    (492, 502, 3)
"""
from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from sampler_core.hashid import HashIdentifiable

#: sentinel meaning "argument not given" (ndsampler uses ubelt.NoParam)
try:  # pragma: no cover - ubelt is a kwcoco dependency
    from ubelt import NoParam
except ImportError:  # pragma: no cover
    NoParam = object()

#: bump when the layout of cache files changes
CACHE_VERSION = 1

_DEFAULT_CHANNELS = {1: 'gray', 2: 'gray|alpha', 3: 'r|g|b', 4: 'r|g|b|a'}


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/sampler-explorer`` (``~/.cache/sampler-explorer``)."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'sampler-explorer'


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to an ``(H, W, C)`` array in its native dtype.

    Palette images come back as RGB, grayscale as ``C == 1``, 16-bit images as
    ``uint16``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file exists but cannot be decoded (message names it).
    """
    import kwimage
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f'image file does not exist: {path}')
    try:
        data = kwimage.imread(path)
    except Exception as ex:  # kwimage raises OSError / IOError / ValueError
        reason = ' '.join(str(ex).split())  # kwimage's messages span several lines
        raise ValueError(f'cannot read image file {path}: {reason}') from None
    if data is None:
        raise ValueError(f'cannot read image file {path}')
    if data.ndim == 2:
        data = data[:, :, None]
    return np.ascontiguousarray(data)


def _file_key(path: str) -> str:
    st = os.stat(path)
    text = f'v{CACHE_VERSION}|{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}'
    return hashlib.sha1(text.encode('utf8')).hexdigest()[:20]


def open_npy(path: str | os.PathLike, expect_hw: tuple[int, int] | None = None) -> np.memmap | None:
    """Memory-map a cache file, or ``None`` when it is missing, truncated or corrupt.

    Args:
        path: the ``.npy`` file.
        expect_hw: ``(height, width)`` the array must have, when known.
    """
    path = os.fspath(path)
    try:
        with open(path, 'rb') as file:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
            offset = file.tell()
        size = os.path.getsize(path)
    except (OSError, ValueError, EOFError, SyntaxError, TypeError):
        return None
    if fortran or len(shape) != 3 or dtype.hasobject:
        return None
    if offset + int(np.prod(shape)) * dtype.itemsize != size:
        return None
    if expect_hw is not None and tuple(shape[:2]) != tuple(expect_hw):
        return None
    return np.memmap(path, dtype=dtype, mode='r', offset=offset, shape=shape)


def write_npy_atomic(path: str | os.PathLike, data: np.ndarray) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path = os.fspath(path)
    tmp = f'{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    try:
        with open(tmp, 'wb') as file:
            np.lib.format.write_array(file, np.ascontiguousarray(data), allow_pickle=False)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class Frames(HashIdentifiable):
    """Abstract image-id to pixels mapping; subclasses give :meth:`_lookup_gpath`.

    Args:
        hashid_mode: kept for ndsampler compatibility; only ``'PATH'`` is used.
        workdir: folder for the cache (``<workdir>/_cache/frames``); default
            :func:`default_cache_root`.
        backend: ``None``, ``'npy'``, ``'auto'`` or ``{'type': 'npy', 'config': {}}``.

    Raises:
        ValueError: an unknown backend.
    """

    DEFAULT_NPY_CONFIG = {'type': 'npy', 'config': {}}
    DEFAULT_COG_CONFIG = {'type': 'cog', 'config': {'compress': 'auto'}, '_hack_use_cli': True}

    #: how many memory maps stay open
    max_open = 256

    def __init__(self, hashid_mode: str = 'PATH', workdir=None, backend=None):
        super().__init__()
        self.hashid_mode = hashid_mode
        self.workdir = Path(workdir) if workdir is not None else default_cache_root()
        self._backend = self._coerce_backend(backend)
        self._open: OrderedDict[Any, tuple] = OrderedDict()  # id -> (stamp, memmap)
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _coerce_backend(backend) -> dict | None:
        if backend is None:
            return None
        if isinstance(backend, str):
            backend = {'type': backend}
        if not isinstance(backend, Mapping):
            raise TypeError(f'backend must be None, a string or a dict, got {backend!r}')
        kind = backend.get('type')
        if kind == 'auto':
            kind = 'npy'
        if kind != 'npy':
            raise ValueError(f"unknown backend {backend.get('type')!r}; use None, 'npy' or 'auto'")
        return {'type': 'npy', 'config': dict(backend.get('config', {}))}

    @property
    def backend(self) -> dict | None:
        """The backend config ``{'type': 'npy', 'config': {}}`` or ``None``."""
        return self._backend

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_open'] = OrderedDict()
        state['_locks'] = {}
        state.pop('_lock', None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ---------------------------------------------------------- subclass API
    @property
    def image_ids(self) -> list[int]:
        raise NotImplementedError

    def _lookup_gpath(self, image_id) -> str:
        raise NotImplementedError

    def _lookup_hw(self, image_id) -> tuple[int, int] | None:
        """``(height, width)`` when the subclass knows it, else ``None``."""
        return None

    def _lookup_channels(self, image_id, num_bands: int) -> str:
        return _DEFAULT_CHANNELS.get(num_bands, '|'.join(f'c{i}' for i in range(num_bands)))

    def _make_hashid(self):
        return hashlib.sha1(repr(sorted(
            (g, self._lookup_gpath(g)) for g in self.image_ids)).encode()).hexdigest()

    # ------------------------------------------------------------- cache
    @property
    def cache_dpath(self) -> Path | None:
        """Folder of the cached ``.npy`` files, ``None`` without a backend."""
        if self._backend is None:
            return None
        return self.workdir / '_cache' / 'frames' / 'npy'

    @staticmethod
    def _label(image_id) -> str:
        """How error messages name the file of an image."""
        return f'image file of image id {image_id!r}'

    def _cache_fpath(self, image_id) -> Path:
        return self._asset_cache_fpath(self._lookup_gpath(image_id), self._label(image_id))

    def _ensure_cache_dir(self) -> None:
        dpath = self.cache_dpath
        try:
            dpath.mkdir(parents=True, exist_ok=True)
            probe = dpath / f'.write-test-{os.getpid()}-{uuid.uuid4().hex[:6]}'
            probe.write_bytes(b'')
            probe.unlink()
        except OSError as ex:
            raise PermissionError(f'cache folder {dpath} cannot be written: {ex}') from None

    def _path_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def _ensure_cached(self, image_id) -> np.memmap:
        """Open the cache file of ``image_id``, (re)building it when needed."""
        return self._ensure_cached_asset(self._lookup_gpath(image_id), self._lookup_hw(image_id),
                                         self._label(image_id))

    def _read_source(self, image_id) -> np.ndarray:
        return self._read_asset(self._lookup_gpath(image_id), self._lookup_hw(image_id),
                                self._label(image_id))

    def prepare(self, gids: Iterable | None = None, workers: int = 0,
                use_stamp: bool = True, verbose: int = 1) -> None:
        """Build the cache of every image (or of ``gids``) ahead of time.

        Args:
            gids: image ids, default all.
            workers: number of threads (the work is mostly I/O and decoding).
            use_stamp: kept for ndsampler compatibility.
            verbose: show a progress bar when > 0.
        """
        if self._backend is None:
            return
        import ubelt as ub
        gids = list(self.image_ids if gids is None else gids)
        self._ensure_cache_dir()
        jobs = ub.JobPool(mode='thread' if workers > 0 else 'serial', max_workers=workers)
        for gid in gids:
            jobs.submit(self._ensure_cached, gid)
        for job in ub.ProgIter(jobs.as_completed(), total=len(gids), desc='prepare frames',
                               enabled=verbose > 0, verbose=verbose):
            job.result()

    # ------------------------------------------------------------- access
    def _data(self, image_id) -> np.ndarray:
        """The full ``(H, W, C)`` image: a memmap with a backend, else decoded."""
        if self._backend is None:
            return self._read_source(image_id)
        return self._open_cached(image_id, self._lookup_gpath(image_id),
                                 self._lookup_hw(image_id), self._label(image_id))

    def _open_cached(self, key, fpath: str, expect_hw, label: str) -> np.memmap:
        """The memmap of ``fpath``'s cache file, kept open under ``key``.

        The source is stat'ed on every call, so a file edited while we run is
        re-cached, not served stale.
        """
        try:
            st = os.stat(fpath)
        except FileNotFoundError:
            raise FileNotFoundError(f'{label} does not exist: {fpath}') from None
        stamp = (fpath, st.st_size, st.st_mtime_ns)
        entry = self._open.get(key)
        if entry is None or entry[0] != stamp:
            entry = (stamp, self._ensure_cached_asset(fpath, expect_hw, label))
            self._open[key] = entry
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)
        return entry[1]

    def channel_indices(self, image_id, channels, num_bands: int) -> list[int] | None:
        """Band indices of ``channels`` (a kwcoco channel code) in ``image_id``.

        Returns ``None`` for all bands.

        Raises:
            KeyError: the image does not have one of the channels.
        """
        if channels is NoParam or channels is None or channels == '<all>':
            return None
        from delayed_image.channel_spec import FusedChannelSpec
        have = FusedChannelSpec.coerce(self._lookup_channels(image_id, num_bands)).normalize().as_list()
        want = FusedChannelSpec.coerce(channels).normalize().as_list()
        missing = [c for c in want if c not in have]
        if missing:
            raise KeyError(f'image {image_id!r} has channels {"|".join(have)}, not {"|".join(missing)}')
        return [have.index(c) for c in want]

    def load_image(self, image_id, channels=NoParam, cache: bool = True,
                   noreturn: bool = False) -> np.ndarray | None:
        """The whole image ``(H, W, C)``: a read-only memmap with a backend and ``cache``.

        Args:
            image_id: the image id.
            channels: a channel code such as ``'r|g|b'`` or ``'gray'``.
            cache: use (and build) the cache when there is a backend.
            noreturn: only make sure the cache exists.
        """
        if noreturn:
            if self._backend is not None:
                self._ensure_cached(image_id)
            return None
        data = self._data(image_id) if cache else self._read_source(image_id)
        idxs = self.channel_indices(image_id, channels, data.shape[2])
        return data if idxs is None else data[:, :, idxs]

    def load_region(self, image_id, region=None, channels=NoParam, width=None,
                    height=None) -> np.ndarray:
        """A copy of ``image[region]`` with numpy slicing rules, ``(h, w, C)``.

        Args:
            image_id: image id.
            region: ``(slice_y, slice_x)`` (numpy semantics: clipped to the
                image, negative indices count from the end). ``None``: all.
            channels: channel code, see :meth:`load_image`.
            width, height: unused, kept for ndsampler compatibility.
        """
        data = self._data(image_id)
        if region is None:
            region = (slice(None), slice(None))
        region = tuple(region)
        idxs = self.channel_indices(image_id, channels, data.shape[2])
        out = data[region[0], region[1]]
        if idxs is not None:
            out = out[:, :, idxs]
        return np.array(out)

    # ------------------------------------------------------- single files (assets)
    def _asset_cache_fpath(self, fpath: str, label: str = 'image file') -> Path:
        """Cache file of an image file: its stem and a hash of its path, size and mtime.

        Raises:
            FileNotFoundError: the image file does not exist.
        """
        try:
            key = _file_key(fpath)
        except FileNotFoundError:
            raise FileNotFoundError(f'{label} does not exist: {fpath}') from None
        return self.cache_dpath / f'{Path(fpath).stem[:40]}_{key}.npy'

    def load_asset(self, fpath, expect_hw: tuple[int, int] | None = None) -> np.ndarray:
        """All pixels ``(H, W, C)`` of one image file, e.g. an asset of a multi-asset image.

        With a backend the file is cached as ``.npy`` on first use (one cache file per
        asset, shared with :meth:`load_image` when the file is a whole image) and a
        read-only memmap is returned; without one the file is decoded.

        Args:
            fpath: path of the file.
            expect_hw: ``(height, width)`` the file must have, when known.

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: it cannot be decoded, or its size is not ``expect_hw``.

        Example:
            >>> self = SimpleFrames.demo(backend='npy')
            >>> self.load_asset(self._lookup_gpath(1)).shape
            (512, 512, 3)
        """
        fpath = os.fspath(fpath)
        if self._backend is None:
            return self._read_asset(fpath, expect_hw)
        return self._open_cached(('asset', fpath), fpath, expect_hw, 'image file')

    @staticmethod
    def _read_asset(fpath: str, expect_hw=None, label: str = 'image file') -> np.ndarray:
        data = read_image(fpath)
        if expect_hw is not None and tuple(data.shape[:2]) != tuple(expect_hw):
            raise ValueError(f'{label} {fpath} has shape {data.shape[:2]} but the dataset '
                             f'says (height, width)={tuple(expect_hw)}')
        return data

    def _ensure_cached_asset(self, fpath: str, expect_hw=None,
                             label: str = 'image file') -> np.memmap:
        """Open the cache file of an image file, (re)building it when needed."""
        cpath = self._asset_cache_fpath(fpath, label)
        data = open_npy(cpath, expect_hw)
        if data is not None:
            return data
        with self._path_lock(str(cpath)):
            data = open_npy(cpath, expect_hw)  # another thread may have built it
            if data is None:
                self._ensure_cache_dir()
                write_npy_atomic(cpath, self._read_asset(fpath, expect_hw, label))
                data = open_npy(cpath, expect_hw)
                if data is None:  # pragma: no cover - would mean a broken file system
                    raise OSError(f'cache file {cpath} is unreadable right after writing it')
        return data


class SimpleFrames(Frames):
    """Frames for a plain ``{image_id: path}`` mapping.

    Args:
        id_to_path: ``{image_id: path}``.
        workdir: cache folder, see :class:`Frames`.
        backend: see :class:`Frames`.

    Example:
        >>> self = SimpleFrames.demo(backend='npy')
        >>> self.load_image(1)[:-20, :-10].shape
        (492, 502, 3)
    """

    def __init__(self, id_to_path: Mapping, workdir=None, backend=None):
        super().__init__(workdir=workdir, backend=backend)
        self.id_to_path = dict(id_to_path)

    @property
    def image_ids(self) -> list:
        return list(self.id_to_path.keys())

    def _lookup_gpath(self, image_id) -> str:
        try:
            return os.fspath(self.id_to_path[image_id])
        except KeyError:
            raise KeyError(f'unknown image id {image_id!r}') from None

    @classmethod
    def demo(cls, **kw) -> 'SimpleFrames':
        """Frames of one 512x512 RGB photo (scikit-image's astronaut), image id 1."""
        import skimage.data
        from PIL import Image
        dpath = default_cache_root() / 'demo'
        dpath.mkdir(parents=True, exist_ok=True)
        fpath = dpath / 'astronaut.png'
        if not fpath.exists():
            tmp = dpath / f'astronaut.png.tmp-{os.getpid()}.png'
            Image.fromarray(skimage.data.astronaut()).save(tmp)
            os.replace(tmp, fpath)
        kw.setdefault('workdir', dpath)
        return cls({1: fpath}, **kw)


class CocoFrames(Frames):
    """Frames of the images of a kwcoco dataset.

    Args:
        dset (kwcoco.CocoDataset): the dataset; image paths are resolved
            against its bundle folder.
        hashid_mode, workdir, backend: see :class:`Frames`.
        verbose: verbosity.

    Example:
        >>> import kwcoco
        >>> dset = kwcoco.CocoDataset.demo('shapes8')
        >>> self = CocoFrames(dset, backend='npy')
        >>> self.load_region(1, (slice(10, 20), slice(5, 9))).shape
        (10, 4, 3)
    """

    def __init__(self, dset, hashid_mode: str = 'PATH', workdir=None, verbose: int = 0,
                 backend='auto'):
        super().__init__(hashid_mode=hashid_mode, workdir=workdir, backend=backend)
        self.dset = dset
        self.verbose = verbose

    @property
    def image_ids(self) -> list:
        return list(self.dset.imgs.keys())

    def _img(self, image_id) -> dict:
        try:
            return self.dset.imgs[image_id]
        except KeyError:
            raise KeyError(f'unknown image id {image_id!r}') from None

    def _lookup_gpath(self, image_id) -> str:
        img = self._img(image_id)
        file_name = img.get('file_name')
        if file_name is None:
            raise ValueError(f'image {image_id!r} has no file_name: it is a multi-asset image, '
                             f'read its files with asset_fpaths / load_asset')
        # resolving a path through kwcoco costs ~15 us; remember it per file_name
        cache = self.__dict__.setdefault('_gpath_cache', {})
        hit = cache.get(image_id)
        if hit is None or hit[0] != file_name:
            hit = cache[image_id] = (file_name, os.fspath(self.dset.get_image_fpath(image_id)))
        return hit[1]

    def _lookup_hw(self, image_id):
        img = self._img(image_id)
        if img.get('height') is None or img.get('width') is None:
            return None
        return (int(img['height']), int(img['width']))

    def _lookup_channels(self, image_id, num_bands: int) -> str:
        chans = self._img(image_id).get('channels', None)
        if chans is None:
            return super()._lookup_channels(image_id, num_bands)
        from delayed_image.channel_spec import FusedChannelSpec
        spec = FusedChannelSpec.coerce(chans).normalize()
        if spec.numel() != num_bands:
            return super()._lookup_channels(image_id, num_bands)
        return spec.spec

    # ------------------------------------------------------- multi-asset images
    def is_multi_asset(self, image_id) -> bool:
        """True when the image is made of several files (kwcoco ``auxiliary`` / ``assets``)."""
        img = self._img(image_id)
        return img.get('file_name') is None or bool(img.get('auxiliary')) or \
            bool(img.get('assets'))

    def asset_fpaths(self, image_id) -> list[tuple[str, tuple[int, int] | None]]:
        """``[(path, (height, width) or None), ...]`` of every file of an image.

        Example:
            >>> import kwcoco
            >>> dset = kwcoco.CocoDataset.demo('vidshapes1-msi', num_frames=1, image_size=(32, 32))
            >>> [hw for _, hw in CocoFrames(dset).asset_fpaths(1)]
            [(32, 32), (6, 6), (11, 11), (32, 32), (11, 11)]
        """
        img = self._img(image_id)
        root = self.dset.bundle_dpath
        objs = ([img] if img.get('file_name') is not None else []) + \
            list(img.get('auxiliary', None) or []) + list(img.get('assets', None) or [])
        out = []
        for obj in objs:
            hw = None
            if obj.get('height') is not None and obj.get('width') is not None:
                hw = (int(obj['height']), int(obj['width']))
            out.append((os.path.join(root, obj['file_name']), hw))
        return out

    def _ensure_cached(self, image_id):
        if self.is_multi_asset(image_id):  # one cache file per asset
            for fpath, hw in self.asset_fpaths(image_id):
                self._ensure_cached_asset(fpath, hw)
            return None
        return super()._ensure_cached(image_id)

    def load_image(self, image_id, channels=NoParam, cache: bool = True,
                   noreturn: bool = False):
        """The whole image ``(H, W, C)``; multi-asset images are warped into image space.

        See :meth:`Frames.load_image`. A multi-asset image comes back as a new
        array with every asset resampled into the image grid (channels it lacks
        are NaN).
        """
        if not self.is_multi_asset(image_id):
            return super().load_image(image_id, channels=channels, cache=cache,
                                      noreturn=noreturn)
        if noreturn:
            if self._backend is not None:
                self._ensure_cached(image_id)
            return None
        from sampler_core.read import load_image_space
        return load_image_space(self, image_id, None if channels is NoParam else channels)

    def load_region(self, image_id, region=None, channels=NoParam, width=None,
                    height=None) -> np.ndarray:
        """``image[region]``, see :meth:`Frames.load_region` (multi-asset: image space)."""
        if not self.is_multi_asset(image_id):
            return super().load_region(image_id, region, channels=channels, width=width,
                                       height=height)
        from sampler_core.read import load_image_space
        return load_image_space(self, image_id, None if channels is NoParam else channels,
                                region)
