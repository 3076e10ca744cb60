"""Bad input gives a clear error of the documented type, and the message names the bad value.

Documented types (docs/design.md, "Errors"): KeyError for unknown ids, ValueError for bad
values, FileNotFoundError for missing files, IndexError for pool indices, and
``MissingNegativePool`` (an AssertionError, as in ndsampler) for a negative asked for
before a negative pool exists. The command line turns such errors into one line on
stderr and exit status 2.
"""
from __future__ import annotations

import os
import re

import kwcoco
import numpy as np
import pytest
from PIL import Image

import sampler_core
from sampler_core import CocoSampler, MissingNegativePool

BACKENDS = [None, 'npy']
BACKEND_IDS = ['backend-none', 'backend-npy']


@pytest.fixture(scope='module')
def sampler():
    """A shapes8 sampler; tests here must not change its pools (see ``pooled``)."""
    return CocoSampler(kwcoco.CocoDataset.demo('shapes8'))


@pytest.fixture
def pooled():
    """A fresh shapes8 sampler whose pools tests may change."""
    return CocoSampler(kwcoco.CocoDataset.demo('shapes8'))


def _raises(exc_type, fn, *needles):
    """Call ``fn``; it must raise ``exc_type`` whose message contains every needle."""
    with pytest.raises(exc_type) as info:
        fn()
    message = info.value.args[0] if info.value.args else ''
    message = str(message)
    for needle in needles:
        assert needle in message, f'{needle!r} not in {message!r}'
    assert '\n' not in message.strip()  # one clear line
    return info.value


# --------------------------------------------------------------------------- targets
@pytest.mark.parametrize('target, needle', [
    ({'gid': 999}, '999'),
    ({'image_id': 12345}, '12345'),
    ({'gid': -3, 'cx': 5, 'cy': 5, 'width': 4, 'height': 4}, '-3'),
], ids=['gid', 'image_id-alias', 'gid-with-window'])
def test_errors_unknown_gid_is_key_error(sampler, target, needle):
    _raises(KeyError, lambda: sampler.load_sample(target), needle, 'image')


@pytest.mark.parametrize('target, needle', [
    ({'aid': 99999}, '99999'),
    ({'annot_id': 424242}, '424242'),
    ({'aid': 77777, 'window_dims': (16, 16)}, '77777'),
], ids=['aid', 'annot_id-alias', 'aid-with-window_dims'])
def test_errors_unknown_aid_is_key_error(sampler, target, needle):
    _raises(KeyError, lambda: sampler.load_sample(target), needle, 'annotation')


def test_errors_gid_conflicting_with_aid_is_value_error(sampler):
    ann = sampler.dset.anns[1]
    other = next(g for g in sampler.dset.imgs if g != ann['image_id'])
    _raises(ValueError, lambda: sampler.load_sample({'gid': other, 'aid': 1}),
            f'gid={other}', 'aid=1', str(ann['image_id']))


@pytest.mark.parametrize('window_dims, needle', [
    ((0, 5), '(0, 5)'),
    ((-1, 3), '(-1, 3)'),
    ((7, 0), '(7, 0)'),
    (0, '(0, 0)'),
], ids=['zero-height', 'negative-height', 'zero-width', 'zero-int'])
def test_errors_non_positive_window_dims_is_value_error(sampler, window_dims, needle):
    target = {'gid': 1, 'cx': 50, 'cy': 50, 'window_dims': window_dims}
    _raises(ValueError, lambda: sampler.load_sample(target), needle)


@pytest.mark.parametrize('slices, needle', [
    ((slice(5, 5), slice(0, 10)), 'slice(5, 5'),
    ((slice(0, 10), slice(9, 4)), 'slice(9, 4'),
    ((slice(-3, -8), slice(0, 10)), 'slice(-3, -8'),
], ids=['empty-rows', 'inverted-columns', 'inverted-negative'])
@pytest.mark.parametrize('key', ['slices', 'space_slice'])
def test_errors_slice_with_stop_not_after_start_is_value_error(sampler, slices, needle, key):
    _raises(ValueError, lambda: sampler.load_sample({'gid': 1, key: slices}), needle)


def test_errors_zero_size_extent_is_value_error(sampler):
    target = {'gid': 1, 'cx': 50, 'cy': 50, 'width': 0, 'height': 4}
    _raises(ValueError, lambda: sampler.load_sample(target), '(4, 0)')


def test_errors_unknown_window_dims_word_is_value_error(sampler):
    target = {'gid': 1, 'cx': 50, 'cy': 50, 'width': 4, 'height': 4, 'window_dims': 'huge'}
    _raises(ValueError, lambda: sampler.load_sample(target), "'huge'")


