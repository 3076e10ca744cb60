"""Training options of config version 2: epoch length, many GPUs, ...

Each option is checked against a computation of its own (numpy's RandomState
drawn here, counts, geometry), not against the function that implements it.
"""
from __future__ import annotations

import os
import re
import socket

import numpy as np
import pytest

from sampler_core import CocoSampler, SamplingConfig
from sampler_core.config import CONFIG_VERSION

torch = pytest.importorskip('torch')

from sampler_core.torch import SampleDataset, collate  # noqa: E402

V1_FILE = """\
version: 1
dataset: shapes8
backend: null
window_dims: [64, 64]
pad: [4, 4]
n_pos: 5
n_neg: 3
seed: 2
mode: random
balance: inverse
split_by: image
val_fraction: 0.25
"""


def test_version1_file_loads_as_version2_and_means_the_same(tmp_path):
    path = tmp_path / 'v1.yaml'
    path.write_text(V1_FILE)
    cfg = SamplingConfig.load(path)
    assert CONFIG_VERSION == 2 and cfg.version == 2
    assert cfg.epoch_length is None
    # the same pools and pixels as the version-1 fields given directly
    plain = SamplingConfig(dataset='shapes8', backend=None, window_dims=(64, 64), pad=(4, 4),
                           n_pos=5, n_neg=3, seed=2, balance='inverse', split_by='image',
                           val_fraction=0.25)
    a, b = CocoSampler.from_config(cfg), CocoSampler.from_config(plain)
    assert a.n_samples == b.n_samples == 8
    for i in range(a.n_samples):
        assert a.regions.get_item(i) == b.regions.get_item(i)
        np.testing.assert_array_equal(a.load_item(i)['im'], b.load_item(i)['im'])
    # written back as version 2, loads again unchanged
    text = cfg.dumps()
    assert 'version: 2' in text and 'epoch_length: null' in text
    assert SamplingConfig.loads(text).to_dict() == cfg.to_dict()
    with pytest.raises(ValueError, match='version'):
        SamplingConfig.loads('version: 3\n')


@pytest.mark.parametrize('value, exc', [(0, ValueError), (-5, ValueError), (True, TypeError),
                                        ('10', TypeError), (2.5, TypeError)])
def test_epoch_length_bad_values_name_the_key(value, exc):
    with pytest.raises(exc, match='epoch_length'):
        SamplingConfig.from_dict({'epoch_length': value})


def _config(**kw) -> SamplingConfig:
    base = dict(dataset='shapes8', backend=None, window_dims=(32, 32), n_pos=5, n_neg=2, seed=3)
    base.update(kw)
    return SamplingConfig(**base)


def _independent_order(n, length, seed, epoch):
    """Permutations of range(n) drawn one after the other from RandomState(seed + epoch)."""
    rng = np.random.RandomState(seed + epoch)
    out = []
    while len(out) < length:
        out.extend(rng.permutation(n).tolist())
    return out[:length]


