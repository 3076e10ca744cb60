"""``sampler-explorer prepare`` and ``export-chips`` (and their library functions)."""
import argparse
import json

import numpy as np
import pytest

from app.cli import build_parser, main
from sampler_core import CocoSampler, SamplingConfig
from sampler_core.frames import CocoFrames, open_npy, read_image


def _config(tmp_path, shapes_path, **kw):
    fields = dict(dataset=shapes_path, backend='npy', workdir=str(tmp_path / 'work'),
                  window_dims=(48, 64), pad=(4, 2), n_pos=5, n_neg=3, seed=2)
    fields.update(kw)
    path = tmp_path / 'config.yaml'
    SamplingConfig(**fields).dump(path)
    return str(path)


def _check_cache(config_path):
    cfg = SamplingConfig.load(config_path)
    sampler = CocoSampler.from_config(cfg)
    frames = CocoFrames(sampler.dset, workdir=cfg.workdir, backend='npy')
    for gid in frames.image_ids:
        data = open_npy(frames._cache_fpath(gid), frames._lookup_hw(gid))
        assert data is not None, gid
        assert np.array_equal(np.asarray(data), read_image(frames._lookup_gpath(gid)))


def test_cli_every_flag_has_help(capsys):
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ('prepare', 'export-chips'):
        sub = subparsers.choices[name]
        for action in sub._actions:
            assert action.help, f'{name} {action.option_strings or action.dest} has no help'
        with pytest.raises(SystemExit) as info:
            main([name, '--help'])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert 'usage: sampler-explorer ' + name in out


def test_cli_prepare_builds_the_cache(tmp_path, shapes_path, capsys):
    config = _config(tmp_path, shapes_path)
    assert main(['prepare', config, '--workers', '2']) == 0
    out = capsys.readouterr().out
    assert 'prepared 8 images' in out and '8 built' in out
    _check_cache(config)
    assert main(['prepare', config, '--quiet']) == 0
    assert '8 already cached' in capsys.readouterr().out


def test_cli_prepare_on_a_dask_cluster(tmp_path, shapes_path, capsys):
    distributed = pytest.importorskip('distributed')
    config = _config(tmp_path, shapes_path)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        assert main(['prepare', config, '--scheduler', cluster.scheduler_address]) == 0
    assert '8 built' in capsys.readouterr().out
    _check_cache(config)


def test_cli_prepare_errors(tmp_path, shapes_path, capsys):
    config = _config(tmp_path, shapes_path, backend=None)
    assert main(['prepare', config]) == 2
    assert 'backend' in capsys.readouterr().err
    assert main(['prepare', str(tmp_path / 'missing.yaml')]) == 2
    assert 'missing.yaml' in capsys.readouterr().err
    changed = _config(tmp_path, shapes_path, dataset_hash='0' * 40)
    assert main(['prepare', changed]) == 2
    assert 'dataset_hash' in capsys.readouterr().err
    with pytest.warns(UserWarning, match='dataset_hash'):
        assert main(['prepare', changed, '--allow-hash-mismatch', '--quiet']) == 0


def test_cli_export_chips_writes_a_kwcoco_dataset(tmp_path, shapes_path, capsys):
    import kwcoco
    config = _config(tmp_path, shapes_path, split_by='image', val_fraction=0.25)
    outdir = tmp_path / 'chips'
    assert main(['export-chips', config, str(outdir), '--workers', '2']) == 0
    out = capsys.readouterr().out
    assert 'train' in out and 'val' in out
    for subset in ('train', 'val'):
        chips = kwcoco.CocoDataset(str(outdir / f'{subset}.kwcoco.json'))
        sampler = CocoSampler.from_config(config, subset=subset)
        assert chips.n_images == sampler.n_samples > 0
        for gid, img in chips.imgs.items():
            index = img['source']['pool_index']
            sample = sampler.load_item(index, target={'clip_annots': True})
            assert np.array_equal(read_image(chips.get_image_fpath(gid)), sample['im'])
            assert (img['height'], img['width']) == sample['im'].shape[:2] == (56, 68)
            dets = sample['annots']['clipped_dets'][0]
            anns = chips.annots(gid=gid)
            assert sorted(anns.lookup('source_aid')) == sorted(dets.data['aids'].tolist())
            for ann in anns.objs:
                x, y, w, h = ann['bbox']
                assert 0 <= x and 0 <= y and x + w <= 68 and y + h <= 56
            # provenance: the window in source pixels
            x0, y0, x1, y1 = img['source']['window']
            assert (x1 - x0, y1 - y0) == (68, 56)
            assert img['source']['gid'] == sample['target']['gid']
        # the export validates as a kwcoco dataset and is trainable with this library
        again = CocoSampler(str(outdir / f'{subset}.kwcoco.json'), backend=None)
        assert again.load_image(1).shape == (56, 68, 3)
    # refuse to overwrite unless asked
    assert main(['export-chips', config, str(outdir), '--quiet']) == 2
    assert 'overwrite' in capsys.readouterr().err
    assert main(['export-chips', config, str(outdir), '--quiet', '--overwrite',
                 '--subset', 'val']) == 0
    info = json.loads((outdir / 'val.kwcoco.json').read_text())['info'][0]
    assert info['subset'] == 'val' and info['config']['split_by'] == 'image'