@pytest.mark.parametrize('padkw, needle', [
    ({'mode': 'bogus'}, "'bogus'"),
    ({'mode': 'Reflect'}, "'Reflect'"),
], ids=['bogus', 'wrong-case'])
def test_errors_unknown_pad_mode_is_value_error(sampler, padkw, needle):
    target = {'gid': 1, 'cx': 5, 'cy': 5, 'width': 20, 'height': 20, 'padkw': padkw}
    _raises(ValueError, lambda: sampler.load_sample(target), needle, 'pad mode')


@pytest.mark.parametrize('pad, needle', [
    ((-1, 2), '(-1, 2)'),
    (-3, '-3'),
    (((0, -2), (1, 1)), '-2'),
], ids=['pair', 'int', 'before-after'])
def test_errors_negative_pad_is_value_error(sampler, pad, needle):
    _raises(ValueError, lambda: sampler.load_sample({'gid': 1, 'pad': pad}), needle, 'pad')


def test_errors_negative_pad_keyword_is_value_error(sampler):
    _raises(ValueError, lambda: sampler.load_sample({'gid': 1}, pad=(2, -5)), '(2, -5)')


@pytest.mark.parametrize('thresh, needle', [
    (1.5, '1.5'), (-0.1, '-0.1'), (float('nan'), 'nan'), (2, '2'),
], ids=['above-one', 'negative', 'nan', 'int-two'])
def test_errors_bad_visible_thresh_is_value_error(sampler, thresh, needle):
    _raises(ValueError, lambda: sampler.load_sample({'gid': 1}, visible_thresh=thresh),
            needle, 'visible_thresh')


def test_errors_bad_visible_thresh_through_load_positive(sampler):
    _raises(ValueError, lambda: sampler.load_positive(0, visible_thresh=7.0), '7.0')


@pytest.mark.parametrize('with_annots, needle', [
    (['boxes', 'masks'], 'masks'),
    ('boxes+polys', 'polys'),
    (['keypoint'], 'keypoint'),
], ids=['list', 'plus-string', 'singular-typo'])
def test_errors_unknown_with_annots_kind_is_value_error(sampler, with_annots, needle):
    _raises(ValueError, lambda: sampler.load_sample({'gid': 1}, with_annots=with_annots),
            needle, 'with_annots')


# --------------------------------------------------------------------------- pools
@pytest.mark.parametrize('call, needle', [
    (lambda s: s.regions.get_positive(-1), '-1'),
    (lambda s: s.regions.get_positive(-5), '-5'),
    (lambda s: s.regions.get_negative(-1), '-1'),
    (lambda s: s.regions.get_item(-2), '-2'),
    (lambda s: s.load_positive(-1), '-1'),
    (lambda s: s.load_negative(-1), '-1'),
    (lambda s: s.load_item(-1), '-1'),
], ids=['get_positive', 'get_positive-5', 'get_negative', 'get_item', 'load_positive',
        'load_negative', 'load_item'])
def test_errors_negative_pool_index_is_index_error(pooled, call, needle):
    pooled.regions.preselect(n_neg=3, window_dims=(32, 32), rng=0)
    _raises(IndexError, lambda: call(pooled), needle)


@pytest.mark.parametrize('call, needle', [
    (lambda s: s.regions.get_positive(10 ** 6), '1000000'),
    (lambda s: s.regions.get_negative(3), '3'),
    (lambda s: s.load_positive(71), '71'),
], ids=['positive', 'negative', 'load_positive'])
def test_errors_pool_index_past_the_end_is_index_error(pooled, call, needle):
    pooled.regions.preselect(n_neg=3, window_dims=(32, 32), rng=0)
    assert pooled.n_positives == 71
    _raises(IndexError, lambda: call(pooled), needle)


@pytest.mark.parametrize('call', [
    lambda s: s.regions.get_negative(0),
    lambda s: s.load_negative(2),
    lambda s: s.load_item(s.n_positives),
], ids=['get_negative', 'load_negative', 'load_item-past-positives'])
def test_errors_negative_before_preselect_is_missing_negative_pool(pooled, call):
    error = _raises(MissingNegativePool, lambda: call(pooled), 'preselect')
    assert isinstance(error, AssertionError)  # ndsampler's base class
    assert re.search(r'index=\d+', str(error))


def test_errors_n_neg_with_neg_to_pos_ratio_is_value_error(pooled):
    _raises(ValueError, lambda: pooled.regions.preselect(n_neg=3, neg_to_pos_ratio=1.5),
            'n_neg=3', 'neg_to_pos_ratio=1.5')
    assert pooled.regions.n_negatives == 0  # nothing was half-done


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize('make', [
    lambda p: CocoSampler.coerce(p),
    lambda p: CocoSampler.coerce(os.fspath(p)),
    lambda p: CocoSampler(p),
    lambda p: CocoSampler(os.fspath(p), backend='npy'),
], ids=['coerce-path', 'coerce-str', 'init-path', 'init-str-npy'])
def test_errors_missing_dataset_file_is_file_not_found(tmp_path, make):
    missing = tmp_path / 'nowhere' / 'data.kwcoco.json'
    _raises(FileNotFoundError, lambda: make(missing), os.fspath(missing))