@pytest.mark.parametrize('length', [3, 7, 17], ids=['shorter', 'equal', 'longer'])
def test_epoch_length_draws_from_the_pools(length):
    ds = SampleDataset(_config(epoch_length=length))
    n = 7
    assert ds.n_pool == n and len(ds) == length
    for epoch in (0, 1, 4):
        ds.set_epoch(epoch)
        order = ds.order().tolist()
        assert order == _independent_order(n, length, 3, epoch)
        counts = np.bincount(order, minlength=n)
        assert set(counts.tolist()) <= {length // n, -(-length // n)}
        if length <= n:
            assert len(set(order)) == length           # no window twice
    ds.set_epoch(0)
    a = ds.order().tolist()
    ds.set_epoch(1)
    assert ds.order().tolist() != a                    # set_epoch reshuffles
    # items read are the windows of the order
    ds.set_epoch(4)
    sampler = CocoSampler.from_config(_config())
    for i in (0, length - 1):
        item = ds[i]
        pool = _independent_order(n, length, 3, 4)[i]
        assert int(item['target']['pool_index']) == pool
        np.testing.assert_array_equal(
            (item['image'].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8),
            sampler.load_item(pool)['im'])


def test_epoch_length_without_shuffle_cycles_the_pool():
    ds = SampleDataset(_config(epoch_length=16), shuffle=False)
    assert ds.order().tolist() == [i % 7 for i in range(16)]
    assert SampleDataset(_config(), epoch_length=4, shuffle=False).order().tolist() == [0, 1, 2, 3]


def test_epoch_length_the_same_in_every_worker_and_start_method():
    ds = SampleDataset(_config(epoch_length=11))
    ds.set_epoch(2)
    expect = _independent_order(7, 11, 3, 2)
    for kw in ({}, {'num_workers': 2, 'multiprocessing_context': 'fork'},
               {'num_workers': 2, 'multiprocessing_context': 'spawn'}):
        loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate,
                                             sampler=ds.epoch_sampler(), **kw)
        got = [int(v) for b in loader for v in b['target']['pool_index']]
        assert got == expect, kw


# ----------------------------------------------------------------------------- many GPUs
def test_ranks_are_disjoint_and_cover_the_epoch():
    for length, world in ((None, 2), (12, 3), (7, 2), (20, 4)):
        shards = [SampleDataset(_config(epoch_length=length), rank=r, world_size=world)
                  for r in range(world)]
        total = 7 if length is None else length
        per_rank = -(-total // world)
        assert [len(s) for s in shards] == [per_rank] * world
        stream = _independent_order(7, per_rank * world, 3, 0)
        for r, s in enumerate(shards):
            assert s.order().tolist() == stream[r::world]
        positions = sorted(p for r in range(world) for p in range(r, per_rank * world, world))
        assert positions == list(range(per_rank * world))   # disjoint, and cover the epoch
        if total % world == 0 and total <= 7:
            windows = [w for s in shards for w in s.order().tolist()]
            assert len(set(windows)) == len(windows) == total


@pytest.mark.parametrize('rank, world, exc', [(2, 2, ValueError), (-1, 2, ValueError),
                                              (0, 0, ValueError), (True, 2, TypeError)])
def test_bad_ranks_are_refused(rank, world, exc):
    with pytest.raises(exc, match='rank|world_size'):
        SampleDataset(_config(), rank=rank, world_size=world)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _ddp_worker(rank, world, port, cfg_dict, out_dir):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world)
    try:
        ds = SampleDataset(cfg_dict)                    # rank and world size from dist
        result = {}
        for epoch in (0, 1):
            ds.set_epoch(epoch)
            read = [int(ds[i]['target']['pool_index']) for i in range(len(ds))]
            gathered = [None] * world
            dist.all_gather_object(gathered, read)
            result[epoch] = gathered
        result['rank'] = (ds.rank, ds.world_size)
        np.save(os.path.join(out_dir, f'rank{rank}.npy'), np.array([result], dtype=object))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_share_the_epoch(tmp_path, shapes_path):
    """Two CPU processes on the gloo backend: each reads its own shard, together the epoch."""
    import torch.multiprocessing as mp
    cfg = _config(dataset=shapes_path, epoch_length=10).to_dict()
    mp.spawn(_ddp_worker, args=(2, _free_port(), cfg, str(tmp_path)), nprocs=2, join=True)
    results = [np.load(tmp_path / f'rank{r}.npy', allow_pickle=True)[0] for r in range(2)]
    assert [r['rank'] for r in results] == [(0, 2), (1, 2)]
    for epoch in (0, 1):
        stream = _independent_order(7, 10, 3, epoch)
        gathered = results[0][epoch]
        assert gathered == results[1][epoch]
        assert gathered == [stream[0::2], stream[1::2]]
        assert sorted(gathered[0] + gathered[1]) == sorted(stream)


