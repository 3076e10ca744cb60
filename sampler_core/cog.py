"""Tiled, compressed GeoTIFFs: the ``cog`` frame cache and windowed reads of tiled sources.

Built on tifffile + imagecodecs (the ``cog`` extra: ``pip install sampler-explorer[cog]``),
imported only when a tiled file is read or written.

* :func:`write_cog_atomic` writes an ``(H, W, C)`` array as a tiled, compressed
  (lossless: deflate / zstd / lzw with the TIFF predictor, or none) TIFF with
  reduced-resolution overviews (nearest, halving until a level fits in one
  tile), under a temporary name renamed into place. Full-resolution tile
  ``i``'s CRC-32 (of its stored, compressed bytes) is kept in the private tag
  :data:`CRC_TAG`, so a damaged tile is caught when it is first read.
* :class:`TiledArray` is a read-only ``(H, W, C)`` array view of a tiled TIFF,
  local or ``http(s)://``: ``array[y0:y1, x0:x1]`` reads and decodes only the
  tiles the window touches (one byte-range request per run of adjacent tiles
  for a URL, after one request for the header; the runs are requested
  concurrently), keeping decoded tiles in a
  per-process cache of :data:`TILE_CACHE_BYTES`.

Example:
    >>> import tempfile
    >>> path = tempfile.mkdtemp() + '/a.tif'
    >>> data = np.arange(300 * 200 * 3, dtype=np.uint16).reshape(300, 200, 3)
    >>> write_cog_atomic(path, data, {'blocksize': 128})
    >>> arr = TiledArray(path)
    >>> arr.shape, arr.dtype, arr.tile_shape, arr.num_overviews
    ((300, 200, 3), dtype('uint16'), (128, 128), 2)
    >>> bool((arr[100:140, 120:200] == data[100:140, 120:200]).all())
    True
    >>> sorted(arr.last_tiles)
    [0, 1, 2, 3]
"""
from __future__ import annotations

import itertools
import os
import threading
import urllib.error
import urllib.request
import uuid
import zlib
from collections import OrderedDict
from typing import Any, Mapping

import numpy as np

#: private TIFF tag holding the CRC-32 of each full-resolution tile as stored
CRC_TAG = 65111

#: bytes of decoded tiles kept per process (least recently used out first)
TILE_CACHE_BYTES = 2 ** 28

#: bytes fetched by the first request of a remote file (its header and first IFD)
HEADER_BYTES = 1 << 14

#: concurrent range requests of one window of a remote file
MAX_REQUESTS = 8

#: the ``config`` of ``{'type': 'cog', 'config': {...}}`` and its default values
DEFAULT_CONFIG = {'compress': 'deflate', 'blocksize': 256, 'overviews': 'auto'}

_COMPRESS = {'zstd': 'zstd', 'deflate': 'zlib', 'lzw': 'lzw', 'none': None}

_FALLBACK = object()


def coerce_config(config: Mapping | None = None) -> dict:
    """The cog backend's config with defaults filled in, checked.

    Keys: ``compress`` (``'deflate'``, ``'zstd'``, ``'lzw'``, ``'none'``; ``'auto'``
    is deflate: the smallest and fastest to read of them on photos), ``blocksize``
    (tile side, a multiple of 16), ``overviews`` (``'auto'``: halve until a level
    fits in one tile; or a count, 0 for none).

    Raises:
        ValueError: an unknown key or value (named).

    Example:
        >>> coerce_config({'compress': 'auto'})
        {'compress': 'deflate', 'blocksize': 256, 'overviews': 'auto'}
    """
    config = dict(config or {})
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f'unknown cog backend config keys {unknown}; known: '
                         f'{sorted(DEFAULT_CONFIG)}')
    out = {**DEFAULT_CONFIG, **config}
    if out['compress'] == 'auto':
        out['compress'] = 'deflate'
    if out['compress'] not in _COMPRESS:
        raise ValueError(f"cog compress must be one of {sorted(_COMPRESS) + ['auto']}, got "
                         f"{out['compress']!r}")
    block = out['blocksize']
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block <= 0 \
            or block % 16:
        raise ValueError(f'cog blocksize must be a positive multiple of 16, got {block!r}')
    out['blocksize'] = int(block)
    ovr = out['overviews']
    if ovr != 'auto' and (isinstance(ovr, bool) or not isinstance(ovr, (int, np.integer))
                          or ovr < 0):
        raise ValueError(f"cog overviews must be 'auto' or a count >= 0, got {ovr!r}")
    return out


