"""SamplingConfig: validation, round trips, and rebuilding identical pools."""
import json
import subprocess
import sys

import numpy as np
import pytest

from sampler_core import CocoSampler, SamplingConfig
from sampler_core.config import CONFIG_VERSION


def _stream(sampler, n):
    """(target window, pixels, aids) of the first n pool items."""
    out = []
    for i in range(n):
        s = sampler.load_item(i)
        out.append((s['target']['gid'], s['target']['space_slice'], s['im'].copy(),
                    s['annots']['aids'].tolist()))
    return out


@pytest.mark.parametrize('suffix', ['.yaml', '.json'], ids=['yaml', 'json'])
def test_config_roundtrip_is_lossless(tmp_path, suffix):
    cfg = SamplingConfig(dataset='shapes8', window_dims=(48, 80), pad=(2, 3), pad_mode='reflect',
                         visible_thresh=0.25, with_annots=['boxes'], n_pos=5, n_neg=7,
                         categories=['star'], seed=3, backend=None)
    path = tmp_path / f'cfg{suffix}'
    cfg.dump(path)
    again = SamplingConfig.load(path)
    assert again.to_dict() == cfg.to_dict()
    assert again.window_dims == (48, 80)
    if suffix == '.json':
        assert json.loads(path.read_text())['version'] == CONFIG_VERSION
    else:
        assert f'version: {CONFIG_VERSION}' in path.read_text()


@pytest.mark.parametrize('data, exc, key', [
    ({'windw_dims': [1, 2]}, KeyError, 'windw_dims'),
    ({'window_dims': 'big'}, (TypeError, ValueError), 'window_dims'),
    ({'window_dims': [0, 5]}, ValueError, 'window_dims'),
    ({'window_dims': [1, 2, 3]}, ValueError, 'window_dims'),
    ({'pad': [-1, 0]}, ValueError, 'pad'),
    ({'visible_thresh': 1.5}, ValueError, 'visible_thresh'),
    ({'pad_mode': 'mirror'}, ValueError, 'pad_mode'),
    ({'n_pos': -3}, ValueError, 'n_pos'),
    ({'seed': 'abc'}, (TypeError, ValueError), 'seed'),
    ({'with_annots': ['boxes', 'masks']}, ValueError, 'with_annots'),
    ({'version': 99}, ValueError, 'version'),
    ({'window_dims': 'square', 'mode': 'grid'}, ValueError, 'window_dims'),
], ids=['unknown-key', 'wrong-type', 'zero-size', 'wrong-length', 'negative-pad',
        'thresh-range', 'pad-mode', 'negative-count', 'seed-type', 'annots-kind', 'newer-version',
        'square-grid'])
def test_config_bad_values_name_the_key(data, exc, key):
    with pytest.raises(exc) as info:
        SamplingConfig.from_dict({'version': 1, **data})
    assert key in str(info.value)


@pytest.mark.parametrize('suffix', ['.yaml', '.json'], ids=['yaml', 'json'])
def test_config_square_windows(shapes_path, tmp_path, suffix):
    """window_dims 'square': each positive's box widened to its larger side, square
    negatives; the config round-trips and rebuilds the same windows."""
    import math
    cfg = SamplingConfig(dataset=str(shapes_path), window_dims='square', n_pos=8, n_neg=8,
                         seed=2, backend=None)
    path = tmp_path / f'cfg{suffix}'
    cfg.dump(path)
    again = SamplingConfig.load(path)
    assert again.window_dims == 'square' and again.to_dict() == cfg.to_dict()
    sampler = CocoSampler.from_config(again)
    dset = sampler.dset
    n_pos, n_neg = sampler.regions.n_positives, sampler.regions.n_negatives
    assert (n_pos, n_neg) == (8, 8)
    for index in range(n_pos + n_neg):
        sample = sampler.load_item(index)
        t = sample['target']
        h, w = sample['im'].shape[:2]
        assert h == w, (index, sample['im'].shape)
        if index < n_pos:
            x, y, bw, bh = dset.anns[t['aid']]['bbox']
            assert h == max(math.ceil(bh), math.ceil(bw)), (index, h, bw, bh)
            assert t['aid'] in sample['annots']['aids'].tolist()
        # exact pixels: the window cut from the whole image (zero outside it)
        full = sampler.load_image(t['gid'])
        ys, xs = t['space_slice']
        want = np.zeros_like(sample['im'])
        y0, x0 = max(ys.start, 0), max(xs.start, 0)
        y1, x1 = min(ys.stop, full.shape[0]), min(xs.stop, full.shape[1])
        want[y0 - ys.start:y1 - ys.start, x0 - xs.start:x1 - xs.start] = full[y0:y1, x0:x1]
        np.testing.assert_array_equal(sample['im'], want)
    rebuilt = _stream(CocoSampler.from_config(cfg), 6)
    for (gid, sl, im, aids), (gid2, sl2, im2, aids2) in zip(_stream(sampler, 6), rebuilt):
        assert (gid, sl, aids) == (gid2, sl2, aids2)
        np.testing.assert_array_equal(im, im2)


