"""The demo datasets: one registry, deterministic content, atomic and race-safe generation,
and configs exported on every demo the explorer offers rebuild."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sampler_core import CocoSampler, SamplingConfig
from sampler_core.demo import (DATASET_FILE, DEMO_DIR_ENV, DEMOS, demo_path, demo_root,
                               ensure_folder, is_valid_folder, load_demo)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: a child process that generates a demo into the folder named by the environment and
#: prints the content hash, the JSON bytes' hash and every file's bytes' hash
_GENERATE = textwrap.dedent('''
    import hashlib, json, os, sys
    import numpy as np
    np.random.seed(int(sys.argv[2]))   # each process starts from another global state
    from sampler_core.config import dataset_hash
    from sampler_core.demo import load_demo
    dset = load_demo(sys.argv[1])
    folder = os.path.dirname(dset.fpath)
    files = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, 'rb') as f:
                files[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    print(json.dumps({'hash': dataset_hash(dset), 'files': files, 'folder': folder}))
''')


def _run_generators(jobs):
    """Start every ``(key, root, seed)`` job at once in its own process; their outputs."""
    procs = []
    for key, root, seed in jobs:
        env = dict(os.environ, PYTHONPATH=ROOT, **{DEMO_DIR_ENV: os.fspath(root)})
        procs.append(subprocess.Popen([sys.executable, '-c', _GENERATE, key, str(seed)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env))
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def test_demo_is_identical_in_every_process_and_folder_and_races_safely(tmp_path):
    """kwcoco's shapes demo drew other categories in each process: generated here, two
    processes racing into one folder and a third into another folder write the same
    annotations (content hash) and the same bytes, file by file; so do two vidshapes."""
    shared, other = tmp_path / 'shared', tmp_path / 'other'
    a, b, c, d, e = _run_generators([
        ('shapes8', shared, 1), ('shapes8', shared, 2), ('shapes8', other, 3),
        # kwcoco's vidshapes also derived its seed from the output path
        ('vidshapes3-frames6', shared, 4), ('vidshapes3-frames6', other, 5)])
    assert d['hash'] == e['hash'] and d['files'] == e['files'] and len(d['files']) == 19
    assert a['folder'] == b['folder'] == os.fspath(shared / 'shapes8-v1')
    assert c['folder'] == os.fspath(other / 'shapes8-v1')
    assert a['hash'] == b['hash'] == c['hash']
    assert a['files'] == b['files'] == c['files']
    assert DATASET_FILE in a['files'] and sum(n.endswith('.png') for n in a['files']) == 8
    # the race left one published folder and no temporary ones (lock files stay)
    assert sorted(p.name for p in shared.iterdir() if not p.name.endswith('.lock')) == \
        ['shapes8-v1', 'vidshapes3-frames6-v1']
    # image paths are relative: the content does not depend on the folder
    data = json.loads((other / 'shapes8-v1' / DATASET_FILE).read_text())
    assert all(not os.path.isabs(img['file_name']) for img in data['images'])


def test_demo_root_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv(DEMO_DIR_ENV, raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', os.fspath(tmp_path / 'cache'))
    assert demo_root() == tmp_path / 'cache' / 'sampler-explorer' / 'demos'
    monkeypatch.setenv(DEMO_DIR_ENV, os.fspath(tmp_path / 'mine'))
    assert demo_root() == tmp_path / 'mine'


def _tiny(folder: Path, calls: list, content: str = 'a') -> None:
    """A generator of a one-image dataset that records its calls."""
    calls.append(folder)
    (folder / 'img.txt').write_text(content)
    (folder / DATASET_FILE).write_text(json.dumps(
        {'images': [{'id': 1, 'file_name': 'img.txt'}], 'info': content}))


def test_demo_present_folder_is_reused_and_never_written_into(tmp_path):
    folder = tmp_path / 'tiny-v1'
    calls = []
    assert ensure_folder(folder, lambda d: _tiny(d, calls)) == folder
    assert len(calls) == 1 and calls[0] != folder          # generated elsewhere, renamed
    stat = (folder / DATASET_FILE).stat()
    ensure_folder(folder, lambda d: _tiny(d, calls, 'b'))
    assert len(calls) == 1                                   # valid: reused as it is
    assert (folder / DATASET_FILE).stat().st_mtime_ns == stat.st_mtime_ns
    # a reader holds the old dataset file open; an image goes missing
    reader = open(folder / DATASET_FILE)
    (folder / 'img.txt').unlink()
    assert not is_valid_folder(folder)
    ensure_folder(folder, lambda d: _tiny(d, calls, 'b'))
    assert len(calls) == 2
    assert json.loads((folder / DATASET_FILE).read_text())['info'] == 'b'
    assert json.loads(reader.read())['info'] == 'a'        # the reader's file was not rewritten
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.tiny-v1.lock', 'tiny-v1']


def test_demo_generator_that_fails_publishes_nothing(tmp_path):
    folder = tmp_path / 'bad-v1'

    def broken(d):
        (d / 'partial.png').write_text('x')
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        ensure_folder(folder, broken)
    with pytest.raises(RuntimeError, match='no valid dataset'):
        ensure_folder(folder, lambda d: (d / 'partial.png').write_text('x'))
    assert [p.name for p in tmp_path.iterdir()] == ['.bad-v1.lock']


def test_demo_unknown_key_lists_the_demos():
    with pytest.raises(KeyError, match='shapes8'):
        demo_path('shapes9')
    with pytest.raises(FileNotFoundError, match="shapes9.*'shapes8'"):
        CocoSampler('shapes9')


def test_demo_library_and_app_open_the_same_demo():
    from app import demo as app_demo
    assert list(app_demo.DEMOS) == list(DEMOS)
    assert app_demo.load_demo is load_demo
    assert CocoSampler('shapes8').dset.fpath == CocoSampler.demo('shapes8').dset.fpath == \
        os.fspath(demo_path('shapes8'))


@pytest.mark.parametrize('key', list(DEMOS))
def test_demo_every_app_demo_config_rebuilds(key, tmp_path):
    """The explorer's export of each demo it offers rebuilds the same pools (large2 raised
    FileNotFoundError: the library did not know the app's demos)."""
    from app.state import ExplorerState
    state = ExplorerState(dataset=key, backend=None, window_dims=(64, 64), n_pos=5, n_neg=3,
                          seed=4)
    path = tmp_path / 'config.yaml'
    path.write_text(state.export_yaml())
    assert SamplingConfig.load(path).dataset == key
    rebuilt = CocoSampler.from_config(path)
    n = state.pools.n_pos + state.pools.n_neg
    assert n == 8 and len(rebuilt) == n
    for i in range(n):
        row = state.pools.item(i)
        sl = rebuilt.load_item(i)['target']['space_slice']
        assert (row['gid'], row['y0'], row['x0'], row['y1'], row['x1']) == (
            rebuilt.load_item(i)['target']['gid'], sl[0].start, sl[1].start, sl[0].stop,
            sl[1].stop)


