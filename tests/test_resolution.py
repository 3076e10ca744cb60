"""Config ``resolution``: each image read at ``its resolution / resolution`` scale.

A synthetic image whose left part is one value and right part another shows the
direction of the scale (a 4 m image read at 1 m is 4 times larger) and where the
edge lands; sizes and ``tf_rel_to_abs`` are checked against the arithmetic, the
errors for their wording.
"""
from __future__ import annotations

import math

import kwcoco
import kwimage
import numpy as np
import pytest

from sampler_core import CocoSampler, SamplingConfig
from sampler_core.resolution import parse_resolution, resolution_scale

#: columns x < EDGE hold LEFT, the others RIGHT
EDGE, LEFT, RIGHT = 60, 10, 200


def _dataset(tmp_path, resolutions) -> kwcoco.CocoDataset:
    """Images of 100 x 120 pixels, one annotation each; ``resolutions[i]`` (None: absent)."""
    dset = kwcoco.CocoDataset()
    dset.fpath = str(tmp_path / 'data.kwcoco.json')
    cid = dset.add_category('thing')
    im = np.full((100, 120, 3), RIGHT, np.uint8)
    im[:, :EDGE] = LEFT
    for i, res in enumerate(resolutions):
        fpath = tmp_path / f'img_{i}.png'
        kwimage.imwrite(str(fpath), im)
        img = {'file_name': fpath.name, 'width': 120, 'height': 100, 'name': f'scene_{i}'}
        if res is not None:
            img['resolution'] = res
        gid = dset.add_image(**img)
        dset.add_annotation(image_id=gid, category_id=cid, bbox=[50, 40, 20, 20])
    dset.dump(dset.fpath)
    return dset


def test_parse_resolution():
    assert parse_resolution('0.5 GSD') == (0.5, 'm')
    assert parse_resolution('0.5 mpp') == parse_resolution('0.5meters') == (0.5, 'm')
    assert parse_resolution(3) == (3.0, None)
    assert parse_resolution('2 puppies') == (2.0, 'puppies')
    for bad in ('fast', '-1 GSD', '0 mpp', 'nan GSD', float('inf'), -2):
        with pytest.raises(ValueError, match='resolution'):
            parse_resolution(bad)
    for bad in (True, [1], None):
        with pytest.raises(TypeError, match='resolution'):
            parse_resolution(bad)


def test_config_resolution_field():
    cfg = SamplingConfig(resolution=' 0.5 GSD ')
    assert cfg.resolution == '0.5 GSD'
    assert SamplingConfig.loads(cfg.dumps()).resolution == '0.5 GSD'
    assert SamplingConfig.loads('resolution: 2\n').resolution == 2.0
    assert SamplingConfig.loads('version: 1\n').resolution is None
    assert SamplingConfig.change_role(['resolution']) == 'read'
    with pytest.raises(ValueError, match="'fast'"):
        SamplingConfig(resolution='fast')
    with pytest.raises(TypeError, match='resolution'):
        SamplingConfig(resolution=True)
    with pytest.raises(ValueError, match='"resolution" and "scale" are exclusive'):
        SamplingConfig(resolution=1, scale=0.5)
    with pytest.raises(ValueError, match='"resolution" and "output_dims" are exclusive'):
        SamplingConfig(resolution=1, output_dims=(32, 32))


@pytest.mark.parametrize('have, want, scale', [
    ('4 meters', '1 GSD', 4.0), ('2 GSD', '4 mpp', 0.5), (3, '1.5 GSD', 2.0),
    ('1 meter', 0.25, 4.0)])
def test_scale_is_image_resolution_over_wanted(tmp_path, have, want, scale):
    dset = _dataset(tmp_path, [have])
    assert resolution_scale(dset, 1, want) == (scale, scale)
    sampler = CocoSampler(dset, backend=None)
    sampler.apply_config(SamplingConfig(dataset=dset.fpath, backend=None, window_dims=(16, 24),
                                        n_pos=1, n_neg=0, resolution=want))
    sample = sampler.load_item(0)
    assert sample['im'].shape[:2] == (math.ceil(16 * scale), math.ceil(24 * scale))
    tf = np.asarray(sample['params']['tf_rel_to_abs'])
    np.testing.assert_allclose(np.diag(tf)[:2], [1 / scale, 1 / scale])


def test_pixels_of_a_known_image(tmp_path):
    """A 4 m image read at 1 m: every window pixel is 4 x 4 output pixels, so the left
    part stays LEFT, the right RIGHT, and the edge lands 4 times further from the
    window's left side. (The outer 2 output pixels are left out: the scaled read
    interpolates them with the pad, as any ``scale`` > 1 does.)"""
    dset = _dataset(tmp_path, ['4 meters', '1 meters'])
    sampler = CocoSampler(dset, backend=None)
    sampler.apply_config(SamplingConfig(dataset=dset.fpath, backend=None, window_dims=(16, 16),
                                        n_pos=2, n_neg=0, resolution='1 GSD'))
    item = next(i for i in range(2) if sampler.regions.get_item(i)['gid'] == 1)
    inside = sampler.load_item(item, target={'cx': 20.0, 'cy': 50.0})   # x 12..28: all LEFT
    assert inside['im'].shape == (64, 64, 3)
    assert (inside['im'][2:-2, 2:-2] == LEFT).all()
    across = sampler.load_item(item, target={'cx': 60.0, 'cy': 50.0})   # x 52..68
    im = across['im'][2:-2, 2:-2, 0].astype(int)
    edge = (EDGE - 52) * 4 - 2                                          # 32, less the border
    assert (im[:, :edge - 2] == LEFT).all() and (im[:, edge + 2:] == RIGHT).all()
    assert (np.diff(im, axis=1) >= 0).all() and (im[:, edge - 1] < im[:, edge + 1]).all()
    other = next(i for i in range(2) if sampler.regions.get_item(i)['gid'] == 2)
    same = sampler.load_item(other, target={'cx': 60.0, 'cy': 50.0})   # 1 m at 1 m: a crop
    expect = np.full((16, 16, 3), RIGHT, np.uint8)
    expect[:, :EDGE - 52] = LEFT
    np.testing.assert_array_equal(same['im'], expect)


