"""``sampler-explorer prepare`` and ``export-chips`` (and their library functions)."""
import argparse
import json
import warnings

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


def _odd_dataset(tmp_path, zero_size: bool = False) -> str:
    """Two 64x64 images; image 1 has a NaN polygon (aid 1) and 5 keypoint numbers (aid 2)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    import synthetic
    dataset = synthetic.new_dataset_dict()
    for gid in (1, 2):
        synthetic.write_image(tmp_path / f'img{gid}.png',
                              synthetic.coordinate_image(64, 64, seed=gid))
        size = 0 if zero_size and gid == 2 else 64
        dataset['images'].append({'id': gid, 'file_name': f'img{gid}.png', 'width': size,
                                  'height': size})
    dataset['annotations'] += [
        {'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [10, 10, 20, 20],
         'segmentation': [[10, 10, float('nan'), 10, 30, 30, 10, 30]]},
        {'id': 2, 'image_id': 1, 'category_id': 2, 'bbox': [30, 30, 20, 20],
         'keypoints': [35, 35, 2, 40, 40]},
        {'id': 3, 'image_id': 2, 'category_id': 1, 'bbox': [5, 5, 10, 10],
         'segmentation': [[5, 5, 15, 5, 15, 15, 5, 15]]},
    ]
    dset = synthetic.build_coco(dataset, tmp_path)
    dset.dump(dset.fpath)
    return dset.fpath


def test_cli_export_chips_completes_with_odd_annotations(tmp_path, capsys):
    data = _odd_dataset(tmp_path)
    config = _config(tmp_path, data, window_dims=(64, 64), pad=(0, 0), n_pos=3, n_neg=1)
    with pytest.warns(UserWarning) as record:
        assert main(['export-chips', config, str(tmp_path / 'chips'), '--quiet']) == 0
    messages = [str(w.message) for w in record]
    assert sum(m.startswith('annotation 1: segmentation') for m in messages) == 1, messages
    assert sum(m.startswith('annotation 2: keypoints') for m in messages) == 1, messages
    chips = json.loads((tmp_path / 'chips' / 'train.kwcoco.json').read_text())
    by_source = {}
    for ann in chips['annotations']:
        by_source.setdefault(ann['source_aid'], []).append(ann)
    assert set(by_source) == {1, 2, 3}
    # the odd annotations keep their (whole, 20x20) boxes, without the odd geometry
    assert all(ann['bbox'][2:] == [20, 20] and 'segmentation' not in ann
               for ann in by_source[1])
    assert all(ann['bbox'][2:] == [20, 20] and 'keypoints' not in ann
               for ann in by_source[2])
    assert all(ann['segmentation'] for ann in by_source[3])


@pytest.mark.parametrize('mode', ['random', 'grid'])
def test_cli_zero_size_image_is_named(tmp_path, capsys, mode):
    data = _odd_dataset(tmp_path, zero_size=True)
    config = _config(tmp_path, data, window_dims=(32, 32), pad=(0, 0), n_pos=3, n_neg=1,
                     mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the odd annotations of image 1
        code = main(['export-chips', config, str(tmp_path / 'chips'), '--quiet'])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith('sampler-explorer: error: ') and err.count('\n') == 1, err
    assert 'image 2' in err or 'img2.png' in err, err
    assert 'Traceback' not in err


def _one_line_error(capsys, code) -> str:
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.startswith('sampler-explorer: error: ') and err.count('\n') == 1, err
    assert 'Traceback' not in out + err
    return err


@pytest.mark.parametrize('command', ['prepare', 'export-chips'])
def test_cli_config_that_is_a_folder_or_not_utf8_is_named(tmp_path, capsys, command):
    outdir = [str(tmp_path / 'chips')] if command == 'export-chips' else []
    folder = tmp_path / 'configs'
    folder.mkdir()
    err = _one_line_error(capsys, main([command, str(folder)] + outdir))
    assert str(folder) in err and 'folder' in err
    latin = tmp_path / 'latin1.yaml'
    latin.write_bytes('dataset: données.kwcoco.json\n'.encode('latin-1'))
    err = _one_line_error(capsys, main([command, str(latin)] + outdir))
    assert str(latin) in err and 'UTF-8' in err


def test_cli_export_chips_into_a_file_is_named(tmp_path, shapes_path, capsys):
    config = _config(tmp_path, shapes_path)
    afile = tmp_path / 'afile'
    afile.write_text('not a folder')
    err = _one_line_error(capsys, main(['export-chips', config, str(afile), '--quiet']))
    assert str(afile) in err and 'is a file' in err
    assert afile.read_text() == 'not a folder'


def test_cli_export_chips_asking_too_many_windows(tmp_path, shapes_path, capsys):
    config = _config(tmp_path, shapes_path, n_pos=10 ** 12, n_neg=10 ** 12)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        code = main(['export-chips', config, str(tmp_path / 'chips'), '--quiet'])
    err = _one_line_error(capsys, code)
    assert '1000000000000' in err.replace(',', '')
    assert not (tmp_path / 'chips' / 'train.kwcoco.json').exists()


def _full_disk_after(nbytes: int):
    """A write that stores ``nbytes`` then fails like a full disk (numpy's short write)."""
    import errno

    def write(file, data, *args, **kwargs):
        import io
        buf = io.BytesIO()
        REAL_WRITE_ARRAY(buf, data, *args, **kwargs)
        file.write(buf.getvalue()[:nbytes])
        file.flush()
        raise OSError(errno.ENOSPC, 'No space left on device')
    return write


REAL_WRITE_ARRAY = np.lib.format.write_array


def test_cli_prepare_on_a_full_disk_names_the_file_and_leaves_nothing(tmp_path, shapes_path,
                                                                      capsys, monkeypatch):
    config = _config(tmp_path, shapes_path)
    monkeypatch.setattr(np.lib.format, 'write_array', _full_disk_after(1000))
    err = _one_line_error(capsys, main(['prepare', config, '--quiet']))
    assert 'No space left on device' in err
    cache = tmp_path / 'work' / '_cache' / 'frames' / 'npy'
    assert str(cache) in err and '.npy' in err
    assert sorted(p.name for p in cache.iterdir()) == []  # no partial or temporary file


def test_cli_prepare_short_write_names_the_file(tmp_path, shapes_path, capsys, monkeypatch):
    """numpy's own message for a short write names no file and no errno."""
    config = _config(tmp_path, shapes_path)

    def short_write(file, data, *args, **kwargs):
        file.write(b'\x93NUMPY')
        raise OSError('2100000 requested and 1040256 written')
    monkeypatch.setattr(np.lib.format, 'write_array', short_write)
    err = _one_line_error(capsys, main(['prepare', config, '--quiet']))
    cache = tmp_path / 'work' / '_cache' / 'frames' / 'npy'
    assert str(cache) in err and '1040256 written' in err and 'disk full' in err
    assert list(cache.iterdir()) == []


def test_cli_export_chips_on_a_full_disk_names_the_chip(tmp_path, shapes_path, capsys,
                                                        monkeypatch):
    import errno

    import kwimage
    config = _config(tmp_path, shapes_path, backend=None)
    real = kwimage.imwrite
    written = []

    def imwrite(fpath, *args, **kwargs):
        if written:  # the second chip meets a full disk half-way
            with open(fpath, 'wb') as file:
                file.write(b'\x89PNG partial')
            raise OSError(errno.ENOSPC, 'No space left on device')
        written.append(fpath)
        return real(fpath, *args, **kwargs)
    monkeypatch.setattr(kwimage, 'imwrite', imwrite)
    outdir = tmp_path / 'chips'
    err = _one_line_error(capsys, main(['export-chips', config, str(outdir), '--quiet']))
    assert 'No space left on device' in err and str(outdir / 'train' / 'chip_') in err
    chips = sorted((outdir / 'train').iterdir())
    assert [str(p) for p in chips] == written  # the complete chip only, no partial one
    assert not (outdir / 'train.kwcoco.json').exists()


def test_cli_export_chips_dataset_write_failure_leaves_no_file(tmp_path, shapes_path, capsys,
                                                               monkeypatch):
    import errno
    from pathlib import Path
    config = _config(tmp_path, shapes_path, backend=None)
    real = Path.write_text

    def write_text(self, text, *args, **kwargs):
        if self.name.endswith('.tmp-' + str(__import__('os').getpid())):
            real(self, text[:100], *args, **kwargs)
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real(self, text, *args, **kwargs)
    monkeypatch.setattr(Path, 'write_text', write_text)
    outdir = tmp_path / 'chips'
    err = _one_line_error(capsys, main(['export-chips', config, str(outdir), '--quiet']))
    assert str(outdir / 'train.kwcoco.json') in err
    assert sorted(p.name for p in outdir.iterdir()) == ['train']  # no json, no temporary file