def test_demo_hash_mismatch_names_the_dataset_and_what_to_do():
    good = SamplingConfig(dataset='shapes8', backend=None, n_pos=2, n_neg=0)
    current = CocoSampler.from_config(good).to_config().dataset_hash
    stale = 'f' * len(current)
    cfg = SamplingConfig(dataset='shapes8', backend=None, n_pos=2, n_neg=0, dataset_hash=stale)
    with pytest.raises(ValueError) as info:
        CocoSampler.from_config(cfg)
    msg = str(info.value)
    assert "dataset 'shapes8' changed" in msg
    assert current[:12] in msg and stale[:12] in msg
    assert current not in msg and stale not in msg          # short hashes only
    assert 'Re-export the config' in msg and 'allow_hash_mismatch=True' in msg
    with pytest.warns(UserWarning, match="dataset 'shapes8' changed"):
        CocoSampler.from_config(cfg, allow_hash_mismatch=True)


def test_demo_lost_rename_race_uses_the_winners_folder(tmp_path):
    """Without the lock file (another file system), two generators both rename: the
    loser's rename fails, it keeps the winner's folder and removes its own."""
    folder = tmp_path / 'tiny-v1'
    calls = []

    def generate_while_another_process_publishes(d):
        _tiny(d, calls, 'mine')
        other = tmp_path / 'other-process'
        other.mkdir()
        _tiny(other, calls, 'winner')
        os.rename(other, folder)

    assert ensure_folder(folder, generate_while_another_process_publishes) == folder
    assert json.loads((folder / DATASET_FILE).read_text())['info'] == 'winner'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.tiny-v1.lock', 'tiny-v1']


def test_demo_sampler_to_config_names_the_demo_by_its_key():
    """A config exported from a demo sampler names the demo's key (which rebuilds the same
    content on any machine), not this machine's cache path."""
    from sampler_core import CocoSampler
    sampler = CocoSampler.demo('shapes8')
    sampler.regions.preselect(n_pos=5, n_neg=3, window_dims=(64, 64), rng=1)
    cfg = sampler.to_config()
    assert cfg.dataset == 'shapes8'
    rebuilt = CocoSampler.from_config(cfg)
    a, b = sampler.regions.pool_tables(), rebuilt.regions.pool_tables()
    assert all((a[i][k] == b[i][k]).all() for i in (0, 1) for k in a[i])