# ----------------------------------------------------------------------------- grid balance
def _grid_windows_and_categories(dset, dims):
    """Every 'shift' grid window of every image (no overlap) and the categories of the
    annotation boxes with area inside it, computed here from the boxes."""
    out = []
    for gid, img in sorted(dset.imgs.items()):
        H, W = img['height'], img['width']

        def starts(length, d):
            s = list(range(0, max(length - d, 0) + 1, d))
            if s[-1] + d < length:
                s.append(length - d)
            return s
        for y in starts(H, dims[0]):
            for x in starts(W, dims[1]):
                cats = set()
                for ann in dset.annots(gid=gid).objs:
                    bx, by, bw, bh = ann['bbox']
                    iw = min(bx + bw, x + dims[1]) - max(bx, x)
                    ih = min(by + bh, y + dims[0]) - max(by, y)
                    if iw > 0 and ih > 0:
                        cats.add(ann['category_id'])
                out.append((gid, (x, y, x + dims[1], y + dims[0]), cats))
    return out


@pytest.mark.parametrize('balance', ['inverse', 'weights'])
def test_grid_balance_weights_windows_by_their_rarest_category(balance):
    dims = (200, 200)
    dset = CocoSampler.demo('shapes8').dset          # the dataset the config names
    windows = [w for w in _grid_windows_and_categories(dset, dims) if w[2]]
    names = {c['id']: c['name'] for c in dset.cats.values()}
    class_weights = {}
    if balance == 'inverse':
        count = {}
        for _, _, cats in windows:
            for c in cats:
                count[c] = count.get(c, 0) + 1
        weight = {c: 1 / k for c, k in count.items()}
    else:
        rare = sorted(names)[:2]
        class_weights = {names[rare[0]]: 5.0, names[rare[1]]: 0.0}
        weight = {c: class_weights.get(names[c], 1.0) for c in names}
    w = np.array([max(weight[c] for c in cats) for _, _, cats in windows])
    expect = w / w.sum()
    n = 20000
    cfg = SamplingConfig(dataset='shapes8', backend=None, mode='grid', window_dims=dims,
                         n_pos=n, n_neg=0, seed=1, balance=balance, class_weights=class_weights)
    sampler = CocoSampler.from_config(cfg)
    pos, _ = sampler.regions.pool_tables()
    keys = {(g, box): i for i, (g, box, _) in enumerate(windows)}
    got = np.zeros(len(windows))
    for g, cx, cy, width, height in zip(pos['gid'], pos['cx'], pos['cy'], pos['width'],
                                        pos['height']):
        box = (int(cx - width / 2), int(cy - height / 2), int(cx + width / 2),
               int(cy + height / 2))
        got[keys[(int(g), box)]] += 1          # a KeyError: a window that holds nothing
    assert got.sum() == n
    # each window drawn in proportion to its rarest category's weight (5 sigma)
    sigma = np.sqrt(n * expect * (1 - expect))
    assert (np.abs(got - n * expect) <= 5 * sigma + 1).all()
    assert (got[expect == 0] == 0).all()
    # the same every run; the config round-trips through the sampler
    again = CocoSampler.from_config(cfg).regions.pool_tables()[0]
    assert np.array_equal(np.asarray(again['cx']), np.asarray(pos['cx']))
    exported = sampler.to_config()
    assert (exported.mode, exported.balance) == ('grid', balance)
    if balance == 'weights':   # categories not listed weigh 1.0
        assert {k: exported.class_weights.get(k, 1.0) for k in names.values()} == \
            {k: class_weights.get(k, 1.0) for k in names.values()}


def test_grid_balance_default_count_is_the_positive_windows():
    dims = (200, 200)
    dset = CocoSampler.demo('shapes8').dset
    n_windows = sum(1 for w in _grid_windows_and_categories(dset, dims) if w[2])
    plain = CocoSampler.from_config(SamplingConfig(dataset='shapes8', backend=None, mode='grid',
                                                   window_dims=dims, n_neg=0))
    balanced = CocoSampler.from_config(SamplingConfig(dataset='shapes8', backend=None,
                                                      mode='grid', window_dims=dims, n_neg=0,
                                                      balance='inverse'))
    assert plain.regions.n_positives == balanced.regions.n_positives == n_windows


