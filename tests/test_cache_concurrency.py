"""Frame cache under concurrency: 4 processes prepare one cache at once, one is
SIGKILLed in the middle of writing a file; the cache must load and match the
source pixels, and nothing half-written may ever be read as valid."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sampler_core import CocoSampler, SamplingConfig
from sampler_core.frames import CocoFrames, open_npy, read_image
from sampler_core.prepare import prepare_cache, remove_stale_tmp

pytestmark = pytest.mark.skipif(sys.platform == 'win32', reason='SIGKILL is POSIX')

#: a preparing process; the victim writes half of its first file, then hangs
CHILD = r'''
import io, json, os, sys, time
from pathlib import Path
config, role, flags = sys.argv[1], sys.argv[2], Path(sys.argv[3])
import numpy as np
from sampler_core.prepare import prepare_cache
if role == 'victim':
    real = np.lib.format.write_array
    def half_then_hang(fp, array, *args, **kw):
        buf = io.BytesIO()
        real(buf, array, *args, **kw)
        data = buf.getvalue()
        fp.write(data[:len(data) // 2])
        fp.flush()
        os.fsync(fp.fileno())
        (flags / 'victim-mid-write').write_text(fp.name)
        time.sleep(600)
    np.lib.format.write_array = half_then_hang
else:
    (flags / f'ready-{role}').write_text('')
    while not (flags / 'go').exists():
        time.sleep(0.005)
stats = prepare_cache(config, verbose=0)
print(json.dumps({'built': stats['built'], 'cached': stats['cached']}))
'''


def _wait_for(path: Path, proc=None, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f'process exited early: {proc.communicate()}')
        assert time.monotonic() < deadline, f'timed out waiting for {path}'
        time.sleep(0.01)


def _frames(config_path):
    cfg = SamplingConfig.load(config_path)
    sampler = CocoSampler.from_config(cfg)
    return sampler, CocoFrames(sampler.dset, workdir=cfg.workdir, backend='npy')


def _assert_cache_matches_source(frames) -> None:
    for gid in frames.image_ids:
        data = open_npy(frames._cache_fpath(gid), frames._lookup_hw(gid))
        assert data is not None, f'cache of image {gid} is missing or invalid'
        assert np.array_equal(np.asarray(data), read_image(frames._lookup_gpath(gid)))


@pytest.fixture()
def config_path(tmp_path):
    import kwcoco
    dset = kwcoco.CocoDataset.demo('shapes8')
    path = tmp_path / 'shapes8.kwcoco.json'
    dset.fpath = str(path)
    dset.dump(str(path))
    cfg = SamplingConfig(dataset=str(path), backend='npy', workdir=str(tmp_path / 'work'),
                         window_dims=(64, 64), n_pos=4, n_neg=4)
    out = tmp_path / 'config.yaml'
    cfg.dump(out)
    return str(out)


def test_cache_four_processes_and_one_killed_mid_write(config_path, tmp_path):
    flags = tmp_path / 'flags'
    flags.mkdir()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    start = lambda role: subprocess.Popen(  # noqa: E731
        [sys.executable, '-c', CHILD, config_path, role, str(flags)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    victim = start('victim')
    others = []
    try:
        _wait_for(flags / 'victim-mid-write', victim)
        partial = Path((flags / 'victim-mid-write').read_text())
        assert partial.exists() and '.tmp-' in partial.name
        others = [start(str(i)) for i in range(3)]
        for i, proc in enumerate(others):
            _wait_for(flags / f'ready-{i}', proc)
        (flags / 'go').write_text('')          # the three start preparing at once ...
        time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)    # ... while the fourth dies mid-write
        assert victim.wait(timeout=30) == -signal.SIGKILL
        results = []
        for proc in others:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in [victim] + others:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # every image was prepared by somebody, and each process saw a full cache
    assert all(r['built'] + r['cached'] == 8 for r in results)
    sampler, frames = _frames(config_path)
    _assert_cache_matches_source(frames)

    # the victim's half file is still there under its temporary name, and is not valid
    assert partial.exists()
    final = partial.name.split('.tmp-')[0]
    assert final.endswith('.npy') and (partial.parent / final).exists()
    assert open_npy(partial) is None
    leftovers = sorted(p.name for p in frames.cache_dpath.iterdir() if '.tmp-' in p.name)
    assert leftovers == [partial.name]

    # the sampler reads the source pixels through the cache
    for gid in frames.image_ids:
        assert np.array_equal(sampler.load_image(gid)[:], read_image(frames._lookup_gpath(gid)))

    # preparing again finds everything cached; old temporary files are cleaned up
    stats = prepare_cache(config_path, verbose=0)
    assert (stats['built'], stats['cached']) == (0, 8)
    assert remove_stale_tmp(frames.cache_dpath, max_age=0) == 1
    assert not partial.exists()


def test_cache_truncated_or_corrupt_final_files_are_rebuilt(config_path):
    """A file at the final name that is short (disk full, a non-atomic copy) or has a
    garbled header is never read as valid: prepare rebuilds it."""
    prepare_cache(config_path, verbose=0)
    sampler, frames = _frames(config_path)
    gids = frames.image_ids
    short = frames._cache_fpath(gids[0])
    short.write_bytes(short.read_bytes()[:-1000])
    garbled = frames._cache_fpath(gids[1])
    raw = bytearray(garbled.read_bytes())
    raw[:6] = b'NOTNPY'
    garbled.write_bytes(bytes(raw))
    assert open_npy(short, frames._lookup_hw(gids[0])) is None
    assert open_npy(garbled, frames._lookup_hw(gids[1])) is None
    stats = prepare_cache(config_path, verbose=0)
    assert (stats['built'], stats['cached']) == (2, 6)
    _assert_cache_matches_source(frames)
