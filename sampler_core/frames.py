"""Pixel access: read image regions, optionally through an ``.npy`` memmap cache.

``Frames`` maps an image id to pixels. Two backends exist:

* ``backend=None``: a read decodes the whole source file (PNG, JPEG, TIFF ...)
  with kwimage and crops it. Nothing is written to disk. The last decoded
  frames are kept in memory, up to :data:`DECODED_CACHE_BYTES` (least recently
  used out first), so consecutive windows of one image decode it once; an image
  larger than :data:`LARGE_FRAME_BYTES` decoded gets one warning suggesting
  ``backend='npy'``.
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

Every cache file carries checksums of its pixels, written into the same file
(a trailer after the ``.npy`` data, so one rename publishes pixels and
checksums together and they can never disagree after a crash; ``numpy.load``
still reads the file): one CRC-32 per tile of :data:`CHECK_TILE` pixels (all
channels; tiles on the right and bottom edges are smaller) plus one of the
header. A memory map checks a tile the first time a read touches it, so the
first read of a window costs the checksums of the tiles it overlaps (at most
one tile more per side than the window itself), once per process; a file
damaged on disk (zeroed pages, bit rot) is caught at the first read of the
damaged part: it is rebuilt from the source image with a warning naming it,
and the read returns the source pixels. ``load_image`` and ``prepare --verify``
check every tile. Files written before the checksums existed (no trailer) or
with an older checksum layout are rebuilt.

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
import math
import os
import re
import threading
import uuid
import warnings
import zlib
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

#: bump when the layout of cache files changes (2: checksum trailer, 3: one checksum per tile)
CACHE_VERSION = 3

#: bytes of decoded frames a ``backend=None`` Frames keeps in memory (least recently used
#: out first); a frame larger than this is decoded again for every read
DECODED_CACHE_BYTES = 3 * 2 ** 29  # 1.5 GiB: one 20,000 x 20,000 RGB frame fits

#: a decoded frame larger than this gets one warning suggesting ``backend='npy'``
LARGE_FRAME_BYTES = 2 ** 28

#: ``(rows, columns)`` of pixels per checksum (CRC-32 of the tile's bytes, all channels)
#: in a cache file written from now on (a file records the tile size it was written with)
CHECK_TILE = (64, 64)

#: bytes of tiles :func:`tile_crcs` copies at once
_TILE_GATHER_BYTES = 1 << 23

#: the trailer after a cache file's data: ``n_tiles`` little-endian uint32 CRC-32s of the
#: tiles in row-major order, then this footer (CRC-32 of the header bytes, tile height,
#: tile width, n_tiles, magic)
_FOOTER = np.dtype([('header_crc', '<u4'), ('tile_h', '<u4'), ('tile_w', '<u4'),
                    ('n_tiles', '<u8'), ('magic', 'S8')])
_MAGIC = b'SXCRC32\x02'
#: the magic of the trailer of cache version 2 (one checksum per 1 MiB of data)
_MAGIC_V2 = b'SXCRC32\x01'

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


def tile_grid(shape: tuple[int, ...], tile: tuple[int, int]) -> tuple[int, int]:
    """``(rows, columns)`` of checksum tiles of an array of ``shape``.

    Example:
        >>> tile_grid((300, 130, 3), (64, 64))
        (5, 3)
    """
    return (-(-shape[0] // tile[0]), -(-shape[1] // tile[1]))


def tile_crcs(data: np.ndarray, tile: tuple[int, int], rows: tuple[int, int] | None = None,
              cols: tuple[int, int] | None = None) -> np.ndarray:
    """CRC-32 of the bytes of each tile of ``data`` (``(H, W, ...)``, C-order tiles).

    Tile ``(i, j)`` is ``data[i * th:(i + 1) * th, j * tw:(j + 1) * tw]`` (all
    channels) with ``tile = (th, tw)``; its checksum is ``zlib.crc32`` of that
    block made contiguous. Only the pixels of the tiles asked for are read.

    Args:
        data: the array (a memmap is read only where the tiles lie).
        tile: ``(th, tw)`` pixels per tile.
        rows: tile rows ``[i0, i1)``, default all.
        cols: tile columns ``[j0, j1)``, default all.

    Returns:
        ``(i1 - i0, j1 - j0)`` uint32 checksums.

    Example:
        >>> import zlib
        >>> data = np.arange(5 * 3 * 2, dtype=np.uint8).reshape(5, 3, 2)
        >>> crcs = tile_crcs(data, (2, 2))
        >>> crcs.shape
        (3, 2)
        >>> int(crcs[2, 1]) == zlib.crc32(bytes([28, 29]))  # the corner tile: pixel (4, 2)
        True
    """
    th, tw = tile
    n_i, n_j = tile_grid(data.shape, tile)
    i0, i1 = (0, n_i) if rows is None else rows
    j0, j1 = (0, n_j) if cols is None else cols
    out = np.zeros((max(i1 - i0, 0), max(j1 - j0, 0)), dtype='<u4')
    if out.size == 0:
        return out
    y0, y1 = i0 * th, min(i1 * th, data.shape[0])
    x0, x1 = j0 * tw, min(j1 * tw, data.shape[1])
    # the last row / column of tiles may be smaller than a tile
    full_i, full_j = (y1 - y0) // th, (x1 - x0) // tw
    # whole tiles: (k * th, full_j * tw, ...) -> (k, full_j, th, tw, ...), one copy per
    # band of k tile rows (a few MiB, so a whole-file check needs little memory)
    band_bytes = th * (x1 - x0) * data.itemsize * math.prod(data.shape[2:])
    step = max(1, _TILE_GATHER_BYTES // max(band_bytes, 1))
    for a in range(0, full_i if full_j else 0, step):
        k = min(step, full_i - a)
        block = data[y0 + a * th:y0 + (a + k) * th, x0:x0 + full_j * tw]
        tiles = np.ascontiguousarray(block.reshape(
            (k, th, full_j, tw) + data.shape[2:]).swapaxes(1, 2)).reshape(k * full_j, -1)
        out[a:a + k, :full_j] = np.array([zlib.crc32(t) for t in tiles],
                                         dtype='<u4').reshape(k, full_j)
    for di, dj in [(di, full_j) for di in range(out.shape[0]) if full_j < out.shape[1]] + \
            [(full_i, dj) for dj in range(full_j) if full_i < out.shape[0]]:
        ty, tx = y0 + di * th, x0 + dj * tw
        out[di, dj] = zlib.crc32(np.ascontiguousarray(data[ty:ty + th, tx:tx + tw]))
    return out


class CacheCorruptError(ValueError):
    """A tile of a cache file does not match its checksum (the file names it)."""


class _TileCheck:
    """Per-file state of a :class:`CheckedMemmap`: checksums and tiles verified so far."""

    def __init__(self, path: str, crcs: np.ndarray, tile: tuple[int, int]):
        self.path = path
        self.crcs = crcs  # (n_i, n_j)
        self.tile = tile
        self.verified = np.zeros(crcs.shape, dtype=bool)
        self.n_left = crcs.size
        self.done = self.n_left == 0  # every tile verified
        #: called with the bad tile ``(i, j)``, returns a good replacement memmap
        self.on_corrupt = None
        self.replacement = None
        self.lock = threading.Lock()

    def first_bad(self, data: np.ndarray, rows: tuple[int, int],
                  cols: tuple[int, int]) -> tuple[int, int] | None:
        """Verify the tiles of ``data`` (the whole map) overlapping ``rows`` x ``cols``.

        Args:
            data: the whole map.
            rows, cols: pixel ranges ``[start, stop)`` a read covers.

        Returns:
            the first tile ``(i, j)`` that does not match its checksum, or ``None``.
        """
        (r0, r1), (c0, c1) = rows, cols
        if r1 <= r0 or c1 <= c0:
            return None
        th, tw = self.tile
        i0, i1 = r0 // th, -(-r1 // th)
        j0, j1 = c0 // tw, -(-c1 // tw)
        todo = ~self.verified[i0:i1, j0:j1]  # a copy: other threads may check tiles meanwhile
        if not todo.any():
            return None
        ia, ib, ja, jb = i0, i0 + todo.shape[0], j0, j0 + todo.shape[1]
        if not todo.all():  # the smallest rectangle of tiles holding every unchecked one
            di, dj = np.flatnonzero(todo.any(axis=1)), np.flatnonzero(todo.any(axis=0))
            ia, ib, ja, jb = i0 + di[0], i0 + di[-1] + 1, j0 + dj[0], j0 + dj[-1] + 1
        plain = np.ndarray.view(data, np.ndarray)  # indexing it does not check again
        bad = tile_crcs(plain, self.tile, (ia, ib), (ja, jb)) != self.crcs[ia:ib, ja:jb]
        if bad.any():
            bi, bj = np.argwhere(bad)[0].tolist()
            return (int(ia) + bi, int(ja) + bj)
        with self.lock:  # threads may check overlapping tiles at once: count each once
            self.n_left -= int(np.count_nonzero(~self.verified[ia:ib, ja:jb]))
            self.verified[ia:ib, ja:jb] = True
            self.done = self.n_left == 0
        return None


def _axis_span(index, n: int) -> tuple[int, int] | None:
    """``[start, stop)`` that ``index`` (a slice or an int) reads of an axis of ``n``;
    ``None`` for any other index."""
    if isinstance(index, slice):
        got = range(*index.indices(n))
        if not got:
            return (0, 0)
        return (min(got[0], got[-1]), max(got[0], got[-1]) + 1)
    if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
        at = int(index) + (n if index < 0 else 0)
        return (at, at + 1) if 0 <= at < n else (0, 0)
    return None


def _window_span(index, shape: tuple[int, ...]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Rows and columns ``([r0, r1), [c0, c1))`` that ``array[index]`` may read (all when
    unsure: Ellipsis, None, arrays and masks on the rows or columns read everything; the
    channel index, when the rows and columns are slices or integers, selects channels only)."""
    everything = ((0, shape[0]), (0, shape[1]))
    parts = index if isinstance(index, tuple) else (index,)
    if len(parts) > 3:
        return everything
    spans = []
    for axis, part in enumerate(parts[:2]):
        span = _axis_span(part, shape[axis])
        if span is None:
            return everything
        spans.append(span)
    spans += everything[len(spans):]
    return spans[0], spans[1]


