"""The ``.npy`` frame cache: creation, validation and rebuild, source edits, concurrency.

Every check compares against the source image decoded independently with PIL and reads
cache files with plain ``numpy.load``. Datasets are small (three 300x300 RGB PNGs) so the
multi-process tests stay fast.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import kwcoco
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import sampler_core

REPO = Path(__file__).resolve().parents[1]
SIZE = 300
N_IMAGES = 3


# --------------------------------------------------------------------------- helpers
def write_png(fpath: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(fpath)


def source_pixels(fpath) -> np.ndarray:
    return np.asarray(Image.open(fpath).convert('RGB'))


def make_dataset(dpath: Path, seed: int = 0) -> kwcoco.CocoDataset:
    """Three random 300x300 RGB images on disk, saved as ``data.kwcoco.json``."""
    rng = np.random.RandomState(seed)
    dpath.mkdir(parents=True, exist_ok=True)
    dset = kwcoco.CocoDataset()
    dset.fpath = os.fspath(dpath / 'data.kwcoco.json')
    dset.add_category('thing')
    for index in range(N_IMAGES):
        fpath = dpath / f'img_{index}.png'
        write_png(fpath, rng.randint(0, 256, size=(SIZE, SIZE, 3)).astype(np.uint8))
        gid = dset.add_image(file_name=os.fspath(fpath), width=SIZE, height=SIZE)
        dset.add_annotation(image_id=gid, category_id=1, bbox=[10, 20, 30, 40])
    dset.dump(dset.fpath, newlines=True)
    return dset


@pytest.fixture
def dset(tmp_path):
    return make_dataset(tmp_path / 'data')


def new_sampler(dset, workdir) -> sampler_core.CocoSampler:
    """A fresh sampler (fresh Frames: no memory maps carried over)."""
    return sampler_core.CocoSampler(dset, backend='npy', workdir=workdir)


def cache_files(frames) -> list[Path]:
    dpath = Path(frames.cache_dpath)
    return sorted(dpath.iterdir()) if dpath.exists() else []


def npy_files(frames) -> list[Path]:
    return [p for p in cache_files(frames) if p.name.endswith('.npy')]


def leftovers(frames) -> list[Path]:
    return [p for p in cache_files(frames) if '.tmp-' in p.name or p.name.startswith('.write-test')]


def assert_cache_matches_source(dset, frames, gids=None) -> None:
    """Every cache file loads with numpy and equals its source image."""
    for gid in (sorted(dset.imgs) if gids is None else gids):
        fpath = Path(frames._cache_fpath(gid))
        assert fpath.exists(), fpath
        cached = np.load(fpath, mmap_mode='r', allow_pickle=False)
        expected = source_pixels(dset.get_image_fpath(gid))
        assert cached.shape == expected.shape
        assert np.array_equal(cached, expected), f'cache of image {gid} differs from source'


# --------------------------------------------------------------------------- creation
def test_cache_file_created_on_first_access(dset, tmp_path):
    sampler = new_sampler(dset, tmp_path / 'work')
    assert npy_files(sampler.frames) == []
    sample = sampler.load_sample({'gid': 2, 'cx': 100, 'cy': 120, 'width': 40, 'height': 30})
    files = npy_files(sampler.frames)
    assert len(files) == 1 and files[0] == Path(sampler.frames._cache_fpath(2))
    assert files[0].name.startswith('img_1_')  # named after the source file
    src = source_pixels(dset.get_image_fpath(2))
    assert np.array_equal(sample['im'], src[105:135, 80:120])
    assert_cache_matches_source(dset, sampler.frames, gids=[2])
    assert leftovers(sampler.frames) == []


def test_cache_prepare_builds_every_image_without_leftovers(dset, tmp_path):
    sampler = new_sampler(dset, tmp_path / 'work')
    sampler.frames.prepare(verbose=0)
    assert len(npy_files(sampler.frames)) == N_IMAGES
    assert leftovers(sampler.frames) == []
    assert_cache_matches_source(dset, sampler.frames)
    # a second prepare is a hit: nothing is rewritten
    stamps = {p: p.stat().st_mtime_ns for p in npy_files(sampler.frames)}
    new_sampler(dset, tmp_path / 'work').frames.prepare(verbose=0)
    assert {p: p.stat().st_mtime_ns for p in npy_files(sampler.frames)} == stamps


def test_cache_prepare_with_two_workers_shows_no_error(dset, tmp_path, capsys):
    sampler = new_sampler(dset, tmp_path / 'work')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        sampler.frames.prepare(workers=2)  # miss
        sampler.frames.prepare(workers=2)  # hit
    out, err = capsys.readouterr()
    assert 'error' not in err.lower() and 'traceback' not in (out + err).lower()
    ours = [w for w in caught if 'sampler_core' in os.fspath(w.filename)]
    assert ours == [], [str(w.message) for w in ours]
    assert len(npy_files(sampler.frames)) == N_IMAGES
    assert leftovers(sampler.frames) == []
    assert_cache_matches_source(dset, sampler.frames)


# --------------------------------------------------------------------------- damage
def _truncate_half(fpath: Path) -> None:
    data = fpath.read_bytes()
    fpath.write_bytes(data[:len(data) // 2])


def _garbage_header(fpath: Path) -> None:
    data = bytearray(fpath.read_bytes())
    data[:64] = os.urandom(64)
    fpath.write_bytes(bytes(data))


def _header_with(fpath: Path, **header) -> None:
    """Keep the pixel payload but rewrite the header (shape / dtype / order)."""
    arr = np.load(fpath)
    meta = {'shape': arr.shape, 'fortran_order': False, 'descr': arr.dtype.str}
    meta.update(header)
    with open(fpath, 'wb') as file:
        np.lib.format.write_array_header_1_0(file, meta)
        file.write(np.ascontiguousarray(arr).tobytes())


def _other_shape(fpath: Path) -> None:
    np.save(fpath, np.zeros((SIZE - 100, SIZE, 3), np.uint8))  # complete, valid, wrong size


def _pickled_objects(fpath: Path) -> None:
    arr = np.empty((SIZE, SIZE, 3), dtype=object)
    arr[...] = 0
    np.save(fpath, arr, allow_pickle=True)


DAMAGE = {
    'truncated-half': _truncate_half,
    'empty': lambda p: p.write_bytes(b''),
    'garbage-header': _garbage_header,
    'header-only': lambda p: p.write_bytes(p.read_bytes()[:128]),
    'wrong-shape-header': lambda p: _header_with(p, shape=(SIZE + 1, SIZE, 3)),
    'wrong-dtype-header': lambda p: _header_with(p, descr='<u2'),
    'fortran-order-header': lambda p: _header_with(p, fortran_order=True),
    'complete-file-other-shape': _other_shape,
    'pickled-object-array': _pickled_objects,
}


@pytest.mark.parametrize('damage', list(DAMAGE.values()), ids=list(DAMAGE))
def test_cache_damaged_file_is_detected_and_rebuilt(dset, tmp_path, damage):
    workdir = tmp_path / 'work'
    first = new_sampler(dset, workdir)
    first.frames.prepare(verbose=0)
    fpath = Path(first.frames._cache_fpath(1))
    del first  # drop its memory maps before damaging the file
    damage(fpath)

    sampler = new_sampler(dset, workdir)
    assert Path(sampler.frames._cache_fpath(1)) == fpath  # same cache entry is looked up
    src = source_pixels(dset.get_image_fpath(1))
    with pytest.warns(UserWarning, match=f'cache file .*{fpath.name} cannot be used'):
        assert np.array_equal(np.asarray(sampler.load_image(1)), src)
    sample = sampler.load_sample({'gid': 1, 'slices': (slice(250, 310), slice(-5, 40))})
    expected = np.zeros((60, 45, 3), np.uint8)
    expected[:50, 5:] = src[250:300, 0:40]
    assert np.array_equal(sample['im'], expected)
    assert_cache_matches_source(dset, sampler.frames)  # rebuilt in place, valid again
    assert leftovers(sampler.frames) == []


def test_cache_partial_tmp_file_from_killed_writer_is_never_read(dset, tmp_path):
    """Simulated SIGKILL: a half-written tmp file (no final file) and a truncated final file."""
    workdir = tmp_path / 'work'
    probe = new_sampler(dset, workdir)
    probe.frames.prepare(gids=[1], verbose=0)
    final1 = Path(probe.frames._cache_fpath(1))
    good = final1.read_bytes()
    final2 = Path(probe.frames._cache_fpath(2))
    del probe
    # image 1: the writer died before its rename (only a partial tmp file exists)
    final1.unlink()
    stale_tmp = final1.with_name(final1.name + '.tmp-999999-deadbeef')
    stale_tmp.write_bytes(good[:len(good) // 3])
    # image 2: something left a truncated file under the final name
    final2.parent.mkdir(parents=True, exist_ok=True)
    final2.write_bytes(good[:len(good) - 1000])

    sampler = new_sampler(dset, workdir)
    for gid in (1, 2):
        assert np.array_equal(np.asarray(sampler.load_image(gid)),
                              source_pixels(dset.get_image_fpath(gid)))
    assert_cache_matches_source(dset, sampler.frames, gids=[1, 2])
    assert stale_tmp.read_bytes() == good[:len(good) // 3]  # ignored, never renamed into place


KILLED_WRITER = textwrap.dedent('''
    import io, sys, time
    import numpy as np
    import sampler_core

    real_write_array = np.lib.format.write_array

    def half_then_hang(file, array, **kwargs):
        buf = io.BytesIO()
        real_write_array(buf, array, **kwargs)
        data = buf.getvalue()
        file.write(data[:len(data) // 2])
        file.flush()
        print('HALF-WRITTEN', flush=True)
        time.sleep(120)

    np.lib.format.write_array = half_then_hang
    sampler = sampler_core.CocoSampler(sys.argv[1], backend='npy', workdir=sys.argv[2])
    sampler.load_image(1)
''')


def test_cache_sigkill_mid_write_leaves_nothing_read_as_valid(dset, tmp_path):
    workdir = tmp_path / 'work'
    proc = subprocess.Popen(
        [sys.executable, '-c', KILLED_WRITER, dset.fpath, os.fspath(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, 'PYTHONPATH': os.fspath(REPO)})
    try:
        line = proc.stdout.readline()
        assert line.strip() == 'HALF-WRITTEN', proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    sampler = new_sampler(dset, workdir)
    final = Path(sampler.frames._cache_fpath(1))
    partial = [p for p in cache_files(sampler.frames) if '.tmp-' in p.name]
    assert not final.exists()  # the rename never happened
    assert len(partial) == 1 and partial[0].name.startswith(final.name + '.tmp-')
    assert np.array_equal(np.asarray(sampler.load_image(1)),
                          source_pixels(dset.get_image_fpath(1)))
    assert_cache_matches_source(dset, sampler.frames, gids=[1])


# --------------------------------------------------------------------------- source edits
def test_cache_edited_source_gets_new_file_and_pixels(dset, tmp_path):
    workdir = tmp_path / 'work'
    sampler = new_sampler(dset, workdir)
    gpath = Path(dset.get_image_fpath(1))
    old = source_pixels(gpath)
    assert np.array_equal(np.asarray(sampler.load_image(1)), old)
    old_cache = Path(sampler.frames._cache_fpath(1))

    new = (255 - old[::-1]).copy()
    write_png(gpath, new)
    stat = gpath.stat()  # make sure the mtime moves even on coarse-clock file systems
    os.utime(gpath, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))

    new_cache = Path(sampler.frames._cache_fpath(1))
    assert new_cache != old_cache
    # the same, long-lived sampler sees the edit ...
    assert np.array_equal(np.asarray(sampler.load_image(1)), new)
    window = {'gid': 1, 'slices': (slice(0, 10), slice(0, 12))}
    assert np.array_equal(sampler.load_sample(window)['im'], new[:10, :12])
    # ... and so does a new one; the new file holds the new pixels
    assert np.array_equal(np.asarray(new_sampler(dset, workdir).load_image(1)), new)
    assert new_cache.exists()
    assert np.array_equal(np.load(new_cache), new)
    assert np.array_equal(np.load(old_cache), old)  # the old entry is untouched


# --------------------------------------------------------------------------- processes
PREPARE_WORKER = textwrap.dedent('''
    import os, sys, time
    import numpy as np
    from PIL import Image
    import sampler_core

    dset_path, workdir, gate, index = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    sampler = sampler_core.CocoSampler(dset_path, backend='npy', workdir=workdir)
    open(gate + '.ready-' + index, 'w').close()
    deadline = time.time() + 60
    while not os.path.exists(gate) and time.time() < deadline:
        time.sleep(0.002)
    sampler.frames.prepare(verbose=0)
    for gid in sampler.image_ids:
        src = np.asarray(Image.open(sampler.dset.get_image_fpath(gid)).convert('RGB'))
        if not np.array_equal(np.asarray(sampler.load_image(gid)), src):
            sys.exit('image %d differs from its source' % gid)
''')


@pytest.mark.parametrize('n_procs', [2, 4], ids=['2-processes', '4-processes'])
def test_cache_concurrent_processes_prepare_same_cache(dset, tmp_path, n_procs):
    workdir = tmp_path / 'work'
    gate = tmp_path / 'go'
    env = {**os.environ, 'PYTHONPATH': os.fspath(REPO)}
    procs = [subprocess.Popen(
        [sys.executable, '-c', PREPARE_WORKER, dset.fpath, os.fspath(workdir), os.fspath(gate),
         str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
        for i in range(n_procs)]
    try:
        deadline = time.time() + 60  # wait until every process is ready, then start together
        while time.time() < deadline and not all(
                (tmp_path / f'go.ready-{i}').exists() for i in range(n_procs)):
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.01)
        gate.touch()
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
    frames = new_sampler(dset, workdir).frames
    assert len(npy_files(frames)) == N_IMAGES
    assert leftovers(frames) == []
    assert_cache_matches_source(dset, frames)


# --------------------------------------------------------------------------- permissions
def test_cache_unwritable_folder_raises_permission_error_naming_it(dset, tmp_path):
    blocker = tmp_path / 'afile'
    blocker.write_text('a regular file where a folder is needed')
    sampler = new_sampler(dset, blocker / 'sub')
    folder = os.fspath(sampler.frames.cache_dpath)
    with pytest.raises(PermissionError) as info:
        sampler.frames.prepare(verbose=0)
    assert folder in str(info.value)
    with pytest.raises(PermissionError) as info:
        sampler.load_sample({'gid': 1})
    assert folder in str(info.value)
    assert blocker.read_text().startswith('a regular file')


# --------------------------------------------------------------------------- checksums
def _zero_4k_in_the_middle(fpath: Path) -> None:
    """Zero 4 KiB of the pixel data in place (same size, header intact)."""
    size = fpath.stat().st_size
    with open(fpath, 'r+b') as file:
        file.seek(size // 2)
        file.write(b'\0' * 4096)
    assert fpath.stat().st_size == size


def test_cache_zeroed_block_is_rebuilt_with_a_warning_naming_the_file(dset, tmp_path):
    workdir = tmp_path / 'work'
    first = new_sampler(dset, workdir)
    first.frames.prepare(verbose=0)
    fpath = Path(first.frames._cache_fpath(1))
    del first
    src = source_pixels(dset.get_image_fpath(1))
    _zero_4k_in_the_middle(fpath)
    assert not np.array_equal(np.load(fpath), src)  # the damage reaches the pixels

    sampler = new_sampler(dset, workdir)
    window = {'gid': 1, 'slices': (slice(100, 200), slice(0, SIZE))}  # spans the damage
    with pytest.warns(UserWarning) as record:
        sample = sampler.load_sample(window)
    assert np.array_equal(sample['im'], src[100:200])
    messages = [str(w.message) for w in record if os.fspath(fpath) in str(w.message)]
    assert len(messages) == 1, [str(w.message) for w in record]
    assert np.array_equal(np.load(fpath), src)  # rebuilt in place
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no second warning for the same file
        assert np.array_equal(sampler.load_sample(window)['im'], src[100:200])
        assert np.array_equal(np.asarray(sampler.load_image(1)), src)


def test_cache_zeroed_block_found_by_load_image_and_load_region(dset, tmp_path):
    workdir = tmp_path / 'work'
    first = new_sampler(dset, workdir)
    first.frames.prepare(verbose=0)
    paths = {gid: Path(first.frames._cache_fpath(gid)) for gid in (1, 2)}
    del first
    for path in paths.values():
        _zero_4k_in_the_middle(path)
    sampler = new_sampler(dset, workdir)
    with pytest.warns(UserWarning, match=str(paths[1].name)):
        assert np.array_equal(np.asarray(sampler.load_image(1)),
                              source_pixels(dset.get_image_fpath(1)))
    with pytest.warns(UserWarning, match=str(paths[2].name)):
        region = sampler.frames.load_region(2, (slice(140, 160), slice(10, 20)))
    assert np.array_equal(region, source_pixels(dset.get_image_fpath(2))[140:160, 10:20])


def test_cache_file_without_checksums_is_rebuilt(dset, tmp_path):
    """A plain ``.npy`` (as written before checksums existed) is never served."""
    workdir = tmp_path / 'work'
    sampler = new_sampler(dset, workdir)
    fpath = Path(sampler.frames._cache_fpath(1))
    fpath.parent.mkdir(parents=True)
    np.save(fpath, np.zeros((SIZE, SIZE, 3), np.uint8))  # right shape, wrong pixels
    src = source_pixels(dset.get_image_fpath(1))
    assert np.array_equal(sampler.load_sample({'gid': 1})['im'], src)
    assert np.array_equal(np.load(fpath), src)


def test_cache_damaged_checksum_trailer_is_rebuilt(dset, tmp_path):
    workdir = tmp_path / 'work'
    first = new_sampler(dset, workdir)
    first.frames.prepare(verbose=0)
    fpath = Path(first.frames._cache_fpath(1))
    del first
    data = bytearray(fpath.read_bytes())
    data[-40:-36] = b'\xff\xff\xff\xff'  # the last block's checksum
    fpath.write_bytes(bytes(data))
    sampler = new_sampler(dset, workdir)
    with pytest.warns(UserWarning, match=fpath.name):
        im = sampler.load_sample({'gid': 1})['im']
    assert np.array_equal(im, source_pixels(dset.get_image_fpath(1)))


def test_cache_prepare_verify_rebuilds_damaged_files(dset, tmp_path):
    from sampler_core import SamplingConfig
    from sampler_core.prepare import prepare_cache
    cfg = SamplingConfig(dataset=dset.fpath, backend='npy', workdir=os.fspath(tmp_path / 'work'),
                         window_dims=(32, 32), n_pos=1, n_neg=1)
    assert prepare_cache(cfg, verbose=0)['built'] == N_IMAGES
    frames = new_sampler(dset, tmp_path / 'work').frames
    fpath = Path(frames._cache_fpath(2))
    _zero_4k_in_the_middle(fpath)
    stats = prepare_cache(cfg, verbose=0)
    assert (stats['built'], stats['cached']) == (0, N_IMAGES)  # not read: not checked
    with pytest.warns(UserWarning, match=fpath.name):
        stats = prepare_cache(cfg, verbose=0, verify=True)
    assert (stats['built'], stats['cached']) == (1, N_IMAGES - 1)
    assert_cache_matches_source(dset, frames)


# --------------------------------------------------------------------------- checked tiles
def _tiles_under(rows: range, cols: range, tile) -> set:
    """Tiles ``(i, j)`` holding at least one pixel of ``rows`` x ``cols``."""
    return {(r // tile[0], c // tile[1]) for r in rows for c in cols}


def _tile_bytes(tiles: set, shape, tile, itemsize: int = 1) -> int:
    """Bytes of pixel data in ``tiles`` of an ``(H, W, C)`` array (edge tiles are smaller)."""
    h, w, c = shape
    return sum((min(h, (i + 1) * tile[0]) - i * tile[0]) * (min(w, (j + 1) * tile[1]) - j * tile[1])
               * c * itemsize for i, j in tiles)


class _CountCrc:
    """Stands in for ``zlib`` in sampler_core.frames: counts the bytes it checksums."""

    def __init__(self):
        import zlib
        self._crc32 = zlib.crc32
        self.nbytes = 0

    def crc32(self, data, value=0):
        self.nbytes += memoryview(data).nbytes
        return self._crc32(data, value)


def _checked_tiles(data) -> set:
    return {tuple(ij) for ij in np.argwhere(data._check.verified).tolist()}


@pytest.mark.parametrize('rows, cols', [
    ((70, 140), (130, 200)),     # inside: 2 x 2 tiles
    ((64, 128), (128, 192)),     # exactly one tile
    ((250, 310), (-5, 40)),      # padded past the bottom and left edges: edge tiles
    ((0, SIZE), (290, SIZE)),    # a thin strip along the narrow right column of tiles
])
def test_cache_first_read_of_a_window_checks_only_the_tiles_it_overlaps(dset, tmp_path, monkeypatch,
                                                                        rows, cols):
    """A window's first read checksums the tiles under it, not the rows or the file."""
    from sampler_core import frames as frames_module
    workdir = tmp_path / 'work'
    new_sampler(dset, workdir).frames.prepare(verbose=0)
    sampler = new_sampler(dset, workdir)
    data = sampler.frames._data(1)  # opened: header checked, no pixel read yet
    assert _checked_tiles(data) == set()
    counter = _CountCrc()
    monkeypatch.setattr(frames_module, 'zlib', counter)
    window = {'gid': 1, 'slices': (slice(*rows), slice(*cols))}
    sample = sampler.load_sample(window)

    tile = data._check.tile
    inside_rows = range(max(rows[0], 0), min(rows[1], SIZE))
    inside_cols = range(max(cols[0], 0), min(cols[1], SIZE))
    expected = _tiles_under(inside_rows, inside_cols, tile)
    assert _checked_tiles(data) == expected
    assert counter.nbytes == _tile_bytes(expected, (SIZE, SIZE, 3), tile)
    assert counter.nbytes < SIZE * SIZE * 3 // 2
    src = source_pixels(dset.get_image_fpath(1))
    assert sample['im'].shape == (rows[1] - rows[0], cols[1] - cols[0], 3)
    top, left = inside_rows.start - rows[0], inside_cols.start - cols[0]
    got = sample['im'][top:top + len(inside_rows), left:left + len(inside_cols)]
    assert np.array_equal(got, src[inside_rows.start:inside_rows.stop,
                                   inside_cols.start:inside_cols.stop])
    before = counter.nbytes
    sampler.load_sample(window)  # checked once per process
    assert counter.nbytes == before