def test_config_malformed_text_is_a_value_error():
    with pytest.raises(ValueError, match='YAML'):
        SamplingConfig.loads('window_dims: [1, 2\n')
    with pytest.raises(TypeError, match='mapping'):
        SamplingConfig.loads('- just\n- a list\n')


def test_config_missing_file():
    with pytest.raises(FileNotFoundError, match='nope.yaml'):
        SamplingConfig.load('nope.yaml')


def test_config_rebuilds_identical_pools(shapes_path, tmp_path):
    cfg = SamplingConfig(dataset=str(shapes_path), window_dims=(64, 64), n_pos=6, n_neg=6,
                         seed=7, backend=None)
    first = CocoSampler.from_config(cfg)
    exported = first.to_config()
    assert exported.dataset_hash is not None
    path = tmp_path / 'cfg.yaml'
    exported.dump(path)
    second = CocoSampler.from_config(path)
    a, b = _stream(first, 12), _stream(second, 12)
    for (ga, sa, ia, aa), (gb, sb, ib, ab) in zip(a, b):
        assert (ga, sa, aa) == (gb, sb, ab)
        assert np.array_equal(ia, ib)
    assert all(x[2].shape[:2] == (64, 64) for x in a)


def test_config_same_stream_in_another_process(shapes_path, tmp_path):
    cfg = SamplingConfig(dataset=str(shapes_path), window_dims=(32, 40), n_pos=4, n_neg=4,
                         seed=11, backend=None)
    path = tmp_path / 'cfg.json'
    CocoSampler.from_config(cfg).to_config().dump(path)
    code = (
        'import sys, json, sampler_core as s\n'
        'sp = s.CocoSampler.from_config(sys.argv[1])\n'
        'out = []\n'
        'for i in range(8):\n'
        '    x = sp.load_item(i)\n'
        '    out.append([x["target"]["gid"], x["target"]["space_slice"][0].start,\n'
        '                x["target"]["space_slice"][1].start, int(x["im"].sum()),\n'
        '                x["annots"]["aids"].tolist()])\n'
        'print(json.dumps(out))\n')
    res = subprocess.run([sys.executable, '-c', code, str(path)], capture_output=True,
                         text=True, check=True)
    theirs = json.loads(res.stdout.strip().splitlines()[-1])
    here = CocoSampler.from_config(path)
    mine = []
    for i in range(8):
        x = here.load_item(i)
        mine.append([x['target']['gid'], x['target']['space_slice'][0].start,
                     x['target']['space_slice'][1].start, int(x['im'].sum()),
                     x['annots']['aids'].tolist()])
    assert mine == theirs


def test_config_hash_mismatch(shapes_path, tmp_path):
    cfg = SamplingConfig(dataset=str(shapes_path), n_pos=2, n_neg=0, backend=None,
                         dataset_hash='0' * 40)
    with pytest.raises(ValueError, match='dataset_hash'):
        CocoSampler.from_config(cfg)
    with pytest.warns(UserWarning, match='dataset_hash'):
        sampler = CocoSampler.from_config(cfg, allow_hash_mismatch=True)
    assert sampler.regions.n_positives == 2


def test_config_category_filter(shapes_path):
    cfg = SamplingConfig(dataset=str(shapes_path), categories=['star'], n_neg=0, backend=None)
    sampler = CocoSampler.from_config(cfg)
    star = sampler.dset.name_to_cat['star']['id']
    cids = {sampler.regions.get_positive(i)['category_id'] for i in range(sampler.n_positives)}
    assert cids == {star}
    n_star = sum(1 for a in sampler.dset.anns.values() if a['category_id'] == star)
    assert sampler.n_positives == n_star
    with pytest.raises(KeyError, match='unicorn'):
        CocoSampler.from_config(SamplingConfig(dataset=str(shapes_path), categories=['unicorn']))