class CheckedMemmap(np.memmap):
    """A read-only memmap of a cache file that verifies each tile on its first read.

    Indexing the map (``data[y0:y1, x0:x1]``) first checks the CRC-32 of the
    tiles it overlaps (see :data:`CHECK_TILE`), once per tile. On a mismatch the file's
    ``on_corrupt`` hook (set by :class:`Frames`: warn and rebuild) gives a good
    map, which then serves this and every later read; without a hook
    :class:`CacheCorruptError` names the file. ``numpy.asarray(data)`` reads
    without checking: call :meth:`verify` first.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + '/a.npy'
        >>> write_npy_atomic(path, np.full((4, 5, 3), 7, np.uint8))
        >>> with open(path, 'r+b') as file:  # damage one pixel on disk
        ...     _ = file.seek(150)  # after the 128-byte header
        ...     _ = file.write(bytes(1))
        >>> data = open_npy(path)
        >>> data[0:2].max()
        Traceback (most recent call last):
        ...
        sampler_core.frames.CacheCorruptError: cache file ... is damaged: tile (0, 0) of 1x1 does not match its checksum
    """

    def __array_finalize__(self, obj):
        super().__array_finalize__(obj)
        self._check = None  # views are checked through the map they come from

    def current(self) -> 'CheckedMemmap':
        """This map, or the map of the rebuilt file once a damaged tile was found."""
        check = self._check
        return self if check is None or check.replacement is None else \
            check.replacement.current()

    def verify(self, rows: tuple[int, int] | None = None,
               cols: tuple[int, int] | None = None) -> 'CheckedMemmap':
        """Check the pixels ``rows`` x ``cols`` (``[start, stop)``, default all).

        Returns:
            the map to read them from (this one, or the rebuilt file's).

        Raises:
            CacheCorruptError: a tile is damaged and there is no ``on_corrupt`` hook.
        """
        check = self._check
        if check is None:
            return self
        if check.replacement is not None:
            return self.current().verify(rows, cols)
        bad = check.first_bad(self, (0, self.shape[0]) if rows is None else rows,
                              (0, self.shape[1]) if cols is None else cols)
        if bad is None:
            return self
        with check.lock:
            if check.replacement is None:
                if check.on_corrupt is None:
                    raise CacheCorruptError(
                        f'cache file {check.path} is damaged: tile {bad} of '
                        f'{check.crcs.shape[0]}x{check.crcs.shape[1]} does not match its '
                        f'checksum')
                check.replacement = check.on_corrupt(bad)
        return self.current().verify(rows, cols)

    def __getitem__(self, index):
        check = self._check
        if check is not None and not (check.done and check.replacement is None):
            data = self.verify(*_window_span(index, self.shape))
            if data is not self:
                return data[index]
        res = super().__getitem__(index)
        if isinstance(res, CheckedMemmap) and res._mmap is None:
            return res.view(type=np.ndarray)
        return res