# ----------------------------------------------------------------------------- scale jitter
def test_scale_range_draws_a_scale_per_item_epoch_and_seed():
    cfg = _config(scale_range=[0.5, 1.5], seed=4)
    sampler = CocoSampler.from_config(cfg)
    plain = CocoSampler.from_config(_config(seed=4))
    seen = set()
    for epoch in (0, 1):
        for i in range(sampler.n_samples):
            # the draw, computed here: numpy's generator seeded by (seed, epoch, index, 0)
            s = 0.5 + 1.0 * np.random.default_rng([4, epoch, i, 0]).random()
            sample = sampler.load_item(i, epoch=epoch)
            assert sample['params']['tf_rel_to_abs'][0, 0] == pytest.approx(1 / s)
            ref = plain.load_item(i, scale=s)
            np.testing.assert_array_equal(sample['im'], ref['im'])
            np.testing.assert_allclose(sample['annots']['rel_boxes'].data,
                                       ref['annots']['rel_boxes'].data)
            side = int(round(32 * s))
            assert abs(sample['im'].shape[0] - side) <= 1
            seen.add(round(s, 9))
    assert len(seen) == 2 * sampler.n_samples           # every item and epoch its own draw
    # SampleDataset reads item (pool index p, epoch e) as load_item(p, epoch=e)
    ds = SampleDataset(cfg)
    ds.set_epoch(1)
    item = ds[2]
    p = int(item['target']['pool_index'])
    want = sampler.load_item(p, epoch=1)['im']
    got = (item['image'].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize('data, exc', [
    ({'scale_range': [0, 1]}, ValueError), ({'scale_range': [2, 1]}, ValueError),
    ({'scale_range': [1]}, TypeError), ({'scale_range': 'big'}, TypeError),
    ({'scale_range': [1, float('inf')]}, ValueError)])
def test_scale_range_bad_values_name_the_key(data, exc):
    with pytest.raises(exc, match='scale_range'):
        SamplingConfig.from_dict(data)


def test_scale_range_multiplies_scale():
    cfg = _config(scale_range=[0.5, 1.5], scale=[2.0, 0.5], seed=4)
    f = 0.5 + np.random.default_rng([4, 2, 3, 0]).random()
    assert cfg.item_target(3, epoch=2) == {'scale': (2.0 * f, 0.5 * f)}
    sample = CocoSampler.from_config(cfg).load_item(3, epoch=2)
    np.testing.assert_allclose(np.diag(sample['params']['tf_rel_to_abs'])[:2],
                               [1 / (0.5 * f), 1 / (2.0 * f)])   # (x, y) order


def test_scale_range_round_trips_and_exports(tmp_path):
    from sampler_core.prepare import export_chips
    cfg = _config(scale_range=[0.5, 2.0], n_pos=3, n_neg=1)
    assert SamplingConfig.loads(cfg.dumps()).to_dict() == cfg.to_dict()
    assert cfg.to_dict()['scale_range'] == [0.5, 2.0]
    out = export_chips(cfg, tmp_path / 'chips', verbose=0)
    import kwcoco
    chips = kwcoco.CocoDataset(out['train'])
    sampler = CocoSampler.from_config(cfg)
    for img in chips.imgs.values():
        i = img['source']['pool_index']
        want = sampler.load_item(i, epoch=0)['im']       # export-chips reads epoch 0
        assert (img['height'], img['width']) == want.shape[:2]


# ----------------------------------------------------------------------------- random sizes
def _pool_centres(sampler):
    pos, neg = sampler.regions.pool_tables()
    return [(int(t['gid'][j]), float(t['cx'][j]), float(t['cy'][j]))
            for t in (pos, neg) for j in range(len(t['gid']))]


@pytest.mark.parametrize('mode', ['random', 'grid'])
def test_window_size_range_and_output_dims(mode):
    import math
    lo, hi, pad, out_hw = 24, 96, (3, 5), (40, 56)
    kw = dict(mode=mode, window_dims=(96, 100), pad=pad, seed=7, n_pos=8, n_neg=3)
    cfg = _config(window_size_range=[lo, hi], output_dims=list(out_hw), **kw)
    sampler = CocoSampler.from_config(cfg)
    centres = _pool_centres(sampler)
    assert centres == _pool_centres(CocoSampler.from_config(_config(**kw)))   # the same pools
    sides = set()
    for epoch in (0, 3):
        for i, (gid, cx, cy) in enumerate(centres):
            side = int(np.random.default_rng([7, epoch, i, 1]).integers(lo, hi + 1))
            sides.add(side)
            # the window rule, computed here: floor(c - d / 2), then the pad
            x0, y0 = math.floor(cx - side / 2), math.floor(cy - side / 2)
            px0, py0, px1, py1 = x0 - pad[1], y0 - pad[0], x0 + side + pad[1], y0 + side + pad[0]
            # inside the pool window of window_dims (the one pools and splits use)
            wx0, wy0 = math.floor(cx - 50), math.floor(cy - 48)
            assert wx0 <= x0 and x0 + side <= wx0 + 100 and wy0 <= y0 and y0 + side <= wy0 + 96
            sample = sampler.load_item(i, epoch=epoch)
            assert sample['im'].shape[:2] == out_hw
            assert sample['params']['sample_tlbr'].data.reshape(-1).tolist() == \
                [px0, py0, px1, py1]
            tf = sample['params']['tf_rel_to_abs']
            corners = tf @ np.array([[0, out_hw[1]], [0, out_hw[0]], [1, 1]], dtype=float)
            np.testing.assert_allclose(corners[:2].T, [[px0, py0], [px1, py1]], atol=1e-9)
            # annotations: dataset boxes moved to the window, then scaled to output_dims
            sx, sy = out_hw[1] / (px1 - px0), out_hw[0] / (py1 - py0)
            annots = sample['annots']
            for aid, rel in zip(annots['aids'], annots['rel_boxes'].to_ltrb().data):
                bx, by, bw, bh = sampler.dset.anns[int(aid)]['bbox']
                want = [(bx - px0) * sx, (by - py0) * sy, (bx + bw - px0) * sx,
                        (by + bh - py0) * sy]
                np.testing.assert_allclose(rel, want, atol=1e-6)
    assert len(sides) > 5
    # SampleDataset batches them with the default collate (one size)
    ds = SampleDataset(cfg)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate)))
    assert tuple(batch['image'].shape) == (4, 3) + out_hw
    p = int(ds[1]['target']['pool_index'])
    np.testing.assert_array_equal(
        (ds[1]['image'].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8),
        sampler.load_item(p, epoch=0)['im'])


