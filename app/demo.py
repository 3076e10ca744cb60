"""The explorer's view of the demo datasets of :mod:`sampler_core.demo`.

The library keeps the one demo registry (keys, generation, folder); the app
lists its keys with their descriptions and opens them with the same
:func:`~sampler_core.demo.load_demo`, so a config exported on any demo the app
offers rebuilds with ``CocoSampler.from_config``.

Example:
    >>> sorted(DEMOS)[:2]
    ['large2', 'shapes32']
    >>> DEMOS[DEFAULT_DEMO].startswith('kwcoco shapes')
    True
"""
from __future__ import annotations

from sampler_core import demo as _demo
from sampler_core.demo import DEFAULT_DEMO, is_demo_key, load_demo, make_large_demo

__all__ = ['DEMOS', 'DEFAULT_DEMO', 'DEMO_ROOT', 'is_demo_key', 'load_demo', 'make_large_demo']

#: demo key -> description, in the order of the app's demo list
DEMOS = {key: spec.description for key, spec in _demo.DEMOS.items()}

#: the demo folder when the app was imported (uploads are kept in ``DEMO_ROOT / 'uploads'``)
DEMO_ROOT = _demo.demo_root()
