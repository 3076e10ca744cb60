"""sampler_core.torch: SampleDataset + collate, determinism across workers and processes."""
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from sampler_core import CocoSampler, SamplingConfig  # noqa: E402
from sampler_core.torch import SampleDataset, collate  # noqa: E402


@pytest.fixture(scope='module')
def config_path(shapes_path, tmp_path_factory):
    """A config exported the way the app exports it (app.state if present)."""
    workdir = tmp_path_factory.mktemp('torch_cache')
    fields = dict(window_dims=(64, 64), pad=(4, 4), n_pos=14, n_neg=6, seed=5, backend='npy',
                  workdir=str(workdir), split_by='image', val_fraction=0.25, split_seed=1,
                  balance='inverse')
    path = workdir / 'config.yaml'
    try:
        from app.state import ExplorerState
    except ImportError:  # the explorer is optional for this test
        cfg = CocoSampler.from_config(SamplingConfig(dataset=shapes_path, **fields)).to_config()
        cfg.dump(path)
    else:
        import os
        import kwcoco
        images = os.path.dirname(kwcoco.CocoDataset(shapes_path).get_image_fpath(1))
        state = ExplorerState(dataset=shapes_path, roots=[os.path.dirname(shapes_path), images],
                              **fields)
        path.write_text(state.export_yaml())
    return str(path)


def _batches(dataset, **kw):
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=collate, **kw)
    return list(loader)


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x['image'], y['image'])
        for key in ('boxes', 'labels', 'aids'):
            assert len(x[key]) == len(y[key])
            assert all(torch.equal(u, v) for u, v in zip(x[key], y[key]))
        assert x['target'].keys() == y['target'].keys()
        assert all(torch.equal(x['target'][k], y['target'][k]) for k in x['target'])


def test_torch_import_is_lazy():
    code = ('import sys, sampler_core, sampler_core.torch, sampler_core.prepare\n'
            'print("torch" in sys.modules)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False'


def test_torch_item_contents(config_path):
    ds = SampleDataset(config_path, mode='train', masks=True)
    assert len(ds) == ds.sampler.n_samples > 0
    n_pos = ds.sampler.regions.n_positives
    for index in range(len(ds)):
        item = ds[index]
        image = item['image']
        assert image.shape == (3, 72, 72) and image.dtype == torch.float32
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        n = len(item['aids'])
        assert item['boxes'].shape == (n, 4) and item['boxes'].dtype == torch.float32
        assert item['labels'].shape == (n,) and item['labels'].dtype == torch.int64
        assert item['masks'].shape == (n, 72, 72) and item['masks'].dtype == torch.uint8
        boxes = item['boxes']
        assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 1] <= boxes[:, 3]).all()
        assert (boxes >= 0).all() and (boxes <= 72).all()
        dset = ds.sampler.dset
        assert item['labels'].tolist() == [dset.anns[a]['category_id'] for a in item['aids'].tolist()]
        tr = item['target']
        assert int(tr['index']) == index
        pool_index = int(tr['pool_index'])
        x0, y0, x1, y1 = tr['window'].tolist()
        assert (x1 - x0, y1 - y0) == (72, 72)
        if pool_index < n_pos:
            assert int(tr['aid']) in item['aids'].tolist()
        else:
            assert int(tr['aid']) == -1
        # pixels are those of the sampler, scaled
        sample = ds.sampler.load_item(pool_index)
        assert torch.equal(image, torch.from_numpy(
            np.ascontiguousarray(sample['im'].transpose(2, 0, 1))).float() / 255)


def test_torch_uint8_and_errors(config_path):
    ds = SampleDataset(config_path, mode='val', image_dtype='uint8')
    assert ds[0]['image'].dtype == torch.uint8
    assert not ds.shuffle and ds.order().tolist() == list(range(len(ds)))
    with pytest.raises(ValueError, match='mode'):
        SampleDataset(config_path, mode='test')
    with pytest.raises(ValueError, match='image_dtype'):
        SampleDataset(config_path, image_dtype='float16')
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(ValueError, match="'val'"):
        SampleDataset(ds.sampler, mode='train')


def test_torch_train_and_val_never_share_an_image(config_path):
    train = SampleDataset(config_path, mode='train')
    val = SampleDataset(config_path, mode='val')
    gids = {name: {int(ds[i]['target']['gid']) for i in range(len(ds))}
            for name, ds in [('train', train), ('val', val)]}
    assert gids['train'] and gids['val'] and not gids['train'] & gids['val']


