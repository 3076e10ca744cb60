"""DynamicToySampler: deterministic on-the-fly toy windows with the sampler API."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import sampler_core
from sampler_core import DynamicToySampler

pytestmark = [
    pytest.mark.filterwarnings('ignore::FutureWarning'),
    pytest.mark.filterwarnings('ignore::DeprecationWarning'),
]


def same_sample(a: dict, b: dict) -> bool:
    return (a['im'].shape == b['im'].shape and bool((a['im'] == b['im']).all())
            and a['annots']['aids'].tolist() == b['annots']['aids'].tolist()
            and np.array_equal(a['annots']['rel_cxywh'], b['annots']['rel_cxywh'])
            and a['annots']['cids'].tolist() == b['annots']['cids'].tolist())


def test_toydata_is_exported_like_ndsampler():
    assert sampler_core.DynamicToySampler is DynamicToySampler
    assert issubclass(DynamicToySampler, sampler_core.AbstractSampler)


def test_toydata_same_seed_same_items_in_any_order():
    a = DynamicToySampler(20, seed=7, gsize=(64, 64))
    b = DynamicToySampler(20, seed=7, gsize=(64, 64))
    forward = [a.load_item(i) for i in [0, 5, 25, 39]]
    backward = [b.load_item(i) for i in [39, 25, 5, 0]][::-1]
    for x, y in zip(forward, backward):
        assert same_sample(x, y)
    other = DynamicToySampler(20, seed=8, gsize=(64, 64)).load_item(0)
    assert not same_sample(forward[0], other)
    # the index-free stream is seeded too
    s1 = [DynamicToySampler(20, seed=1).load_positive(window_dims=(32, 32)) for _ in range(1)]
    c, d = DynamicToySampler(20, seed=1), DynamicToySampler(20, seed=1)
    seq_c = [c.load_positive(window_dims=(32, 32))['target']['gid'] for _ in range(5)]
    seq_d = [d.load_positive(window_dims=(32, 32))['target']['gid'] for _ in range(5)]
    assert seq_c == seq_d and seq_c[0] == s1[0]['target']['gid']
    # an explicit rng draws the index, and the item stays reproducible through it
    r1 = c.load_negative(rng=np.random.RandomState(3))
    r2 = d.load_negative(rng=3)
    assert same_sample(r1, r2)
    assert same_sample(r1, c.load_sample(r1['target']))


def test_toydata_positive_annotations():
    self = DynamicToySampler(30, seed=0, gsize=(96, 96))
    for index in range(30):
        sample = self.load_positive(index, window_dims=(48, 64), pad=(4, 6))
        im, annots, target = sample['im'], sample['annots'], sample['target']
        assert im.shape == (56, 76, 3) and im.dtype == np.uint8
        n = len(annots['aids'])
        assert n >= 1
        assert annots['rel_cxywh'].shape == (n, 4)
        np.testing.assert_allclose(annots['rel_cxywh'], annots['rel_boxes'].to_cxywh().data)
        assert len(annots['rel_ssegs']) == n and len(annots['rel_kpts']) == n
        assert annots['frame_dets'][0].boxes.data.shape == (n, 4)
        ltrb = annots['rel_boxes'].to_ltrb().data
        # the target is the first object; rel_cx / rel_cy is its centre
        assert target['aid'] == 1 and target['annot_idx'] == 0
        assert ltrb[0, 0] <= target['rel_cx'] <= ltrb[0, 2]
        assert ltrb[0, 1] <= target['rel_cy'] <= ltrb[0, 3]
        assert target['category_id'] == annots['cids'][0]
        assert target['category_id'] in self.class_ids and target['category_id'] != 0
        assert (ltrb[:, :2] >= 0).all() and (ltrb[:, 2] <= 76).all() and (ltrb[:, 3] <= 56).all()
        # the centre object's pixels differ from the noise around it
        assert target['gid'] == index


def test_toydata_negatives_have_no_object_at_the_centre():
    self = DynamicToySampler(40, seed=2, gsize=(64, 64))
    for index in range(40):
        sample = self.load_negative(index)
        assert sample['target']['aid'] == -1
        assert sample['target']['category_id'] == self.BACKGROUND_CLASS_ID == 0
        assert sample['target']['gid'] == 40 + index
        ltrb = sample['annots']['rel_boxes'].to_ltrb().data
        inside = ((ltrb[:, 0] <= 32) & (32 < ltrb[:, 2]) & (ltrb[:, 1] <= 32) & (32 < ltrb[:, 3]))
        assert not inside.any()


def test_toydata_pools_and_counts():
    self = DynamicToySampler(1e1, seed=0, gsize=(32, 48))
    assert (self.n_positives, len(self), self.n_images, self.n_annots) == (10, 20, 20, 10)
    assert self.class_ids[0] == 0 and len(self.class_ids) == self.n_categories == 4
    assert self.lookup_class_name(self.lookup_class_id('star')) == 'star'
    assert self.load_item(3)['target']['aid'] == 1
    assert self.load_item(13)['target']['aid'] == -1
    assert self.load_item(0)['im'].shape == (48, 32, 3)  # gsize is (w, h)
    with pytest.raises(IndexError):
        self.load_item(20)
    with pytest.raises(IndexError):
        self.load_positive(10)
    assert self.preselect(n_pos=4, n_neg=2, window_dims=(16, 24)) == (4, 2)
    assert len(self) == 6 and self.load_item(5)['target']['gid'] == 5
    assert self.load_item(0)['im'].shape == (16, 24, 3)
    assert self.preselect(neg_to_pos_ratio=1.5) == (4, 6)
    with pytest.raises(ValueError):
        self.preselect(n_neg=1, neg_to_pos_ratio=1.0)
    with pytest.raises(ValueError):
        DynamicToySampler(-1)
    with pytest.raises(ValueError):
        DynamicToySampler(5, seed='abc')


def test_toydata_full_images_with_annotations():
    self = DynamicToySampler(5, seed=4, gsize=(80, 60))
    img, anns = self.load_image_with_annots(3)
    again, anns2 = DynamicToySampler(5, seed=4, gsize=(80, 60)).load_image_with_annots(3)
    assert (img['imdata'] == again['imdata']).all() and anns == anns2
    assert img['imdata'].shape == (60, 80, 3) and (img['width'], img['height']) == (80, 60)
    for k, ann in enumerate(anns, start=1):
        assert ann['id'] == k and ann['image_id'] == 3
        assert self.lookup_class_name(ann['category_id']) == ann['category_name']
    assert (self.load_image(3) == img['imdata']).all()
    with pytest.raises(IndexError):
        self.load_image(self.n_images)


def test_toydata_pickles_and_keeps_its_stream():
    self = DynamicToySampler(10, seed=5, gsize=(40, 40))
    self.load_positive()
    clone = pickle.loads(pickle.dumps(self))
    assert same_sample(self.load_positive(), clone.load_positive())
    assert same_sample(self.load_item(12), clone.load_item(12))