def config_key(config: Mapping) -> str:
    """A short name of a config's effect on the file, for cache file names.

    Example:
        >>> config_key(coerce_config())
        'deflate256'
    """
    return f"{config['compress']}{config['blocksize']}" + \
        ('' if config['overviews'] == 'auto' else f"o{config['overviews']}")


def is_url(path: Any) -> bool:
    """True for an ``http://`` or ``https://`` address.

    Example:
        >>> is_url('https://example.org/a.tif'), is_url('/data/a.tif')
        (True, False)
    """
    return isinstance(path, str) and path[:8].lower().startswith(('http://', 'https://'))


def is_tiled_tiff(path: str | os.PathLike) -> bool:
    """True when ``path`` is a local TIFF whose first image is tiled (read by window).

    Only the file's header is read; any file that is not a tiled TIFF (or when
    tifffile is missing) gives False.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + '/a.tif'
        >>> write_cog_atomic(path, np.zeros((32, 32, 1), np.uint8), {'blocksize': 16})
        >>> is_tiled_tiff(path), is_tiled_tiff(path + '.missing')
        (True, False)
    """
    path = os.fspath(path)
    try:
        with open(path, 'rb') as file:
            magic = file.read(4)
    except OSError:
        return False
    if magic[:2] not in (b'II', b'MM'):
        return False
    try:
        import tifffile
    except ImportError:
        return False
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            return bool(page.is_tiled) and page.planarconfig == 1
    except Exception:
        return False


# --------------------------------------------------------------------------- writing
def _overview_count(h: int, w: int, config: Mapping) -> int:
    if config['overviews'] != 'auto':
        return int(config['overviews'])
    n, block = 0, config['blocksize']
    while max(h, w) > block and min(h, w) > 1:
        h, w = -(-h // 2), -(-w // 2)
        n += 1
    return n


def write_cog_atomic(path: str | os.PathLike, data: np.ndarray,
                     config: Mapping | None = None) -> None:
    """Write ``data`` ``(H, W, C)`` as a tiled, compressed TIFF with overviews, atomically.

    The file is written under a temporary name in the same folder, synced and
    renamed into place. Tile CRC-32s go into the tag :data:`CRC_TAG`.

    Args:
        path: the ``.tif`` to write.
        data: ``(H, W, C)`` pixels (any dtype TIFF holds).
        config: see :func:`coerce_config`.

    Raises:
        OSError: the write failed (the message names ``path``; no file is left).
    """
    from sampler_core.frames import write_error
    import tifffile
    config = coerce_config(config)
    path = os.fspath(path)
    data = np.ascontiguousarray(data)
    if data.ndim == 2:
        data = data[:, :, None]
    h, w, c = data.shape
    tile = (config['blocksize'], config['blocksize'])
    compression = _COMPRESS[config['compress']]
    kw = dict(tile=tile, compression=compression, predictor=compression is not None,
              photometric='rgb' if c == 3 and data.dtype == np.uint8 else 'minisblack',
              planarconfig='contig' if c > 1 else None, metadata=None)
    if c == 1:
        data = data[:, :, 0]
    tmp = f'{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    draft = f'{tmp}.draft'
    try:
        # tifffile encodes every level (one IFD then its tiles, level after level) ...
        with tifffile.TiffWriter(draft, bigtiff=data.nbytes > 2 ** 31) as tw:
            tw.write(data, **kw)
            level = data
            for _ in range(_overview_count(h, w, config)):
                level = level[::2, ::2]
                tw.write(np.ascontiguousarray(level), subfiletype=1, **kw)
        # ... then the file is laid out as a COG: every IFD first, tiles of the smallest
        # overview next and the full resolution's last
        _write_cog_layout(draft, tmp)
        os.replace(tmp, path)
    except OSError as ex:
        raise write_error(path, ex, 'cache file') from None
    finally:
        for name in (tmp, draft):
            if os.path.exists(name):
                os.remove(name)


#: TIFF data type -> item size; tags TileOffsets, TileByteCounts
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
              16: 8, 17: 8, 18: 8}