def test_output_dims_alone_resamples_the_fixed_window():
    sampler = CocoSampler.from_config(_config(window_dims=(30, 50), output_dims=[64, 64]))
    plain = CocoSampler.from_config(_config(window_dims=(30, 50)))
    for i in range(3):
        a, b = sampler.load_item(i), plain.load_item(i)
        assert a['im'].shape[:2] == (64, 64)
        assert a['params']['sample_tlbr'].data.tolist() == b['params']['sample_tlbr'].data.tolist()
        np.testing.assert_allclose(a['params']['tf_rel_to_abs'][:2, :2],
                                   [[50 / 64, 0], [0, 30 / 64]], rtol=1e-12)


@pytest.mark.parametrize('data, key', [
    ({'window_size_range': [10, 300]}, 'window_size_range'),      # larger than window_dims
    ({'window_size_range': [10, 20], 'window_dims': None}, 'window_size_range'),
    ({'window_size_range': [10.5, 20]}, 'window_size_range'),
    ({'window_size_range': [20, 10]}, 'window_size_range'),
    ({'output_dims': [0, 10]}, 'output_dims'),
    ({'output_dims': [10]}, 'output_dims'),
    ({'output_dims': [64, 64], 'window_dims': 'square'}, 'output_dims'),
    ({'output_dims': [64, 64], 'scale': 2}, 'output_dims'),
    ({'output_dims': [64, 64], 'scale_range': [1, 2]}, 'output_dims')])