def test_resolution_times_scale_range(tmp_path):
    dset = _dataset(tmp_path, ['2 meters'])
    cfg = SamplingConfig(dataset=dset.fpath, backend=None, window_dims=(16, 16), n_pos=1,
                         n_neg=0, resolution='1 GSD', scale_range=(0.5, 1.0), seed=4)
    sampler = CocoSampler(dset, backend=None)
    sampler.apply_config(cfg)
    for epoch in range(3):
        factor = cfg.item_target(0, epoch)['scale']
        sample = sampler.load_item(0, epoch=epoch)
        assert sample['target']['scale'] == (2.0 * factor, 2.0 * factor)
        assert sample['im'].shape[:2] == (math.ceil(16 * 2.0 * factor),) * 2


def test_missing_resolution_names_the_image(tmp_path):
    dset = _dataset(tmp_path, ['1 GSD', None, '1 GSD'])
    cfg = SamplingConfig(dataset=dset.fpath, backend=None, n_pos=1, n_neg=0, resolution=0.5)
    with pytest.raises(ValueError, match=r"image 2 \('scene_1'\) has no \"resolution\""):
        CocoSampler.from_config(cfg)
    with pytest.raises(ValueError, match=r"image 2 \('scene_1'\)"):
        CocoSampler(dset, backend=None).apply_config(cfg)


def test_other_units_are_refused(tmp_path):
    dset = _dataset(tmp_path, ['2 puppies'])
    with pytest.raises(ValueError, match=r"image 1 \('scene_0'\) has its resolution in "
                                         r"'puppies' but resolution='1 GSD' asks for 'm'"):
        resolution_scale(dset, 1, '1 GSD')
    assert resolution_scale(dset, 1, '1 puppies') == (2.0, 2.0)
    assert resolution_scale(dset, 1, 4) == (0.5, 0.5)


def test_video_resolution_reaches_time_items_and_frames():
    dset = kwcoco.CocoDataset.demo('vidshapes1', num_frames=3, image_size=(64, 64))
    dset.index.videos[1]['resolution'] = '2 meters'
    sampler = CocoSampler(dset, backend=None)
    cfg = dict(dataset='vidshapes1', backend=None, window_dims=(16, 16), n_pos=2, n_neg=0,
               resolution='1 GSD')
    sampler.apply_config(SamplingConfig(**cfg, time_steps=2))
    sample = sampler.load_item(0)
    assert sample['im'].shape == (2, 32, 32, 3)
    sampler.apply_config(SamplingConfig(**cfg))
    assert sampler.load_item(0)['im'].shape == (32, 32, 3)


@pytest.mark.parametrize('value', ['0.5 GSD', 2.0, '12'], ids=['text', 'number', 'digits'])
def test_explorer_link_and_export_keep_the_resolution(tmp_path, value):
    """The explorer's resolution reaches the URL, the export and the samples read."""
    from panel.io.location import Location

    from app.link import link_location
    from app.state import ExplorerState
    from app.sidebar import _parse_resolution, _resolution_text
    dset = _dataset(tmp_path, ['1 GSD', '2 GSD'])
    state = ExplorerState(dataset=dset.fpath, roots=[str(tmp_path)], backend=None,
                          window_dims=(16, 16), n_pos=2, n_neg=0)
    location = Location()
    link_location(location, state)
    state.resolution = _parse_resolution(_resolution_text(value))
    assert state.message is None, state.message
    fresh = ExplorerState(dataset=dset.fpath, roots=[str(tmp_path)], backend=None)
    link_location(Location(search=location.search), fresh)
    assert fresh.message is None, fresh.message
    assert fresh.resolution == state.resolution
    cfg = SamplingConfig.loads(state.export_yaml())
    assert cfg.resolution == state.resolution
    want = parse_resolution(state.resolution)[0]
    rebuilt = CocoSampler.from_config(cfg)
    for i in range(rebuilt.n_samples):
        gid = rebuilt.regions.get_item(i)['gid']
        have = {1: 1.0, 2: 2.0}[gid]
        side = math.ceil(16 * have / want)
        assert state.sampler.load_item(i)['im'].shape[:2] == (side, side)
        assert rebuilt.load_item(i)['im'].shape[:2] == (side, side)


def test_explorer_refuses_resolution_on_images_without_one(tmp_path):
    from app.state import ExplorerState
    dset = _dataset(tmp_path, ['1 GSD', None])
    state = ExplorerState(dataset=dset.fpath, roots=[str(tmp_path)], backend=None)
    state.resolution = '1 GSD'
    assert state.resolution is None
    assert "image 2 ('scene_1') has no \"resolution\"" in state.message['text']


def test_explorer_click_reads_at_the_resolution(tmp_path):
    from app import views
    dset = _dataset(tmp_path, ['2 GSD'])
    sampler = CocoSampler(dset, backend=None)
    cfg = SamplingConfig(dataset=dset.fpath, backend=None, window_dims=(16, 24),
                         resolution='1 GSD')
    sample = views.detail_sample(sampler, cfg, 1, 60.0, 50.0)
    assert sample['im'].shape == (32, 48, 3)