def _dataset_with_image(tmp_path, write_image, with_size=True):
    dset = kwcoco.CocoDataset()
    dset.fpath = os.fspath(tmp_path / 'data.kwcoco.json')
    fpath = tmp_path / 'images' / 'broken.png'
    fpath.parent.mkdir()
    write_image(fpath)
    size = {'width': 40, 'height': 30} if with_size else {}
    dset.add_image(file_name=os.fspath(fpath), **size)
    dset.add_category('thing')
    dset.add_annotation(image_id=1, category_id=1, bbox=[1, 2, 5, 6])
    return dset, fpath


def _no_file(fpath):
    pass


def _garbage(fpath):
    fpath.write_bytes(os.urandom(64) + b'this is not an image' * 50)


def _truncated_png(fpath):
    Image.fromarray(np.full((30, 40, 3), 7, np.uint8)).save(fpath)
    data = fpath.read_bytes()
    fpath.write_bytes(data[:40])


@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
def test_errors_missing_image_file_is_file_not_found_naming_it(tmp_path, backend):
    dset, fpath = _dataset_with_image(tmp_path, _no_file)
    sampler = CocoSampler(dset, backend=backend, workdir=tmp_path / 'work')
    _raises(FileNotFoundError, lambda: sampler.load_sample({'gid': 1}), os.fspath(fpath))
    _raises(FileNotFoundError, lambda: sampler.load_positive(0), os.fspath(fpath))
    _raises(FileNotFoundError, lambda: sampler.load_image(1), os.fspath(fpath))


def test_errors_missing_image_file_without_size_fails_at_construction(tmp_path):
    dset, fpath = _dataset_with_image(tmp_path, _no_file, with_size=False)
    _raises(FileNotFoundError, lambda: CocoSampler(dset), os.fspath(fpath))


@pytest.mark.parametrize('write', [_garbage, _truncated_png], ids=['garbage', 'truncated-png'])
@pytest.mark.parametrize('backend', BACKENDS, ids=BACKEND_IDS)
def test_errors_unreadable_image_file_is_value_error_naming_it(tmp_path, backend, write):
    dset, fpath = _dataset_with_image(tmp_path, write)
    sampler = CocoSampler(dset, backend=backend, workdir=tmp_path / 'work')
    _raises(ValueError, lambda: sampler.load_sample({'gid': 1}), os.fspath(fpath))
    if backend == 'npy':
        _raises(ValueError, lambda: sampler.frames.prepare(verbose=0), os.fspath(fpath))
        leftover = list(sampler.frames.cache_dpath.glob('*'))
        assert leftover == []  # nothing half-built is left in the cache


def test_errors_unreadable_image_without_size_fails_at_construction(tmp_path):
    dset, fpath = _dataset_with_image(tmp_path, _garbage, with_size=False)
    _raises(ValueError, lambda: CocoSampler(dset), os.fspath(fpath))


# --------------------------------------------------------------------------- command line
def test_errors_cli_missing_dataset_prints_one_line_and_returns_2(capsys):
    from app.cli import main
    assert main(['preview', 'does-not-exist.json']) == 2
    out, err = capsys.readouterr()
    assert out == ''
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith('sampler-explorer: error:')
    assert 'does-not-exist.json' in lines[0]
    assert 'Traceback' not in err


def test_errors_cli_bad_window_prints_one_line_and_returns_2(capsys, tmp_path):
    from app.cli import main
    assert main(['preview', '--window', '0', '64', '--out', os.fspath(tmp_path / 'x.png')]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and '(0, 64)' in lines[0], err
    assert not (tmp_path / 'x.png').exists()


def test_errors_cli_preview_writes_plausible_png(capsys, tmp_path):
    from app.cli import main
    out_path = tmp_path / 'p.png'
    assert main(['preview', '--out', os.fspath(out_path)]) == 0
    out, err = capsys.readouterr()
    assert os.fspath(out_path) in out and 'error' not in err.lower()
    assert out_path.stat().st_size > 10_000
    with Image.open(out_path) as image:
        assert image.format == 'PNG'
        width, height = image.size
        pixels = np.asarray(image.convert('RGB'))
    # 8 positives + 8 negatives, 160 px thumbnails with 4 px gaps, in a grid
    assert 160 <= width <= 16 * 164 and 160 <= height <= 16 * 164
    assert width * height >= 16 * 160 * 160
    assert pixels.std() > 10  # not a blank canvas
    # the green (positive) and red (negative) frames are drawn
    assert (np.all(pixels == (0, 200, 0), axis=-1)).sum() > 1000
    assert (np.all(pixels == (220, 0, 0), axis=-1)).sum() > 1000


def test_errors_package_exports_missing_negative_pool():
    assert sampler_core.MissingNegativePool is MissingNegativePool
    assert issubclass(MissingNegativePool, AssertionError)