def test_random_size_bad_values_name_the_key(data, key):
    with pytest.raises((TypeError, ValueError), match=key):
        SamplingConfig.from_dict(data)


def test_export_chips_have_output_dims(tmp_path):
    import kwcoco
    from sampler_core.prepare import export_chips
    cfg = _config(window_dims=(64, 64), window_size_range=[16, 64], output_dims=[32, 48],
                  n_pos=4, n_neg=2)
    out = export_chips(cfg, tmp_path / 'chips', verbose=0)
    chips = kwcoco.CocoDataset(out['train'])
    sampler = CocoSampler.from_config(cfg)
    for img in chips.imgs.values():
        assert (img['height'], img['width']) == (32, 48)
        want = sampler.load_item(img['source']['pool_index'])['params']['sample_tlbr']
        assert img['source']['window'] == want.data.reshape(-1).tolist()


# ----------------------------------------------------------------------------- the README
def _readme_training_blocks() -> tuple[str, str]:
    """The YAML and the Python block of the README's "Train with it" section, as written."""
    readme = open(os.path.join(os.path.dirname(__file__), '..', 'README.md')).read()
    section = readme[readme.index('## Train with it'):]
    config = re.search(r'```yaml\n(.*?)```', section, re.S).group(1)
    code = re.search(r'```python\n(.*?)```', section, re.S).group(1)
    # run the loop body: check each batch where the README elides it with '...'
    code = code.replace('        ...\n',
                        "        assert batch['image'].shape[1:] == (3, 96, 96)\n")
    return config, code


def test_readme_training_example_works_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config, code = _readme_training_blocks()
    assert 'assert batch' in code
    (tmp_path / 'sampling.yaml').write_text(config + 'backend: null\n')
    scope = {}
    exec(compile(code, 'README', 'exec'), scope)
    train, val = scope['train'], scope['val']
    assert len(train) == 100 and train.epoch == 1
    assert len(val) == val.n_pool and not val.shuffle
    train_gids = {int(v) for v in train.sampler.regions.pool_tables()[0]['gid']}
    val_gids = {int(v) for v in val.sampler.regions.pool_tables()[0]['gid']}
    assert train_gids and val_gids and not train_gids & val_gids


def test_readme_video_example_works_as_written(tmp_path, monkeypatch):
    """The README's video config (the second YAML block of "Train with it") loads as written."""
    monkeypatch.chdir(tmp_path)
    readme = open(os.path.join(os.path.dirname(__file__), '..', 'README.md')).read()
    section = readme[readme.index('## Train with it'):readme.index('## Command line')]
    config = re.findall(r'```yaml\n(.*?)```', section, re.S)[1]
    assert 'time_steps: 3' in config
    (tmp_path / 'video.yaml').write_text(config + 'backend: null\n')
    from sampler_core.torch import SampleDataset
    train = SampleDataset('video.yaml', mode='train')
    item = train[0]
    assert tuple(item['image'].shape[:1]) == (3,)
    gids = [int(g) for g in item['target']['frame_gids']]
    dset = train.sampler.dset
    # the three frames are distinct frames of one video, sorted in time
    frames = [g for g in gids if g >= 0]
    assert len(set(frames)) == len(frames) >= 2
    vids = {dset.imgs[g]['video_id'] for g in frames}
    assert len(vids) == 1
    order = [dset.imgs[g]['frame_index'] for g in frames]
    assert order == sorted(order)