def test_torch_epochs_reshuffle_deterministically(config_path):
    a, b = SampleDataset(config_path), SampleDataset(config_path)
    first = a.order().copy()
    a.set_epoch(1)
    b.set_epoch(1)
    assert np.array_equal(a.order(), b.order())
    assert not np.array_equal(a.order(), first)
    assert sorted(a.order().tolist()) == sorted(first.tolist())
    a.set_epoch(0)
    assert np.array_equal(a.order(), first)


def test_torch_dataloader_same_batches_for_0_fork_and_spawn_workers(config_path):
    ds = SampleDataset(config_path, mode='train', masks=True)
    ds.set_epoch(3)
    serial = _batches(ds, num_workers=0)
    forked = _batches(ds, num_workers=2, multiprocessing_context='fork')
    spawned = _batches(ds, num_workers=2, multiprocessing_context='spawn')
    _assert_same_batches(serial, forked)
    _assert_same_batches(serial, spawned)
    for x, y in zip(serial, spawned):
        assert all(torch.equal(u, v) for u, v in zip(x['masks'], y['masks']))
    ds.set_epoch(4)
    other = _batches(ds, num_workers=0)
    assert not all(torch.equal(x['target']['pool_index'], y['target']['pool_index'])
                   for x, y in zip(serial, other))


def test_torch_dataset_pickles_with_its_index(config_path):
    ds = SampleDataset(config_path)
    before = [ds[i] for i in range(3)]
    again = pickle.loads(pickle.dumps(ds))
    assert '_tree' not in again.sampler.regions.isect_index.__dict__  # rebuilt lazily
    for i, item in enumerate(before):
        other = again[i]
        assert torch.equal(item['image'], other['image'])
        assert torch.equal(item['aids'], other['aids'])


def _stream(sampler, n):
    out = []
    for i in range(n):
        s = sampler.load_item(i)
        out.append([s['target']['gid'], [s['target']['space_slice'][0].start,
                                          s['target']['space_slice'][1].start],
                    int(np.asarray(s['im'], dtype=np.int64).sum()), s['annots']['aids'].tolist()])
    return out


def test_torch_exported_config_streams_are_identical_across_processes(config_path):
    """The exported config, loaded here and in a fresh process, samples bit-identical
    (target, pixels, aids) streams for both subsets."""
    code = (
        'import sys, json, numpy as np\n'
        'from sampler_core import CocoSampler\n'
        'out = {}\n'
        'for subset in ("train", "val"):\n'
        '    sp = CocoSampler.from_config(sys.argv[1], subset=subset)\n'
        '    rows = []\n'
        '    for i in range(sp.n_samples):\n'
        '        s = sp.load_item(i)\n'
        '        rows.append([s["target"]["gid"], [s["target"]["space_slice"][0].start,\n'
        '                     s["target"]["space_slice"][1].start],\n'
        '                     int(np.asarray(s["im"], dtype=np.int64).sum()),\n'
        '                     s["annots"]["aids"].tolist()])\n'
        '    out[subset] = rows\n'
        'print(json.dumps(out))\n')
    res = subprocess.run([sys.executable, '-c', code, config_path], capture_output=True,
                         text=True, check=True)
    theirs = json.loads(res.stdout.strip().splitlines()[-1])
    for subset in ('train', 'val'):
        first = CocoSampler.from_config(config_path, subset=subset)
        second = CocoSampler.from_config(config_path, subset=subset)
        mine = _stream(first, first.n_samples)
        assert mine == _stream(second, second.n_samples) == theirs[subset]
        # and the pixels bit for bit
        for i in range(first.n_samples):
            assert np.array_equal(first.load_item(i)['im'], second.load_item(i)['im'])


def test_torch_wraps_a_plain_sampler(shapes_path):
    sampler = CocoSampler(shapes_path, backend=None)
    sampler.regions.preselect(n_pos=3, n_neg=2, window_dims=(40, 50), rng=0)
    ds = SampleDataset(sampler, target={'window_dims': (40, 50)}, shuffle=False)
    batch = collate([ds[i] for i in range(len(ds))])
    assert batch['image'].shape == (5, 3, 40, 50)
    assert batch['target']['aid'].tolist()[3:] == [-1, -1]