def open_npy(path: str | os.PathLike, expect_hw: tuple[int, int] | None = None,
             verify: bool = False) -> CheckedMemmap | None:
    """Memory-map a cache file, or ``None`` when it is missing, truncated or corrupt.

    The file must have the checksum trailer :func:`write_npy_atomic` writes
    (files without one, or whose header does not match its checksum, are
    ``None``). Its pixel tiles are checked on first read (see
    :class:`CheckedMemmap`), or all at once with ``verify``.

    Args:
        path: the ``.npy`` file.
        expect_hw: ``(height, width)`` the array must have, when known.
        verify: check every tile now; ``None`` when one is damaged.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + '/a.npy'
        >>> write_npy_atomic(path, np.arange(24, dtype=np.uint8).reshape(2, 4, 3))
        >>> open_npy(path)[1, 0].tolist()
        [12, 13, 14]
        >>> np.save(path, np.zeros((2, 4, 3), np.uint8))   # a plain .npy: no checksums
        >>> open_npy(path) is None
        True
    """
    data, _ = open_cache_file(path, expect_hw)
    if data is not None and verify:
        try:
            data.verify()
        except CacheCorruptError:
            return None
    return data


def open_cache_file(path: str | os.PathLike, expect_hw: tuple[int, int] | None = None
                    ) -> tuple[CheckedMemmap | None, str | None]:
    """:func:`open_npy`, and why a file is refused: ``(map, None)`` or ``(None, problem)``.

    ``problem`` is ``'missing'`` for a file that does not exist, else a phrase
    such as ``'it has no checksums'`` for messages.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + '/a.npy'
        >>> open_cache_file(path)
        (None, 'missing')
        >>> np.save(path, np.zeros((2, 4, 3), np.uint8))
        >>> open_cache_file(path)
        (None, 'it has no checksums')
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
            if fortran or len(shape) != 3 or dtype.hasobject:
                return None, 'its header is not a C-order (H, W, C) array of numbers'
            nbytes = int(np.prod(shape)) * dtype.itemsize
            size = os.fstat(file.fileno()).st_size
            if size < offset + nbytes:
                return None, f'it is shorter ({size} bytes) than its header says'
            if size < offset + nbytes + _FOOTER.itemsize:
                return None, 'it has no checksums'
            file.seek(size - _FOOTER.itemsize)
            footer = np.frombuffer(file.read(_FOOTER.itemsize), dtype=_FOOTER)[0]
            tile, n_tiles = (int(footer['tile_h']), int(footer['tile_w'])), int(footer['n_tiles'])
            if footer['magic'] == _MAGIC_V2:  # both footers end with the magic
                return None, 'its checksums are of an older layout'
            if footer['magic'] != _MAGIC:
                return None, 'it has no checksums'
            grid = tile_grid(shape, tile) if min(tile) > 0 else None
            if grid is None or n_tiles != grid[0] * grid[1] or \
                    size != offset + nbytes + 4 * n_tiles + _FOOTER.itemsize:
                return None, 'its size does not match its header and checksums'
            file.seek(0)
            if zlib.crc32(file.read(offset)) != int(footer['header_crc']):
                return None, 'its header does not match its checksum'
            file.seek(offset + nbytes)
            crcs = np.frombuffer(file.read(4 * n_tiles), dtype='<u4').reshape(grid)
    except FileNotFoundError:
        return None, 'missing'
    except (OSError, ValueError, EOFError, SyntaxError, TypeError, IndexError) as ex:
        return None, f'its header cannot be read ({type(ex).__name__})'
    if expect_hw is not None and tuple(shape[:2]) != tuple(expect_hw):
        return None, f'it holds {tuple(shape[:2])} pixels, the image has {tuple(expect_hw)}'
    data = CheckedMemmap(path, dtype=dtype, mode='r', offset=offset, shape=shape)
    data._check = _TileCheck(path, crcs, tile)
    return data, None


def write_error(path: str | os.PathLike, ex: OSError, what: str = 'file') -> OSError:
    """An OSError naming ``path`` for a failed write (a full disk's short write names none).

    Example:
        >>> import errno
        >>> str(write_error('/data/a.npy', OSError(errno.ENOSPC, 'No space left on device')))
        'cannot write file /data/a.npy: No space left on device'
        >>> str(write_error('/data/a.npy', OSError('2100 requested and 1040 written')))
        'cannot write file /data/a.npy: 2100 requested and 1040 written (is the disk full?)'
    """
    reason = ex.strerror or ' '.join(str(ex).split()) or type(ex).__name__
    if ex.errno is None and 'written' in reason:  # numpy's tofile on a short write
        reason += ' (is the disk full?)'
    out = type(ex)(f'cannot write {what} {os.fspath(path)}: {reason}')
    out.errno = ex.errno
    return out


def write_npy_atomic(path: str | os.PathLike, data: np.ndarray) -> None:
    """Write ``data`` and its checksums to ``path`` via a temporary file and a rename.

    The file is a ``.npy`` (``numpy.load`` reads it) followed by the checksum
    trailer :func:`open_npy` checks; it appears under ``path`` only complete.

    Raises:
        OSError: the write failed (e.g. the disk is full); the message names
            ``path``, and no file is left behind.
    """
    path = os.fspath(path)
    data = np.ascontiguousarray(data)
    tmp = f'{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    try:
        _write_npy(tmp, path, data)
    except OSError as ex:
        raise write_error(path, ex, 'cache file') from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_npy(tmp: str, path: str, data: np.ndarray) -> None:
    """Write the ``.npy`` and its checksum trailer to ``tmp``, then rename it to ``path``."""
    with open(tmp, 'w+b') as file:
        np.lib.format.write_array(file, data, allow_pickle=False)
        end = file.tell()
        file.seek(0)
        header = file.read(end - data.nbytes)
        file.seek(end)
        crcs = tile_crcs(data, CHECK_TILE)
        footer = np.array((zlib.crc32(header), CHECK_TILE[0], CHECK_TILE[1], crcs.size, _MAGIC),
                          dtype=_FOOTER)
        file.write(crcs.tobytes())
        file.write(footer.tobytes())
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


def _is_url(path) -> bool:
    return isinstance(path, str) and path[:8].lower().startswith(('http://', 'https://'))


_BUNDLED_URL = re.compile(r'/(https?://.*)$', re.I)


def _unbundle_url(fpath: str) -> str:
    """A URL that kwcoco joined to the bundle folder (``/data/http://host/a.tif``), as given."""
    match = None if _is_url(fpath) or '://' not in fpath else _BUNDLED_URL.search(fpath)
    return fpath if match is None or os.path.exists(fpath) else match.group(1)


def _open_tiled(fpath: str, expect_hw, label: str):
    """A :class:`~sampler_core.cog.TiledArray` of a URL or a local tiled TIFF, else ``None``."""
    url = _is_url(fpath)
    if not url and not fpath.lower().endswith(('.tif', '.tiff')):
        return None
    from sampler_core import cog
    if not url and not cog.is_tiled_tiff(fpath):
        return None
    try:
        return cog.TiledArray(fpath, expect_hw)
    except FileNotFoundError:
        raise FileNotFoundError(f'{label} does not exist: {fpath}') from None


def open_backend_file(backend: Mapping, path, expect_hw=None) -> tuple[Any, str | None]:
    """Open a cache file of ``backend`` (npy or cog): ``(data, None)`` or ``(None, problem)``.

    Example:
        >>> import tempfile
        >>> open_backend_file({'type': 'cog'}, tempfile.mkdtemp() + '/a.tif')
        (None, 'missing')
    """
    if backend['type'] == 'cog':
        from sampler_core.cog import open_cog_file
        return open_cog_file(path, expect_hw)
    return open_cache_file(path, expect_hw)


def write_backend_file(backend: Mapping, path, data: np.ndarray) -> None:
    """Write a cache file of ``backend`` atomically (see :func:`write_npy_atomic`)."""
    if backend['type'] == 'cog':
        from sampler_core.cog import write_cog_atomic
        write_cog_atomic(path, data, backend.get('config'))
    else:
        write_npy_atomic(path, data)


def _set_on_corrupt(data, hook) -> None:
    if isinstance(data, CheckedMemmap):
        data._check.on_corrupt = hook
    else:
        data.on_corrupt = hook


class Frames(HashIdentifiable):
    """Abstract image-id to pixels mapping; subclasses give :meth:`_lookup_gpath`.

    Args:
        hashid_mode: kept for ndsampler compatibility; only ``'PATH'`` is used.
        workdir: folder for the cache (``<workdir>/_cache/frames``); default
            :func:`default_cache_root`.
        backend: ``None``, ``'npy'``, ``'auto'``, ``{'type': 'npy', 'config': {}}``,
            ``'cog'`` or ``{'type': 'cog', 'config': {'compress': 'deflate', 'blocksize':
            256}}`` (see :func:`sampler_core.cog.coerce_config`).

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
        self._decoded: OrderedDict[Any, tuple] = OrderedDict()  # id -> (stamp, array)
        self._warned_large: set = set()
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
        if kind == 'cog':
            from sampler_core.cog import coerce_config
            return {'type': 'cog', 'config': coerce_config(backend.get('config', None))}
        if kind != 'npy':
            raise ValueError(f"unknown backend {backend.get('type')!r}; use None, 'npy', 'cog' "
                             f"or 'auto'")
        return {'type': 'npy', 'config': dict(backend.get('config', {}))}

    @property
    def backend(self) -> dict | None:
        """The backend config (``{'type': 'npy', 'config': {}}``, ``'cog'``) or ``None``."""
        return self._backend

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_open'] = OrderedDict()
        state['_decoded'] = OrderedDict()
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
        """Folder of the cache files (``.npy`` or ``.tif``), ``None`` without a backend."""
        if self._backend is None:
            return None
        return self.workdir / '_cache' / 'frames' / self._backend['type']

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
        """The source pixels, decoded (a tiled TIFF or URL: a lazy ``TiledArray``)."""
        fpath, hw, label = self._lookup_gpath(image_id), self._lookup_hw(image_id), \
            self._label(image_id)
        tiled = self._tiled(fpath, hw, label)
        return self._read_asset(fpath, hw, label) if tiled is None else tiled

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
            return self._decoded_frame(image_id, self._lookup_gpath(image_id),
                                       self._lookup_hw(image_id), self._label(image_id))
        return self._open_cached(image_id, self._lookup_gpath(image_id),
                                 self._lookup_hw(image_id), self._label(image_id))

    @staticmethod
    def _stamp(fpath: str, label: str) -> tuple:
        """``(path, size, mtime)`` of a source (a URL: ``(url, None, None)``)."""
        if _is_url(fpath):
            return (fpath, None, None)
        try:
            st = os.stat(fpath)
        except FileNotFoundError:
            raise FileNotFoundError(f'{label} does not exist: {fpath}') from None
        return (fpath, st.st_size, st.st_mtime_ns)

    def _tiled(self, fpath: str, expect_hw, label: str, stamp=None):
        """The open :class:`~sampler_core.cog.TiledArray` of a tiled source, else ``None``."""
        stamp = self._stamp(fpath, label) if stamp is None else stamp
        key = ('tiled', fpath)
        with self._lock:
            entry = self._open.get(key)
            if entry is not None and entry[0] == stamp:
                return entry[1]
        tiled = _open_tiled(fpath, expect_hw, label)
        if tiled is not None:
            with self._lock:
                self._open[key] = (stamp, tiled)
                while len(self._open) > self.max_open:
                    self._open.popitem(last=False)
        return tiled

    def _decoded_frame(self, key, fpath: str, expect_hw, label: str) -> np.ndarray:
        """The decoded (read-only) pixels of ``fpath``, kept within :data:`DECODED_CACHE_BYTES`.

        The source is stat'ed on every call, so an edited file is decoded again.
        A tiled TIFF (COG) or an ``http(s)://`` source is not decoded: a
        :class:`~sampler_core.cog.TiledArray` reads each window's tiles.
        """
        stamp = self._stamp(fpath, label)
        with self._lock:
            entry = self._decoded.get(key)
            if entry is not None and entry[0] == stamp:
                self._decoded.move_to_end(key)
                return entry[1]
        tiled = self._tiled(fpath, expect_hw, label, stamp)
        if tiled is not None:
            return tiled
        data = self._read_asset(fpath, expect_hw, label)
        data.flags.writeable = False  # shared by later reads
        if data.nbytes > LARGE_FRAME_BYTES and key not in self._warned_large:
            self._warned_large.add(key)
            kept = 'kept in memory while it is used' if data.nbytes <= DECODED_CACHE_BYTES \
                else 'decoded whole again for every window'
            warnings.warn(f'{label} {fpath} is {data.shape[0]}x{data.shape[1]}x{data.shape[2]} '
                          f'({data.nbytes / 2 ** 20:.0f} MiB decoded): with backend=None it is '
                          f'{kept}; backend="npy" caches it once and reads only each window',
                          stacklevel=3)
        with self._lock:
            self._decoded.pop(key, None)
            if data.nbytes <= DECODED_CACHE_BYTES:
                self._decoded[key] = (stamp, data)
                total = sum(arr.nbytes for _, arr in self._decoded.values())
                while total > DECODED_CACHE_BYTES:
                    total -= self._decoded.popitem(last=False)[1][1].nbytes
        return data

    def _open_cached(self, key, fpath: str, expect_hw, label: str) -> np.memmap:
        """The memmap of ``fpath``'s cache file, kept open under ``key``.

        The source is stat'ed on every call, so a file edited while we run is
        re-cached, not served stale. A URL is not cached: its tiles are read by window.
        """
        if _is_url(fpath):
            return self._decoded_frame(key, fpath, expect_hw, label)
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
        data = entry[1].current()  # the rebuilt file's map once a damaged tile was found
        if data is not entry[1]:
            self._open[key] = (stamp, data)
        return data

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
        if isinstance(data, CheckedMemmap):  # the caller may read any of it, unchecked
            data = data.verify()
        elif not isinstance(data, np.ndarray):  # a tiled file: read it whole
            data = np.asarray(data)
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
        if self._backend['type'] == 'cog':
            from sampler_core.cog import config_key
            return self.cache_dpath / \
                f'{Path(fpath).stem[:40]}_{key}_{config_key(self._backend["config"])}.tif'
        return self.cache_dpath / f'{Path(fpath).stem[:40]}_{key}.npy'

    def load_asset(self, fpath, expect_hw: tuple[int, int] | None = None) -> np.ndarray:
        """All pixels ``(H, W, C)`` of one image file, e.g. an asset of a multi-asset image.

        With a backend the file is cached on first use (one cache file per asset,
        shared with :meth:`load_image` when the file is a whole image) and a
        read-only memmap (``npy``) or :class:`~sampler_core.cog.TiledArray` (``cog``)
        is returned; without one the file is decoded (tiled TIFFs and URLs: a
        ``TiledArray``).

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
        fpath = _unbundle_url(os.fspath(fpath))
        if self._backend is None:
            return self._decoded_frame(('asset', fpath), fpath, expect_hw, 'image file')
        return self._open_cached(('asset', fpath), fpath, expect_hw, 'image file')

    @staticmethod
    def _read_asset(fpath: str, expect_hw=None, label: str = 'image file') -> np.ndarray:
        tiled = _open_tiled(fpath, expect_hw, label)
        data = read_image(fpath) if tiled is None else np.asarray(tiled)
        if expect_hw is not None and tuple(data.shape[:2]) != tuple(expect_hw):
            raise ValueError(f'{label} {fpath} has shape {data.shape[:2]} but the dataset '
                             f'says (height, width)={tuple(expect_hw)}')
        return data

    def _ensure_cached_asset(self, fpath: str, expect_hw=None,
                             label: str = 'image file') -> CheckedMemmap:
        """Open the cache file of an image file, (re)building it when needed."""
        cpath = self._asset_cache_fpath(fpath, label)
        data, _ = open_backend_file(self._backend, cpath, expect_hw)
        if data is None:
            with self._path_lock(str(cpath)):
                # another thread may have built it
                data, problem = open_backend_file(self._backend, cpath, expect_hw)
                if data is None:
                    data = self._write_cache(cpath, fpath, expect_hw, label)
                    if problem != 'missing':
                        warnings.warn(f'cache file {cpath} cannot be used ({problem}); rebuilt '
                                      f'from {label} {fpath}', stacklevel=3)
        _set_on_corrupt(data, lambda block: self._rebuild_damaged(
            cpath, fpath, expect_hw, label, block))
        return data

    def _write_cache(self, cpath, fpath: str, expect_hw, label: str):
        self._ensure_cache_dir()
        write_backend_file(self._backend, cpath, self._read_asset(fpath, expect_hw, label))
        data, _ = open_backend_file(self._backend, cpath, expect_hw)
        if data is None:  # pragma: no cover - would mean a broken file system
            raise OSError(f'cache file {cpath} is unreadable right after writing it')
        return data

    def _rebuild_damaged(self, cpath, fpath: str, expect_hw, label: str, tile):
        """A tile of ``cpath`` failed its checksum: warn, rebuild it from ``fpath``."""
        warnings.warn(f'cache file {cpath} is damaged (tile {tile} does not match its '
                      f'checksum); rebuilt from {label} {fpath}', stacklevel=2)
        with self._path_lock(str(cpath)):
            data = self._write_cache(cpath, fpath, expect_hw, label)
        _set_on_corrupt(data, lambda bad: self._rebuild_damaged(
            cpath, fpath, expect_hw, label, bad))
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
            hit = cache[image_id] = (file_name, file_name if _is_url(file_name) else
                                     os.fspath(self.dset.get_image_fpath(image_id)))
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
            name = obj['file_name']
            out.append((name if _is_url(name) else os.path.join(root, name), hw))
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