_TILE_OFFSETS, _TILE_COUNTS = 324, 325


def _write_cog_layout(src: str, dst: str, big: bool | None = None) -> None:
    """Rewrite the tiled TIFF ``src`` as ``dst`` in the Cloud-Optimized GeoTIFF layout.

    The layout GDAL's COG driver writes and its validator checks: the header,
    the IFD of the full resolution at byte 8, the IFDs of the overviews after
    it (each followed by its out-of-line tag values), then the tiles of the
    smallest overview, ..., and those of the full resolution last. The tags
    and encoded tiles are copied unchanged; the full resolution's tile CRC-32s
    are added in :data:`CRC_TAG`. Files near 4 GiB or more (or ``big``) are
    BigTIFF, in the same layout.
    """
    import tifffile
    with tifffile.TiffFile(src) as tif, open(src, 'rb') as file:
        src_big = tif.is_bigtiff
        pages = []
        for page in tif.pages:
            tags = {}
            for tag in page.tags.values():
                if tag.code in (_TILE_OFFSETS, _TILE_COUNTS):
                    continue
                size = _TYPE_SIZE[int(tag.dtype)] * tag.count
                file.seek(tag.valueoffset)
                tags[tag.code] = (int(tag.dtype), tag.count, file.read(size))
            tiles = []
            for off, cnt in zip(page.dataoffsets, page.databytecounts):
                file.seek(off)
                tiles.append(file.read(cnt))
            pages.append((tags, tiles))
    crcs = np.array([zlib.crc32(t) for t in pages[0][1]], dtype='<u4')
    pages[0][0][CRC_TAG] = (4, len(crcs), crcs.tobytes())
    total = sum(len(t) for _, tiles in pages for t in tiles)
    if big is None:
        big = src_big or total >= 2 ** 32 - 2 ** 26
    _write_layout(dst, pages, big=big)


def _write_layout(dst: str, pages: list, big: bool) -> None:
    """Header, every IFD with its values, then the tiles, smallest level first."""
    off_t, head, entry, cnt_t, ptr = (('<Q', 16, 20, '<Q', 8) if big else
                                      ('<I', 8, 12, '<H', 4))
    long_type = 16 if big else 4
    for tags, tiles in pages:  # tile offsets / counts: sizes known now, values later
        tags[_TILE_OFFSETS] = (long_type, len(tiles), None)
        tags[_TILE_COUNTS] = (long_type, len(tiles), None)

    def value_size(dtype, count):
        return _TYPE_SIZE[dtype] * count

    def ifd_size(tags):
        out = np.dtype(cnt_t).itemsize + entry * len(tags) + ptr
        for dtype, count, _ in tags.values():
            size = value_size(dtype, count)
            if size > ptr:
                out += size + (size & 1)
        return out

    ifd_offsets, pos = [], head
    for tags, _ in pages:
        ifd_offsets.append(pos)
        pos += ifd_size(tags)
    tile_offsets = [None] * len(pages)
    for index in range(len(pages) - 1, -1, -1):  # smallest overview first
        offs = []
        for t in pages[index][1]:
            offs.append(pos)
            pos += len(t)
        tile_offsets[index] = offs
    item = np.dtype(off_t)
    with open(dst, 'wb') as out:
        out.write(b'II' + (np.array([43, 8, 0], '<u2').tobytes() + np.array([head], '<u8')
                           .tobytes() if big else np.array([42], '<u2').tobytes() +
                           np.array([head], '<u4').tobytes()))
        for index, (tags, tiles) in enumerate(pages):
            tags[_TILE_OFFSETS] = (long_type, len(tiles),
                                   np.asarray(tile_offsets[index], item).tobytes())
            tags[_TILE_COUNTS] = (long_type, len(tiles),
                                  np.asarray([len(t) for t in tiles], item).tobytes())
            start = ifd_offsets[index]
            values_at = start + np.dtype(cnt_t).itemsize + entry * len(tags) + ptr
            body, values = [np.array([len(tags)], cnt_t).tobytes()], []
            for code in sorted(tags):
                dtype, count, raw = tags[code]
                head_bytes = np.array([code, dtype], '<u2').tobytes() + \
                    np.array([count], item).tobytes()
                if len(raw) > ptr:
                    body.append(head_bytes + np.array([values_at], item).tobytes())
                    values.append(raw + b'\0' * (len(raw) & 1))
                    values_at += len(raw) + (len(raw) & 1)
                else:
                    body.append(head_bytes + raw + b'\0' * (ptr - len(raw)))
            nxt = ifd_offsets[index + 1] if index + 1 < len(pages) else 0
            body.append(np.array([nxt], item).tobytes())
            out.write(b''.join(body + values))
        for index in range(len(pages) - 1, -1, -1):
            for t in pages[index][1]:
                out.write(t)
        out.flush()
        os.fsync(out.fileno())