def test_torch_collate_keeps_different_sizes_apart(shapes_path):
    sampler = CocoSampler(shapes_path, backend=None)
    sampler.regions.preselect(n_pos=4, n_neg=0, rng=0)  # box-sized windows
    ds = SampleDataset(sampler, shuffle=False)
    batch = collate([ds[i] for i in range(4)])
    assert isinstance(batch['image'], list) and len(batch['image']) == 4


def test_torch_scaled_windows(shapes_path):
    cfg = SamplingConfig(dataset=shapes_path, backend=None, window_dims=(64, 64), pad=(4, 4),
                         scale=0.5, n_pos=4, n_neg=1, seed=1)
    ds = SampleDataset(cfg, shuffle=False)
    for i in range(len(ds)):
        item = ds[i]
        assert item['image'].shape == (3, 36, 36)
        assert (item['boxes'] <= 36).all()
        x0, y0, x1, y1 = item['target']['window'].tolist()
        assert (x1 - x0, y1 - y0) == (72, 72)  # the window in source pixels


def _pool_order(batches) -> list[int]:
    return [int(v) for b in batches for v in b['target']['pool_index']]


@pytest.mark.parametrize('context', ['fork', 'spawn'])
def test_torch_persistent_workers_follow_set_epoch(config_path, context):
    """With ``sampler=ds.epoch_sampler()`` the epoch travels with each index, so persistent
    workers (which keep the dataset copy they started with) serve the epoch set_epoch chose,
    in the order 0 workers give."""
    ds = SampleDataset(config_path, mode='train')
    expected = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        expected.append(_pool_order(_batches(ds, num_workers=0)))
    assert len({tuple(e) for e in expected}) == 3  # the epochs differ
    loader = torch.utils.data.DataLoader(
        ds, batch_size=4, collate_fn=collate, sampler=ds.epoch_sampler(), num_workers=2,
        persistent_workers=True, multiprocessing_context=context)
    got, epochs = [], []
    for epoch in range(3):
        ds.set_epoch(epoch)
        batches = list(loader)
        got.append(_pool_order(batches))
        epochs.append({int(v) for b in batches for v in b['target']['epoch']})
    assert got == expected
    assert epochs == [{0}, {1}, {2}]
    # going back to an epoch gives its order again
    ds.set_epoch(1)
    assert _pool_order(list(loader)) == expected[1]
    assert _pool_order(_batches(ds, num_workers=0, sampler=ds.epoch_sampler())) == expected[1]


def test_torch_dataset_accepts_epoch_index_pairs(config_path):
    ds = SampleDataset(config_path, mode='train')
    ds.set_epoch(2)
    items = [ds[i] for i in range(len(ds))]
    ds.set_epoch(0)
    for i, item in enumerate(items):
        pair = ds[(2, i)]
        assert int(pair['target']['epoch']) == 2
        assert int(pair['target']['pool_index']) == int(item['target']['pool_index'])
        assert torch.equal(pair['image'], item['image'])
    assert ds.epoch == 0  # a pair does not change the dataset's epoch
    assert list(ds.epoch_sampler()) == [(0, i) for i in range(len(ds))]
    assert len(ds.epoch_sampler()) == len(ds)
    with pytest.raises(ValueError, match='-1'):
        ds[(-1, 0)]
    with pytest.raises(IndexError, match=str(len(ds))):
        ds[(0, len(ds))]


PLAIN_PERSISTENT = """
import sys, torch
from sampler_core.torch import SampleDataset, collate
ds = SampleDataset(sys.argv[1], mode='train')
loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate, num_workers=1,
                                     persistent_workers=True, multiprocessing_context='fork')
for epoch in range(3):
    ds.set_epoch(epoch)
    list(loader)
"""


def test_torch_persistent_workers_without_epoch_sampler_warn(config_path):
    """Plain indices with persistent workers cannot follow set_epoch: the worker says so."""
    res = subprocess.run([sys.executable, '-c', PLAIN_PERSISTENT, config_path],
                         capture_output=True, text=True, check=True)
    assert 'persistent_workers' in res.stderr and 'epoch_sampler()' in res.stderr, res.stderr
    assert res.stderr.count('set_epoch does not reach') == 1  # once per worker