def _write_checked(tmpdir: str, array: np.ndarray, tile):
    from unittest import mock
    from sampler_core import frames as frames_module
    path = os.path.join(tmpdir, 'a.npy')
    with mock.patch.object(frames_module, 'CHECK_TILE', tile):
        frames_module.write_npy_atomic(path, array)
    return path


_arrays = st.tuples(st.integers(1, 23), st.integers(1, 23), st.integers(1, 3),
                    st.sampled_from(['u1', '<u2', '>f4'])).flatmap(
    lambda t: st.builds(lambda seed: np.random.RandomState(seed).randint(
        0, 250, size=t[:3]).astype(t[3]), st.integers(0, 2 ** 31 - 1)))
_tiles = st.tuples(st.integers(1, 9), st.integers(1, 9))


def _bounds(n: int):
    return st.one_of(st.none(), st.integers(-n - 3, n + 3))


@settings(max_examples=60, deadline=None)
@given(array=_arrays, tile=_tiles, gather=st.sampled_from([1, 100, 1 << 23]), data=st.data())
def test_cache_tile_crcs_are_the_crc32_of_each_tile(array, tile, gather, data):
    """Property: ``tile_crcs`` of any rectangle of tiles (gathered in bands of any size)
    equals zlib.crc32 of each tile cut out on its own."""
    import zlib
    from unittest import mock
    from sampler_core import frames as frames_module
    th, tw = tile
    n_i, n_j = -(-array.shape[0] // th), -(-array.shape[1] // tw)
    i0 = data.draw(st.integers(0, n_i))
    i1 = data.draw(st.integers(i0, n_i))
    j0 = data.draw(st.integers(0, n_j))
    j1 = data.draw(st.integers(j0, n_j))
    with mock.patch.object(frames_module, '_TILE_GATHER_BYTES', gather):
        got = frames_module.tile_crcs(array, tile, (i0, i1), (j0, j1))
    expected = [[zlib.crc32(array[i * th:(i + 1) * th, j * tw:(j + 1) * tw].tobytes())
                 for j in range(j0, j1)] for i in range(i0, i1)]
    assert got.shape == (i1 - i0, j1 - j0)
    assert got.tolist() == (expected if j1 > j0 else [[]] * (i1 - i0))


@settings(max_examples=80, deadline=None)
@given(array=_arrays, tile=_tiles, data=st.data())
def test_cache_checked_memmap_checks_exactly_the_tiles_a_read_overlaps(array, tile, data):
    """Property: after ``map[r0:r1, c0:c1]`` (with or without a channel index) the tiles
    checked are those holding a pixel of the read (the slice's own pixels, computed by numpy
    on index arrays), their bytes are the only pixel bytes checksummed, and the read equals
    the array."""
    from unittest import mock
    from sampler_core import frames as frames_module
    h, w, _ = array.shape
    rows = slice(data.draw(_bounds(h)), data.draw(_bounds(h)))
    cols = data.draw(st.one_of(st.builds(slice, _bounds(w), _bounds(w)),
                               st.integers(-w, w - 1)))
    c = array.shape[2]
    chans = data.draw(st.one_of(st.just(()), st.tuples(st.integers(-c, c - 1)),
                                st.tuples(st.lists(st.integers(0, c - 1), min_size=1)),
                                st.tuples(st.builds(slice, _bounds(c), _bounds(c)))))
    with tempfile.TemporaryDirectory() as tmpdir:
        path = _write_checked(tmpdir, array, tile)
        mm = frames_module.open_npy(path)
        counter = _CountCrc()
        with mock.patch.object(frames_module, 'zlib', counter):
            got = np.array(mm[(rows, cols) + chans])
        assert np.array_equal(got, array[(rows, cols) + chans])
        read_rows = np.arange(h)[rows]
        read_cols = np.atleast_1d(np.arange(w)[cols])
        expected = _tiles_under(read_rows.tolist(), read_cols.tolist(), tile)
        assert _checked_tiles(mm) == expected
        assert counter.nbytes == _tile_bytes(expected, array.shape, tile, array.itemsize)

        # a second, overlapping read checks the tiles it adds (within the rectangle of
        # tiles under it), never one outside it
        rows2 = slice(data.draw(_bounds(h)), data.draw(_bounds(h)))
        cols2 = slice(data.draw(_bounds(w)), data.draw(_bounds(w)))
        counter.nbytes = 0
        with mock.patch.object(frames_module, 'zlib', counter):
            assert np.array_equal(mm[rows2, cols2], array[rows2, cols2])
        under2 = _tiles_under(np.arange(h)[rows2].tolist(), np.arange(w)[cols2].tolist(), tile)
        assert _checked_tiles(mm) == expected | under2
        assert (counter.nbytes == 0) == (under2 <= expected)
        assert counter.nbytes <= _tile_bytes(under2, array.shape, tile, array.itemsize)
        del mm


def test_cache_threads_checking_overlapping_tiles_at_once(tmp_path):
    """Threads reading overlapping windows of one fresh map at once all get the right
    pixels, and each tile is counted once: the map stops checking exactly when every
    tile was checked."""
    import threading
    from sampler_core import frames as frames_module
    array = np.random.RandomState(0).randint(0, 255, (120, 120, 3)).astype(np.uint8)
    path = _write_checked(os.fspath(tmp_path), array, (4, 4))
    errors = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for trial in range(20):
            mm = frames_module.open_npy(path)
            barrier = threading.Barrier(6)

            def read(seed):
                rng = np.random.RandomState(seed)
                barrier.wait()
                try:
                    for _ in range(30):
                        y, x = rng.randint(0, 100, 2)
                        if not np.array_equal(mm[y:y + 20, x:x + 20], array[y:y + 20, x:x + 20]):
                            errors.append(f'wrong pixels at {(y, x)}')
                except Exception as ex:  # noqa: BLE001 - reported below
                    errors.append(repr(ex))
            threads = [threading.Thread(target=read, args=(trial * 10 + k,)) for k in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            check = mm._check
            assert check.n_left == np.count_nonzero(~check.verified)
            assert check.done == bool(check.verified.all())
    finally:
        sys.setswitchinterval(old)


@settings(max_examples=80, deadline=None)
@given(array=_arrays, tile=_tiles, data=st.data())
def test_cache_damaged_bytes_are_never_served(array, tile, data):
    """Property: with a run of pixel bytes flipped on disk, a read of a window raises
    CacheCorruptError exactly when a tile under the window holds a damaged byte, and
    otherwise returns the original pixels."""
    from sampler_core import frames as frames_module
    h, w, c = array.shape
    nbytes = array.nbytes
    start = data.draw(st.integers(0, nbytes - 1))
    stop = data.draw(st.integers(start + 1, min(nbytes, start + 4096)))
    rows = slice(data.draw(_bounds(h)), data.draw(_bounds(h)))
    cols = slice(data.draw(_bounds(w)), data.draw(_bounds(w)))
    with tempfile.TemporaryDirectory() as tmpdir:
        path = _write_checked(tmpdir, array, tile)
        offset = np.load(path, mmap_mode='r').offset  # where the pixel bytes start
        with open(path, 'r+b') as file:
            file.seek(offset + start)
            raw = bytearray(file.read(stop - start))
            file.seek(offset + start)
            file.write(bytes(b ^ 0xFF for b in raw))
        assert not np.array_equal(np.load(path, mmap_mode='r'), array)  # the damage is real
        pixel = np.arange(start, stop) // (c * array.itemsize)
        damaged = {(int(p // w) // tile[0], int(p % w) // tile[1]) for p in pixel}
        read = _tiles_under(np.arange(h)[rows].tolist(), np.arange(w)[cols].tolist(), tile)
        mm = frames_module.open_npy(path)
        if read & damaged:
            with pytest.raises(frames_module.CacheCorruptError, match='a.npy is damaged'):
                mm[rows, cols]
        else:
            assert np.array_equal(mm[rows, cols], array[rows, cols])
        del mm


# --------------------------------------------------------------------------- backend=None
@pytest.fixture
def count_decodes(monkeypatch):
    """Count the images decoded (by path) through ``sampler_core.frames.read_image``."""
    import sampler_core.frames as frames_mod
    real = frames_mod.read_image
    decoded = []

    def read_image(path):
        decoded.append(os.fspath(path))
        return real(path)
    monkeypatch.setattr(frames_mod, 'read_image', read_image)
    return decoded


def test_no_backend_consecutive_windows_decode_the_image_once(dset, monkeypatch, count_decodes):
    import sampler_core.frames as frames_mod
    nbytes = SIZE * SIZE * 3
    monkeypatch.setattr(frames_mod, 'DECODED_CACHE_BYTES', nbytes)  # room for one frame
    sampler = sampler_core.CocoSampler(dset, backend=None)
    srcs = {gid: source_pixels(dset.get_image_fpath(gid)) for gid in (1, 2)}
    paths = {gid: os.fspath(dset.get_image_fpath(gid)) for gid in (1, 2)}
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # small frames: no warning
        for gid, y in [(1, 0), (1, 100), (1, 200), (2, 0), (2, 150), (1, 50)]:
            window = {'gid': gid, 'slices': (slice(y, y + 40), slice(10, 70))}
            assert np.array_equal(sampler.load_sample(window)['im'], srcs[gid][y:y + 40, 10:70])
    assert count_decodes == [paths[1], paths[2], paths[1]]
    image = sampler.load_image(1)
    assert np.array_equal(image, srcs[1]) and not image.flags.writeable  # shared, read-only


def test_no_backend_frame_larger_than_the_budget_warns_once(dset, monkeypatch, count_decodes):
    import sampler_core.frames as frames_mod
    monkeypatch.setattr(frames_mod, 'DECODED_CACHE_BYTES', 1000)
    monkeypatch.setattr(frames_mod, 'LARGE_FRAME_BYTES', 1000)
    sampler = sampler_core.CocoSampler(dset, backend=None)
    path = os.fspath(dset.get_image_fpath(1))
    with pytest.warns(UserWarning) as record:
        for y in (0, 100, 200):
            sampler.load_sample({'gid': 1, 'slices': (slice(y, y + 40), slice(10, 70))})
    ours = [str(w.message) for w in record if path in str(w.message)]
    assert len(ours) == 1 and "backend=\"npy\"" in ours[0] and '300x300x3' in ours[0], ours
    assert count_decodes == [path] * 3  # too large to keep: decoded for each window


def test_no_backend_edited_image_is_decoded_again(dset, tmp_path, count_decodes):
    sampler = sampler_core.CocoSampler(dset, backend=None)
    gpath = Path(dset.get_image_fpath(1))
    old = source_pixels(gpath)
    assert np.array_equal(sampler.load_image(1), old)
    new = (255 - old).copy()
    write_png(gpath, new)
    stat = gpath.stat()
    os.utime(gpath, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert np.array_equal(sampler.load_image(1), new)
    assert count_decodes == [os.fspath(gpath)] * 2