# --------------------------------------------------------------------------- reading
class _LocalSource:
    """Positional reads of a local file (thread-safe)."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size

    def filelike(self):
        return self.path

    def read_ranges(self, ranges):
        return [os.pread(self.fd, n, off) for off, n in ranges]

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _HttpFile:
    """A read-only, seekable file over HTTP byte ranges, for tifffile's header parsing.

    The first read fetches :data:`HEADER_BYTES`; later reads outside what was
    fetched get their own range request.
    """

    def __init__(self, source: '_HttpSource'):
        self.source = source
        self.pos = 0
        self.chunks: list[tuple[int, bytes]] = []

    def seekable(self):
        return True

    def readable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=0):
        if whence == 1:
            offset += self.pos
        elif whence == 2:
            offset += self.source.size
        self.pos = int(offset)
        return self.pos

    def read(self, n=-1):
        size = self.source.size
        if n is None or n < 0:
            n = size - self.pos
        n = max(0, min(n, size - self.pos))
        start, stop = self.pos, self.pos + n
        for off, buf in self.chunks:
            if off <= start and stop <= off + len(buf):
                self.pos = stop
                return buf[start - off:stop - off]
        want = max(n, HEADER_BYTES if not self.chunks else n)
        buf = self.source.read_ranges([(start, min(want, size - start))])[0]
        self.chunks.append((start, buf))
        self.pos = stop
        return buf[:n]

    def readinto(self, out):
        data = self.read(len(out))
        out[:len(data)] = data
        return len(data)

    def close(self):
        pass

    @property
    def closed(self):
        return False


class _HttpSource:
    """Byte-range reads of an ``http(s)://`` file (urllib; each range one request)."""

    def __init__(self, url: str, timeout: float = 60.0):
        self.path = url
        self.timeout = timeout
        self.size = None
        first = self._get(0, HEADER_BYTES)
        self._first = first

    def _get(self, offset: int, n: int) -> bytes:
        req = urllib.request.Request(self.path, headers={
            'Range': f'bytes={offset}-{offset + n - 1}'})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status = resp.status
                body = resp.read()
                content_range = resp.headers.get('Content-Range', '')
        except urllib.error.HTTPError as ex:
            if ex.code == 404:
                raise FileNotFoundError(f'image file does not exist: {self.path} '
                                        f'(HTTP 404)') from None
            raise ValueError(f'cannot read image file {self.path}: HTTP {ex.code}') from None
        except urllib.error.URLError as ex:
            raise FileNotFoundError(f'cannot reach image file {self.path}: {ex.reason}') \
                from None
        if status != 206:
            raise ValueError(f'image file {self.path}: the server ignores byte ranges (HTTP '
                             f'{status}); windows of remote images need range requests')
        if self.size is None:
            try:
                self.size = int(content_range.rsplit('/', 1)[1])
            except (IndexError, ValueError):
                raise ValueError(f'image file {self.path}: no file size in the Content-Range '
                                 f'{content_range!r}') from None
        return body

    def filelike(self):
        handle = _HttpFile(self)
        handle.chunks.append((0, self._first))
        return handle

    def read_ranges(self, ranges):
        """The bytes of each ``(offset, n)``; several ranges are requested concurrently."""
        if len(ranges) < 2:
            return [self._get(off, n) if n > 0 else b'' for off, n in ranges]
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(min(MAX_REQUESTS, len(ranges))) as pool:
            return list(pool.map(lambda r: self._get(*r) if r[1] > 0 else b'', ranges))

    def close(self):
        pass


