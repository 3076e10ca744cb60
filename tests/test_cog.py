"""The ``cog`` backend and windowed reads of tiled / remote sources (sampler_core/cog.py).

Pixels are compared with the source arrays (written by tifffile / PIL here, cropped and
padded with plain numpy) and with the npy backend; remote reads with a local HTTP server
that logs every byte range it serves.
"""
import http.server
import os
import re
import threading
import warnings
from pathlib import Path

import kwcoco
import numpy as np
import pytest

tifffile = pytest.importorskip('tifffile')
pytest.importorskip('imagecodecs')

import sampler_core  # noqa: E402
from sampler_core import cog  # noqa: E402
from sampler_core.frames import CacheCorruptError  # noqa: E402


def _pixels(h, w, c, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == 'f':
        data = rng.normal(size=(h, w, c)).astype(dtype)
        data[::7, ::5] = np.nan if c > 1 else 0.0  # NaN round-trips too
        return data
    info = np.iinfo(dtype)
    smooth = (np.arange(h)[:, None, None] * 3 + np.arange(w)[None, :, None] * 5 +
              np.arange(c)[None, None, :] * 11) % (info.max + 1)
    noise = rng.integers(0, 4, size=(h, w, c))
    return ((smooth + noise) % (info.max + 1)).astype(dtype)


def _dataset(dpath: Path, dims=((300, 410), (257, 129)), channels=3, dtype=np.uint8,
             tiled=None) -> tuple[kwcoco.CocoDataset, dict]:
    """Images written as (strip, or ``tiled`` tile-size) TIFFs; ``{gid: pixels}``."""
    dpath.mkdir(parents=True, exist_ok=True)
    dataset = {'categories': [{'id': 1, 'name': 'a'}], 'images': [], 'annotations': []}
    source = {}
    for gid, (h, w) in enumerate(dims, start=1):
        data = _pixels(h, w, channels, dtype, seed=gid)
        name = f'img{gid}.tif'
        kw = {} if tiled is None else {'tile': (tiled, tiled), 'compression': 'zlib'}
        tifffile.imwrite(dpath / name, data if channels > 1 else data[:, :, 0],
                         photometric='minisblack', planarconfig='contig' if channels > 1
                         else None, **kw)
        source[gid] = data
        dataset['images'].append({'id': gid, 'file_name': name, 'height': h, 'width': w})
        dataset['annotations'].append({'id': gid, 'image_id': gid, 'category_id': 1,
                                       'bbox': [w / 3, h / 4, 40.0, 30.0]})
    dset = kwcoco.CocoDataset(dataset, bundle_dpath=os.fspath(dpath))
    return dset, source


def _expected(data, ltrb, padkw=None):
    """``data`` cropped to ``ltrb`` (may reach outside), padded with numpy."""
    x0, y0, x1, y1 = ltrb
    h, w = data.shape[:2]
    iy0, iy1, ix0, ix1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    inner = data[iy0:max(iy1, iy0), ix0:max(ix1, ix0)]
    pads = [(iy0 - y0, y1 - max(iy1, iy0)), (ix0 - x0, x1 - max(ix1, ix0)), (0, 0)]
    return np.pad(inner, pads, **(padkw or {'mode': 'constant'}))


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


TARGETS = [
    {'gid': 1, 'cx': 100, 'cy': 90, 'window_dims': (64, 80)},
    {'gid': 1, 'cx': 3, 'cy': 290, 'window_dims': (70, 50), 'pad': 7},
    {'gid': 2, 'cx': 120, 'cy': 10, 'window_dims': (300, 90),
     'padkw': {'mode': 'reflect'}},
    {'gid': 2, 'cx': 64, 'cy': 128, 'window_dims': (256, 128), 'padkw': {'mode': 'edge'},
     'pad': 9},
]


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize('channels', [1, 2, 3, 4, 13])
def test_cog_pixels_equal_source_and_npy(tmp_path, dtype, channels):
    dset, source = _dataset(tmp_path / 'data', channels=channels, dtype=dtype)
    work = tmp_path / 'work'
    npy = sampler_core.CocoSampler(dset, workdir=work, backend='npy')
    cogs = [sampler_core.CocoSampler(dset, workdir=work, backend='cog'),
            sampler_core.CocoSampler(dset, workdir=work, backend={
                'type': 'cog', 'config': {'compress': 'zstd', 'blocksize': 48}})]
    for target in TARGETS:
        want = npy.load_sample(dict(target), with_annots=False)
        x0, y0, x1, y1 = (int(v) for v in want['params']['sample_tlbr'].data)
        oracle = _expected(source[target['gid']], (x0, y0, x1, y1), target.get('padkw'))
        assert _same(want['im'], oracle), target
        for sampler in cogs:
            got = sampler.load_sample(dict(target), with_annots=False)
            assert _same(got['im'], oracle), (target, sampler.frames.backend)
    for sampler in cogs:  # whole images, regions with numpy slicing rules
        for gid, data in source.items():
            assert _same(sampler.load_image(gid), data)
            assert _same(sampler.frames.load_region(gid, (slice(-20, None), slice(5, -3))),
                         data[-20:, 5:-3])
    files = sorted(p.name for p in cogs[0].frames.cache_dpath.iterdir())
    assert [f.rsplit('_', 1)[1] for f in files] == ['deflate256.tif', 'zstd48.tif'] * 2


def test_cog_scale_channels_and_video_equal_npy(tmp_path):
    dset = kwcoco.CocoDataset.demo('vidshapes2-multispectral', num_frames=3,
                                   image_size=(96, 80))
    npy = sampler_core.CocoSampler(dset, workdir=tmp_path, backend='npy')
    sam = sampler_core.CocoSampler(dset, workdir=tmp_path, backend='cog')
    targets = [
        {'vidid': 1, 'time_slice': slice(0, 3), 'channels': 'B1|B8', 'window_dims': (40, 50),
         'cx': 30, 'cy': 40},
        {'vidid': 2, 'time_slice': slice(-1, 2), 'channels': 'B1|B11', 'scale': 0.5},
        {'gid': 1, 'channels': 'B8|B1', 'cx': 10, 'cy': 80, 'window_dims': (33, 44)},
        {'vidid': 1, 'time_slice': slice(0, 2), 'channels': '<all>', 'scale': (0.5, 1.5),
         'use_native_scale': False},
    ]
    for target in targets:
        a = npy.load_sample(dict(target), with_annots=False)['im']
        b = sam.load_sample(dict(target), with_annots=False)['im']
        assert _same(a, b), target
    assert any(p.suffix == '.tif' for p in sam.frames.cache_dpath.iterdir())


def test_cog_cache_is_tiled_compressed_with_overviews(tmp_path):
    dset, source = _dataset(tmp_path / 'data', dims=((600, 700),), dtype=np.uint16)
    sam = sampler_core.CocoSampler(dset, workdir=tmp_path / 'work',
                                   backend={'type': 'cog', 'config': {'blocksize': 128}})
    sam.frames.prepare(verbose=0)
    (path,) = sam.frames.cache_dpath.glob('*.tif')
    with tifffile.TiffFile(path) as tif:
        pages = list(tif.pages)
        assert pages[0].is_tiled and pages[0].tilelength == 128
        assert pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert [p.shape[:2] for p in pages] == [(600, 700), (300, 350), (150, 175), (75, 88)]
        assert all(p.subfiletype == 1 for p in pages[1:])
        assert _same(pages[0].asarray(), source[1])
        assert _same(pages[1].asarray(), source[1][::2, ::2])  # nearest overview
        # the COG layout (GDAL's validator): the main IFD at byte 8, every IFD before any
        # tile, then the tiles of the smallest overview first, the full resolution's last
        ifds = [p.offset for p in pages]
        starts = [min(p.dataoffsets) for p in pages]
        assert ifds[0] == 8 and ifds == sorted(ifds) and max(ifds) < min(starts)
        assert starts == sorted(starts, reverse=True)
        for page in pages:
            assert all(b == a + n for a, n, b in zip(page.dataoffsets, page.databytecounts,
                                                      page.dataoffsets[1:]))
    assert os.path.getsize(path) < source[1].nbytes / 2
    assert not list(sam.frames.cache_dpath.glob('*.tmp-*'))


def test_cog_window_decodes_only_its_tiles(tmp_path):
    dset, source = _dataset(tmp_path / 'data', dims=((512, 512),))
    sam = sampler_core.CocoSampler(dset, workdir=tmp_path / 'work',
                                   backend={'type': 'cog', 'config': {'blocksize': 64}})
    arr = sam.frames._data(1)
    assert isinstance(arr, cog.TiledArray)
    got = sam.load_sample({'gid': 1, 'slices': (slice(70, 130), slice(200, 260))},
                          with_annots=False)['im']
    assert _same(got, source[1][70:130, 200:260])
    # rows 70..129 -> tile rows 1, 2; columns 200..259 -> tile columns 3, 4 (8 per row)
    assert sorted(arr.last_tiles) == [11, 12, 19, 20]


def _flip_tile_byte(path: Path, tile: int) -> None:
    with tifffile.TiffFile(path) as tif:
        off = tif.pages[0].dataoffsets[tile] + tif.pages[0].databytecounts[tile] // 2
    with open(path, 'r+b') as file:
        file.seek(off)
        byte = file.read(1)
        file.seek(off)
        file.write(bytes([byte[0] ^ 0xFF]))


def _truncate(path: Path) -> None:
    with open(path, 'r+b') as file:
        file.truncate(os.path.getsize(path) * 2 // 3)


def _garbage(path: Path) -> None:
    path.write_bytes(b'II*\x00' + b'\x07' * 100)


@pytest.mark.parametrize('damage', [_truncate, _garbage])
def test_cog_damaged_file_is_rebuilt_on_open_with_a_warning(tmp_path, damage):
    dset, source = _dataset(tmp_path / 'data')
    work = tmp_path / 'work'
    sampler_core.CocoSampler(dset, workdir=work, backend='cog').frames.prepare(verbose=0)
    sam = sampler_core.CocoSampler(dset, workdir=work, backend='cog')
    path = sam.frames._cache_fpath(1)
    damage(path)
    with pytest.warns(UserWarning, match=re.escape(str(path))):
        got = sam.frames.load_region(1, (slice(0, 300), slice(0, 410)))
    assert _same(got, source[1])
    assert cog.open_cog_file(path, (300, 410))[0] is not None


def test_cog_damaged_tile_is_rebuilt_on_first_read_with_a_warning(tmp_path):
    dset, source = _dataset(tmp_path / 'data', dims=((300, 410),))
    work = tmp_path / 'work'
    sam = sampler_core.CocoSampler(dset, workdir=work, backend='cog')
    sam.frames.prepare(verbose=0)
    path = sam.frames._cache_fpath(1)
    assert _same(sam.frames.load_region(1, (slice(0, 10), slice(0, 10))), source[1][:10, :10])
    _flip_tile_byte(path, 1)           # tile (0, 1): columns 256..409, not read yet
    fresh = cog.TiledArray(path)
    with pytest.raises(CacheCorruptError, match=re.escape(str(path))):
        fresh[0:5, 300:310]
    with pytest.warns(UserWarning, match=re.escape(str(path))):
        got = sam.frames.load_region(1, (slice(0, 40), slice(250, 410)))
    assert _same(got, source[1][:40, 250:])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert _same(sam.frames.load_region(1, (slice(None), slice(None))), source[1])


def test_cog_prepare_cli_backend_option(tmp_path, capsys):
    from app.cli import main
    from sampler_core import SamplingConfig
    dset, source = _dataset(tmp_path / 'data')
    dset.fpath = os.fspath(tmp_path / 'data' / 'data.kwcoco.json')
    dset.dump(dset.fpath)
    cfg = SamplingConfig(dataset=dset.fpath, backend='npy', workdir=os.fspath(tmp_path / 'w'),
                         window_dims=(32, 32), n_pos=2, n_neg=1)
    cfg_path = tmp_path / 'c.yaml'
    cfg.dump(os.fspath(cfg_path))
    assert main(['prepare', os.fspath(cfg_path), '--backend', 'cog', '--workers', '2',
                 '--quiet']) == 0
    files = sorted((tmp_path / 'w' / '_cache' / 'frames' / 'cog').glob('*.tif'))
    assert len(files) == 2
    assert not (tmp_path / 'w' / '_cache' / 'frames' / 'npy').exists()
    cfg_cog = SamplingConfig(dataset=dset.fpath, backend='cog', workdir=os.fspath(tmp_path / 'w'),
                             window_dims=(16, 16), n_pos=2, n_neg=1)
    assert cfg_cog.backend == 'cog'
    sam = sampler_core.CocoSampler.from_config(cfg_cog)
    assert sam.frames.backend['type'] == 'cog'
    assert _same(sam.load_image(2), source[2])
    with pytest.raises(ValueError, match='bogus'):
        sampler_core.CocoSampler(dset, backend={'type': 'cog', 'config': {'bogus': 1}})


# --------------------------------------------------------------- tiled sources, no cache
def test_no_backend_tiled_source_is_read_by_window(tmp_path, monkeypatch):
    dset, source = _dataset(tmp_path / 'data', dims=((400, 500),), dtype=np.uint16, tiled=64)
    import sampler_core.frames as frames_mod

    def no_decode(path):
        raise AssertionError(f'{path} decoded whole')
    monkeypatch.setattr(frames_mod, 'read_image', no_decode)
    sam = sampler_core.CocoSampler(dset, backend=None)
    for target in TARGETS[:2]:
        got = sam.load_sample(dict(target), with_annots=False)
        x0, y0, x1, y1 = (int(v) for v in got['params']['sample_tlbr'].data)
        assert _same(got['im'], _expected(source[1], (x0, y0, x1, y1)))
    arr = sam.frames._data(1)
    assert isinstance(arr, cog.TiledArray)
    sam.load_sample({'gid': 1, 'slices': (slice(130, 140), slice(0, 70))})
    assert sorted(arr.last_tiles) == [16, 17]   # tile row 2, columns 0 and 1 (8 per row)


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP byte ranges and logs each range served."""

    served: list = []

    def do_GET(self):  # noqa: N802
        path = self.translate_path(self.path)
        try:
            data = Path(path).read_bytes()
        except OSError:
            self.send_error(404)
            return
        match = re.fullmatch(r'bytes=(\d+)-(\d+)', self.headers.get('Range', ''))
        if match is None:
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.served.append((0, len(data)))   # logged before the client can see it
            self.end_headers()
            self.wfile.write(data)
            return
        start, stop = int(match[1]), min(int(match[2]) + 1, len(data))
        self.send_response(206)
        self.send_header('Content-Range', f'bytes {start}-{stop - 1}/{len(data)}')
        self.send_header('Content-Length', str(stop - start))
        self.served.append((start, stop))   # logged before the client can see it
        self.end_headers()
        self.wfile.write(data[start:stop])

    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / 'www'
    root.mkdir()

    def handler(*args, **kw):
        return _RangeHandler(*args, directory=os.fspath(root), **kw)
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _RangeHandler.served = []
    try:
        yield root, f'http://127.0.0.1:{server.server_address[1]}', _RangeHandler.served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_url_source_window_reads_only_its_tiles_and_the_header(tmp_path, http_root):
    root, base, served = http_root
    h, w, tile = 1000, 1200, 128
    data = _pixels(h, w, 3, np.uint8)
    cog.write_cog_atomic(root / 'big.tif', data, {'blocksize': tile})
    size = os.path.getsize(root / 'big.tif')
    with tifffile.TiffFile(root / 'big.tif') as tif:
        offsets, counts = tif.pages[0].dataoffsets, tif.pages[0].databytecounts
    dset = kwcoco.CocoDataset({
        'categories': [{'id': 1, 'name': 'a'}],
        'images': [{'id': 1, 'file_name': f'{base}/big.tif', 'height': h, 'width': w}],
        'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [500, 500, 10, 10]}]})
    sam = sampler_core.CocoSampler(dset, backend=None)
    got = sam.load_sample({'gid': 1, 'slices': (slice(300, 400), slice(250, 520))})
    assert _same(got['im'], data[300:400, 250:520])
    assert got['annots']['aids'].tolist() == []
    # the window's tiles: rows 300..399 -> tile rows 2, 3; columns 250..519 -> 1..4 (10 a row)
    touched = [ty * 10 + tx for ty in (2, 3) for tx in (1, 2, 3, 4)]
    allowed = np.zeros(size, bool)
    allowed[:cog.HEADER_BYTES] = True
    for k in touched:
        allowed[offsets[k]:offsets[k] + counts[k]] = True
    read = np.zeros(size, bool)
    for start, stop in served:
        read[start:stop] = True
    assert served[0] == (0, cog.HEADER_BYTES)
    assert not (read & ~allowed).any()
    assert read[offsets[touched[0]]] and read[offsets[touched[-1]] + counts[touched[-1]] - 1]
    assert read.sum() < size / 4
    n_requests = len(served)
    # tiles already decoded: no new request, also through delayed_image (a 1-frame video
    # target, scaled) and with the cog backend (a URL is not cached: read by window)
    again = sam.load_sample({'gid': 1, 'slices': (slice(310, 390), slice(260, 500))})
    assert _same(again['im'], data[310:390, 260:500]) and len(served) == n_requests
    delayed = sam.load_sample({'gids': [1], 'slices': (slice(300, 400), slice(250, 520)),
                               'interpolation': 'nearest'})
    assert _same(delayed['im'][0], data[300:400, 250:520]) and len(served) == n_requests
    cached = sampler_core.CocoSampler(dset, backend='cog', workdir=tmp_path / 'w')
    got = cached.load_sample({'gid': 1, 'slices': (slice(300, 400), slice(250, 520))})
    assert _same(got['im'], data[300:400, 250:520])
    assert not (tmp_path / 'w' / '_cache' / 'frames' / 'cog').exists() or \
        not list((tmp_path / 'w' / '_cache' / 'frames' / 'cog').iterdir())


def test_url_source_errors_name_the_address(http_root):
    root, base, served = http_root
    with pytest.raises(FileNotFoundError, match=re.escape(f'{base}/missing.tif')):
        cog.TiledArray(f'{base}/missing.tif')
    (root / 'plain.tif').write_bytes(b'not a tiff at all' * 10)
    with pytest.raises(ValueError, match=re.escape(f'{base}/plain.tif')):
        cog.TiledArray(f'{base}/plain.tif')


def test_explorer_offers_the_cog_backend():
    from app.state import ExplorerState
    assert ExplorerState.param.backend.objects == [None, 'npy', 'cog']


def test_cog_prepare_on_a_dask_cluster(tmp_path):
    distributed = pytest.importorskip('distributed')
    from sampler_core import SamplingConfig
    from sampler_core.prepare import prepare_cache
    dset, source = _dataset(tmp_path / 'data')
    dset.fpath = os.fspath(tmp_path / 'data' / 'data.kwcoco.json')
    dset.dump(dset.fpath)
    cfg = SamplingConfig(dataset=dset.fpath, backend='cog', workdir=os.fspath(tmp_path / 'w'))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        stats = prepare_cache(cfg, scheduler=cluster.scheduler_address, verbose=0)
    assert (stats['built'], stats['cached']) == (2, 0)
    for gid, data in source.items():
        path = sampler_core.CocoSampler(dset, workdir=cfg.workdir,
                                        backend='cog').frames._cache_fpath(gid)
        assert _same(tifffile.imread(path), data if data.shape[2] > 1 else data[:, :, 0])
    assert prepare_cache(cfg, workers=2, verbose=0)['cached'] == 2


def test_cog_write_failure_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(cog, '_write_layout', full_disk)
    path = tmp_path / 'a.tif'
    with pytest.raises(OSError, match=re.escape(f'{path}: No space left on device')):
        cog.write_cog_atomic(path, np.zeros((40, 40, 3), np.uint8), {'blocksize': 16})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('big', [False, True])
def test_cog_layout_classic_and_bigtiff(tmp_path, big):
    data = _pixels(100, 70, 4, np.uint16)
    draft = tmp_path / 'draft.tif'
    tifffile.imwrite(draft, data, tile=(32, 32), compression='zlib', photometric='minisblack',
                     planarconfig='contig')
    tifffile.imwrite(draft, data[::2, ::2], tile=(32, 32), compression='zlib', append=True,
                     photometric='minisblack', planarconfig='contig', subfiletype=1)
    cog._write_cog_layout(os.fspath(draft), os.fspath(tmp_path / 'a.tif'), big=big)
    with tifffile.TiffFile(tmp_path / 'a.tif') as tif:
        assert tif.is_bigtiff == big
        assert _same(tif.pages[0].asarray(), data)
        assert _same(tif.pages[1].asarray(), data[::2, ::2])
    arr = cog.TiledArray(tmp_path / 'a.tif')
    assert arr.crcs is not None and arr.num_overviews == 1
    assert _same(arr[10:90, 5:66], data[10:90, 5:66])


@pytest.mark.parametrize('context', ['fork', 'spawn'])
def test_cog_dataloader_workers_equal_npy(tmp_path, context):
    torch = pytest.importorskip('torch')
    from sampler_core import SamplingConfig
    from sampler_core.torch import SampleDataset, collate
    dset, _ = _dataset(tmp_path / 'data', dtype=np.uint16)
    dset.fpath = os.fspath(tmp_path / 'data' / 'data.kwcoco.json')
    dset.dump(dset.fpath)
    batches = {}
    for backend in ('npy', 'cog'):
        cfg = SamplingConfig(dataset=dset.fpath, backend=backend, window_dims=(64, 64),
                             n_pos=2, n_neg=2, workdir=os.fspath(tmp_path / 'w'))
        ds = SampleDataset(cfg, mode='train')
        if backend == 'cog':  # opened in the parent before the workers start
            ds[0]
        loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate,
                                             num_workers=2, multiprocessing_context=context)
        batches[backend] = [b['image'] for b in loader]
    assert len(batches['cog']) == len(batches['npy']) == 2
    for a, b in zip(batches['npy'], batches['cog']):
        assert torch.equal(a, b)
