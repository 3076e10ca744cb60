"""sampler_core: load training windows (positives, negatives, any target) from kwcoco data.

A re-implementation of the ndsampler 0.8 API: code written for ndsampler runs
unchanged with ``import sampler_core as ndsampler``.

Example:
    >>> import sampler_core as ndsampler
    >>> sampler = ndsampler.CocoSampler.demo('shapes8', backend=None)
    >>> n_pos, n_neg = sampler.regions.preselect(n_pos=4, n_neg=4, window_dims=(64, 64), rng=0)
    >>> sample = sampler.load_item(0, target={'window_dims': (64, 64)})
    >>> sample['im'].shape
    (64, 64, 3)
    >>> sample = sampler.load_item(4)  # the first negative
    >>> sample['target']['aid'], len(sample['annots']['aids'])
    (-1, 0)

This module imports nothing heavy at import time beyond numpy; kwcoco,
kwimage and rtree are imported where they are used. ``CategoryTree`` is
kwcoco's, looked up on first use (it imports networkx, about 0.15 s, which a
DataLoader worker that only crops windows never needs).
"""
from sampler_core.config import SamplingConfig
from sampler_core.frames import CocoFrames, Frames, SimpleFrames
from sampler_core.hashid import HashIdentifiable
from sampler_core.index import FrameIntersectionIndex
from sampler_core.regions import (CocoRegions, MissingNegativePool, Targets,
                                  select_positive_regions, tabular_coco_targets)
from sampler_core.sampler import AbstractSampler, CocoSampler
from sampler_core.toydata import DynamicToySampler

__version__ = '0.1.0'


def __getattr__(name):
    if name == 'CategoryTree':
        from kwcoco import CategoryTree
        globals()['CategoryTree'] = CategoryTree
        return CategoryTree
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

__all__ = [
    'AbstractSampler', 'CategoryTree', 'CocoFrames', 'CocoRegions', 'CocoSampler',
    'DynamicToySampler',
    'FrameIntersectionIndex', 'Frames', 'HashIdentifiable', 'MissingNegativePool',
    'SamplingConfig', 'SimpleFrames', 'Targets', 'select_positive_regions', 'tabular_coco_targets',
]