class _TileCache:
    """Decoded tiles of every :class:`TiledArray` of the process, LRU within a byte budget."""

    def __init__(self):
        self.items: OrderedDict = OrderedDict()
        self.nbytes = 0
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            tile = self.items.get(key)
            if tile is not None:
                self.items.move_to_end(key)
            return tile

    def put(self, key, tile: np.ndarray) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = tile
            self.nbytes += tile.nbytes
            while self.nbytes > TILE_CACHE_BYTES and self.items:
                self.nbytes -= self.items.popitem(last=False)[1].nbytes


_TILES = _TileCache()

#: numbers the opened arrays: a tile cache key never names another file's tiles
_OPENED = itertools.count()


class TiledArray:
    """A read-only ``(H, W, C)`` view of a tiled TIFF, local or ``http(s)://``.

    Indexing with two slices (and optionally a channel index) reads only the
    tiles the window touches; any other index reads the whole image first.
    ``numpy.asarray(arr)`` reads it all. Tiles of a file with :data:`CRC_TAG`
    are checked against their CRC-32 before decoding; a mismatch (or a tile
    that cannot be decoded) calls ``on_corrupt(tile)`` (set by
    :class:`~sampler_core.frames.Frames`: warn and rebuild), whose result serves
    this and every later read, or raises
    :class:`~sampler_core.frames.CacheCorruptError` naming the file.

    Args:
        source: a path or an ``http(s)://`` URL.
        expect_hw: ``(height, width)`` the image must have, when known.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it is not a tiled TIFF with interleaved channels, or its
            size is not ``expect_hw`` (message names the file).
    """

    ndim = 3

    def __init__(self, source: str | os.PathLike, expect_hw=None):
        import tifffile
        source = source if is_url(source) else os.fspath(source)
        self.source = source
        self.expect_hw = None if expect_hw is None else tuple(int(v) for v in expect_hw)
        self.on_corrupt = None
        self.replacement = None
        self.last_tiles: list[int] = []
        self._lock = threading.Lock()
        try:
            self._src = _HttpSource(source) if is_url(source) else _LocalSource(source)
        except FileNotFoundError:
            raise FileNotFoundError(f'image file does not exist: {source}') from None
        try:
            with tifffile.TiffFile(self._src.filelike()) as tif:
                page = tif.pages.first
                self._init_page(page)
                self.num_overviews = self._count_overviews(tif) if not is_url(source) else 0
        except (ValueError, KeyError, IndexError, TypeError, OSError, EOFError,
                tifffile.TiffFileError) as ex:
            self._src.close()
            if isinstance(ex, ValueError) and str(ex).startswith(('tiled TIFF', 'image file')):
                raise
            raise ValueError(f'cannot read tiled TIFF {source}: '
                             f'{" ".join(str(ex).split()) or type(ex).__name__}') from None

    def _init_page(self, page) -> None:
        source = self.source
        if not page.is_tiled or page.planarconfig != 1 or page.imagedepth != 1:
            raise ValueError(f'tiled TIFF {source}: its first image is not tiled with '
                             f'interleaved channels')
        h, w = int(page.imagelength), int(page.imagewidth)
        c = int(page.samplesperpixel)
        self.shape = (h, w, c)
        self.dtype = np.dtype(page.dtype)
        if self.expect_hw is not None and (h, w) != self.expect_hw:
            raise ValueError(f'tiled TIFF {source} holds {(h, w)} pixels, the dataset says '
                             f'(height, width)={self.expect_hw}')
        self.tile_shape = (int(page.tilelength), int(page.tilewidth))
        self.grid = (-(-h // self.tile_shape[0]), -(-w // self.tile_shape[1]))
        self.offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        self.counts = np.asarray(page.databytecounts, dtype=np.int64)
        if len(self.offsets) != self.grid[0] * self.grid[1]:
            raise ValueError(f'tiled TIFF {source}: {len(self.offsets)} tiles, expected '
                             f'{self.grid[0] * self.grid[1]}')
        size = self._src.size
        if size is not None and len(self.counts) and \
                int((self.offsets + self.counts).max()) > size:
            raise ValueError(f'tiled TIFF {source}: it is shorter ({size} bytes) than its '
                             f'tiles need (truncated)')
        tag = page.tags.get(CRC_TAG)
        self.crcs = None if tag is None else np.asarray(tag.value, dtype=np.uint32).reshape(-1)
        if self.crcs is not None and len(self.crcs) != len(self.offsets):
            raise ValueError(f'tiled TIFF {source}: {len(self.crcs)} tile checksums for '
                             f'{len(self.offsets)} tiles')
        page.decode  # builds tifffile's decoder (needs the page's tags) while it is open
        self._decode = page.decode
        self._key = (source, next(_OPENED))  # never reused, unlike id(self)

    def _count_overviews(self, tif) -> int:
        """Number of overviews; a local file's every level must lie within the file."""
        n = 0
        for page in tif.pages[1:]:
            if not page.subfiletype & 1:
                break
            ends = np.asarray(page.dataoffsets, np.int64) + np.asarray(page.databytecounts)
            if len(ends) and int(ends.max()) > self._src.size:
                raise ValueError(f'tiled TIFF {self.source}: overview {n + 1} reaches past '
                                 f'the end of the file (truncated)')
            n += 1
        return n

    def __getstate__(self):
        return {'source': self.source, 'expect_hw': self.expect_hw}

    def __setstate__(self, state):
        self.__init__(state['source'], state['expect_hw'])

    def __del__(self):
        src = self.__dict__.get('_src')
        if src is not None:
            src.close()

    def __repr__(self):
        return f'TiledArray({self.source!r}, shape={self.shape}, dtype={self.dtype})'

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded image."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def current(self) -> 'TiledArray':
        """This array, or the rebuilt file's once a damaged tile was found."""
        return self if self.replacement is None else self.replacement.current()

    def __array__(self, dtype=None, copy=None):
        out = self.read_window(0, self.shape[0], 0, self.shape[1])
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, index):
        if self.replacement is not None:
            return self.current()[index]
        if not isinstance(index, tuple):
            index = (index,)
        if 1 <= len(index) <= 3 and all(isinstance(i, slice) for i in index[:2]):
            sl_y = index[0]
            sl_x = index[1] if len(index) > 1 else slice(None)
            ys = range(*sl_y.indices(self.shape[0]))
            xs = range(*sl_x.indices(self.shape[1]))
            if len(ys) == 0 or len(xs) == 0:
                out = np.empty((len(ys), len(xs), self.shape[2]), self.dtype)
            else:
                y0, y1 = min(ys[0], ys[-1]), max(ys[0], ys[-1]) + 1
                x0, x1 = min(xs[0], xs[-1]), max(xs[0], xs[-1]) + 1
                out = self.read_window(y0, y1, x0, x1)
                if self.replacement is not None:
                    return self.current()[index]
                out = out[ys.start - y0::ys.step, xs.start - x0::xs.step] \
                    if (ys.step != 1 or xs.step != 1) else out
            return out if len(index) < 3 else out[:, :, index[2]]
        return np.asarray(self)[index]

    def verify(self) -> 'TiledArray':
        """Check every tile against its checksum and decode it; the array to read from.

        Raises:
            CacheCorruptError: a tile is damaged and there is no ``on_corrupt`` hook.
        """
        for k in range(len(self.offsets)):
            self._tiles([k])
            if self.replacement is not None:
                return self.current().verify()
        return self

    def read_window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` (inside the image), decoding only the tiles touched."""
        th, tw = self.tile_shape
        ty0, ty1 = y0 // th, (y1 - 1) // th + 1
        tx0, tx1 = x0 // tw, (x1 - 1) // tw + 1
        index = [ty * self.grid[1] + tx for ty in range(ty0, ty1) for tx in range(tx0, tx1)]
        self.last_tiles = index
        tiles = self._tiles(index)
        if tiles is None:  # rebuilt
            return self.current().read_window(y0, y1, x0, x1)
        out = np.empty((y1 - y0, x1 - x0, self.shape[2]), dtype=self.dtype)
        for k, tile in zip(index, tiles):
            ty, tx = divmod(k, self.grid[1])
            ay, ax = ty * th, tx * tw
            sy0, sy1 = max(y0, ay), min(y1, ay + th)
            sx0, sx1 = max(x0, ax), min(x1, ax + tw)
            out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = tile[sy0 - ay:sy1 - ay, sx0 - ax:sx1 - ax]
        return out

    def _tiles(self, index: list[int]) -> list[np.ndarray] | None:
        """Decoded tiles ``index`` (cached); ``None`` when the file was found damaged."""
        out: list = [_TILES.get((self._key, k)) for k in index]
        todo = [i for i, tile in enumerate(out) if tile is None]
        if not todo:
            return out
        ks = [index[i] for i in todo]
        for k, buf in zip(ks, self._fetch(ks)):
            tile = self._decode_tile(k, buf)
            if tile is None:
                return None
            _TILES.put((self._key, k), tile)
            out[index.index(k)] = tile
        return out

    def _fetch(self, ks: list[int]) -> list[bytes]:
        """Stored bytes of tiles ``ks``: adjacent tiles in one read (one request remotely)."""
        order = sorted(ks, key=lambda k: self.offsets[k])
        runs: list[list[int]] = []
        for k in order:
            if runs and self.offsets[runs[-1][-1]] + self.counts[runs[-1][-1]] == \
                    self.offsets[k]:
                runs[-1].append(k)
            else:
                runs.append([k])
        ranges = [(int(self.offsets[run[0]]),
                   int(self.offsets[run[-1]] + self.counts[run[-1]] - self.offsets[run[0]]))
                  for run in runs]
        bufs = self._src.read_ranges(ranges)
        got = {}
        for run, (start, _), buf in zip(runs, ranges, bufs):
            for k in run:
                off = int(self.offsets[k]) - start
                got[k] = buf[off:off + int(self.counts[k])]
        return [got[k] for k in ks]

    def _decode_tile(self, k: int, buf: bytes) -> np.ndarray | None:
        th, tw = self.tile_shape
        problem = None
        if len(buf) != self.counts[k]:
            problem = 'is cut short (truncated file)'
        elif self.crcs is not None and zlib.crc32(buf) != int(self.crcs[k]):
            problem = 'does not match its checksum'
        else:
            if self.counts[k] == 0:  # a sparse tile: nodata
                return np.zeros((th, tw, self.shape[2]), self.dtype)
            try:
                tile = self._decode(buf, int(k))[0]
                tile = np.asarray(tile).reshape(th, tw, self.shape[2])
            except Exception as ex:
                problem = f'cannot be decoded ({type(ex).__name__})'
        if problem is None:
            tile.flags.writeable = False
            return tile
        with self._lock:
            if self.replacement is None:
                if self.on_corrupt is None:
                    from sampler_core.frames import CacheCorruptError
                    raise CacheCorruptError(f'tiled TIFF {self.source} is damaged: tile {k} '
                                            f'of {len(self.offsets)} {problem}')
                self.replacement = self.on_corrupt(k)
        return None


def open_cog_file(path: str | os.PathLike, expect_hw=None
                  ) -> tuple[TiledArray | None, str | None]:
    """Open a cog cache file: ``(array, None)`` or ``(None, problem)``.

    ``problem`` is ``'missing'`` for a file that does not exist, else a phrase
    for messages. A file without tile checksums (not written by
    :func:`write_cog_atomic`) is refused.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + '/a.tif'
        >>> open_cog_file(path)
        (None, 'missing')
        >>> write_cog_atomic(path, np.ones((40, 30, 2), np.float32), {'blocksize': 16})
        >>> open_cog_file(path)[0].shape
        (40, 30, 2)
        >>> with open(path, 'r+b') as file:
        ...     _ = file.truncate(os.path.getsize(path) // 2)
        >>> open_cog_file(path)[1]
        'it is damaged or truncated'
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return None, 'missing'
    try:
        arr = TiledArray(path, expect_hw)
    except FileNotFoundError:
        return None, 'missing'
    except ValueError as ex:
        text = str(ex)
        if 'pixels, the dataset says' in text:
            return None, f'its size is not the image\'s (height, width)={tuple(expect_hw)}'
        return None, 'it is damaged or truncated'
    if arr.crcs is None:
        return None, 'it has no checksums'
    return arr, None
