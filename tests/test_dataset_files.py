"""Dataset files that are not quite COCO: clear errors or sensible defaults."""
import json

import numpy as np
import pytest
from PIL import Image

from sampler_core import CocoSampler


def test_dataset_json_without_images_is_refused(tmp_path):
    path = tmp_path / 'params.json'
    path.write_text(json.dumps({'seed': 1}))
    with pytest.raises(ValueError, match='params.json.*images'):
        CocoSampler(path)


def test_dataset_without_categories_or_annotations_is_empty_not_broken(tmp_path):
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8)).save(tmp_path / 'a.png')
    path = tmp_path / 'bare.kwcoco.json'
    path.write_text(json.dumps({'images': [{'id': 1, 'file_name': 'a.png'}]}))
    sampler = CocoSampler(path, backend=None)
    assert (sampler.n_annots, sampler.n_categories, sampler.n_positives) == (0, 0, 0)
    sample = sampler.load_sample({'gid': 1, 'slices': (slice(1, 4), slice(2, 6))})
    expect = np.arange(48, dtype=np.uint8).reshape(6, 8)[1:4, 2:6, None]
    assert np.array_equal(sample['im'], expect)
    assert sample['annots']['aids'].tolist() == []
    n_pos, n_neg = sampler.regions.preselect(n_neg=3, window_dims=(2, 2), rng=0)
    assert (n_pos, n_neg) == (0, 3)


def test_target_with_slices_and_nan_centre_is_refused():
    sampler = CocoSampler.demo('shapes8')
    with pytest.raises(ValueError, match="'cy'"):
        sampler.load_sample({'gid': 1, 'slices': (slice(0, 4), slice(0, 4)), 'cy': float('nan')})
    sample = sampler.load_sample({'gid': 1, 'slices': (slice(2, 6), slice(3, 9)), 'cx': 5, 'cy': 4})
    assert (sample['target']['rel_cx'], sample['target']['rel_cy']) == (2.0, 2.0)
