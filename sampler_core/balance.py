"""Class-balanced positive pools.

A detector trained on the positive pool sees each category about as often as
the pool holds it. With ``balance`` the pool is drawn so rare categories are
seen more often:

* ``None`` / ``'none'``: no balancing; categories in dataset proportions
  (the behaviour of ndsampler).
* ``'inverse'``: inverse category frequency; each annotation is drawn with
  probability ``1 / count(its category)``, so every category present makes up
  the same share of the pool.
* ``{category_id: weight}``: explicit target shares; each category present
  makes up ``weight / sum(weights)`` of the pool (categories not listed get
  weight 1.0, weight 0 leaves a category out).

Grid windows (config ``mode: grid``) hold several categories. A balanced grid
pool weights each positive window by the *rarest* category it holds: the
largest category weight among its categories, where a category's weight is
``1 / (number of positive windows holding it)`` (``'inverse'``) or its
``{category_id: weight}``; :func:`grid_window_weights`. A window holding only
common categories is drawn at their rate, one holding a rare category at the
rare one's: windows of each category are drawn about as often as the rarest
category in them asks, never less.

Balanced pools are drawn **with replacement** (a rare annotation repeats), so
the class shares hold for any pool size. :func:`expected_category_frequencies`
gives the shares a pool will have on average, for the explorer to show next to
the shares actually drawn (:func:`pool_category_frequencies`).

Example:
    >>> from sampler_core.regions import CocoRegions
    >>> from sampler_core.balance import expected_category_frequencies
    >>> regions = CocoRegions.demo('shapes32')
    >>> freq = expected_category_frequencies(regions, balance='inverse')
    >>> sorted(set(round(v, 6) for v in freq.values())) == [round(1 / len(freq), 6)]
    True
    >>> n_pos, _ = regions.preselect(n_pos=2000, n_neg=0, balance='inverse', rng=0)
    >>> drawn = pool_category_frequencies(regions)
    >>> max(abs(drawn[c] - freq[c]) for c in freq) < 0.05
    True
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np


def coerce_balance(balance: Any) -> None | str | dict[int, float]:
    """Normalise ``balance`` to ``None``, ``'inverse'`` or ``{category_id: weight}``.

    Raises:
        ValueError: an unknown name or a weight that is negative, not finite,
            or all weights zero.
        TypeError: anything else.

    Example:
        >>> coerce_balance('none') is None
        True
        >>> coerce_balance({1: 2, 3: 0.5})
        {1: 2.0, 3: 0.5}
    """
    if balance is None or balance is False:
        return None
    if isinstance(balance, str):
        if balance == 'none':
            return None
        if balance in ('inverse', 'inverse_frequency'):
            return 'inverse'
        raise ValueError(f"unknown balance {balance!r}; use 'none', 'inverse' or "
                         f"{{category_id: weight}}")
    if isinstance(balance, Mapping):
        out = {}
        for cid, weight in balance.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)):
                raise TypeError(f'balance weight of category {cid!r} must be a number, '
                                f'got {weight!r}')
            weight = float(weight)
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f'balance weight of category {cid!r} must be finite and '
                                 f'>= 0, got {weight!r}')
            out[int(cid)] = weight
        if not any(w > 0 for w in out.values()):
            raise ValueError(f'balance weights must include one > 0, got {balance!r}')
        return out
    raise TypeError(f"balance must be None, 'none', 'inverse' or a dict of weights, "
                    f"got {balance!r}")


def category_shares(cids: Sequence[int], balance: Any = None) -> dict[int, float]:
    """Share of each category in a pool drawn from annotations of categories ``cids``.

    Args:
        cids: ``(M,)`` category id of every candidate positive.
        balance: see :func:`coerce_balance`.

    Returns:
        ``{category_id: share}`` over the categories present, shares sum to 1
        (empty without candidates).

    Raises:
        ValueError: every category present has weight 0.

    Example:
        >>> category_shares([1, 1, 1, 2])
        {1: 0.75, 2: 0.25}
        >>> category_shares([1, 1, 1, 2], 'inverse')
        {1: 0.5, 2: 0.5}
        >>> category_shares([1, 1, 1, 2], {1: 1, 2: 3})
        {1: 0.25, 2: 0.75}
    """
    balance = coerce_balance(balance)
    uniq, counts = np.unique(np.asarray(cids, dtype=np.int64), return_counts=True)
    if not len(uniq):
        return {}
    if balance is None:
        weights = counts.astype(np.float64)
    elif balance == 'inverse':
        weights = np.ones(len(uniq))
    else:
        weights = np.array([balance.get(int(c), 1.0) for c in uniq.tolist()])
    total = weights.sum()
    if total <= 0:
        raise ValueError(f'every category among the positives ({uniq.tolist()}) has balance '
                         f'weight 0; nothing can be drawn')
    return {int(c): float(w / total) for c, w in zip(uniq.tolist(), weights.tolist())}


def row_probabilities(cids: Sequence[int], balance: Any) -> np.ndarray:
    """Probability of drawing each candidate so categories get :func:`category_shares`.

    Args:
        cids: ``(M,)`` category id of every candidate.
        balance: see :func:`coerce_balance`.

    Returns:
        ``(M,)`` float64 probabilities summing to 1.

    Example:
        >>> row_probabilities([1, 1, 1, 2], 'inverse').round(4).tolist()
        [0.1667, 0.1667, 0.1667, 0.5]
    """
    cids = np.asarray(cids, dtype=np.int64)
    shares = category_shares(cids, balance)
    uniq, inverse, counts = np.unique(cids, return_inverse=True, return_counts=True)
    share = np.array([shares[int(c)] for c in uniq.tolist()])
    prob = share[inverse] / counts[inverse]
    return prob / prob.sum()


def balanced_choice(rows: np.ndarray, cids: np.ndarray, num: int, balance: Any,
                    rng: np.random.RandomState) -> np.ndarray:
    """Draw ``num`` of ``rows`` (with replacement) so categories follow ``balance``.

    Returns:
        sorted ``(num,)`` int64 rows.
    """
    if num == 0:
        return np.empty(0, dtype=np.int64)
    prob = row_probabilities(cids, balance)
    return np.sort(rng.choice(np.asarray(rows, dtype=np.int64), size=num, replace=True, p=prob))


def grid_window_weights(window_cids: Sequence[Sequence[int]], balance: Any) -> np.ndarray:
    """Draw weight of each grid window: the weight of the rarest category it holds.

    Args:
        window_cids: for each of ``M`` windows, the category ids it holds (those
            that make it positive).
        balance: ``'inverse'`` (a category's weight is one over the number of
            windows holding it) or ``{category_id: weight}`` (missing: 1.0); see
            :func:`coerce_balance`.

    Returns:
        ``(M,)`` float64 weights (not normalised; 0 for a window without categories
        or whose categories all weigh 0).

    Example:
        >>> # 'a' is in 3 windows, 'b' in 1: a window holding b weighs 1, the others 1/3
        >>> grid_window_weights([[1], [1], [1, 2], []], 'inverse').round(4).tolist()
        [0.3333, 0.3333, 1.0, 0.0]
        >>> grid_window_weights([[1], [1, 2]], {1: 0.5, 2: 0.0}).tolist()
        [0.5, 0.5]
    """
    balance = coerce_balance(balance)
    sets = [set(int(c) for c in cids) for cids in window_cids]
    if balance is None:
        return np.array([1.0 if s else 0.0 for s in sets])
    if balance == 'inverse':
        counts: dict[int, int] = {}
        for cats in sets:
            for c in cats:
                counts[c] = counts.get(c, 0) + 1
        weight = {c: 1.0 / k for c, k in counts.items()}
    else:
        weight = balance
    return np.array([max((float(weight.get(c, 1.0)) for c in cats), default=0.0)
                     for cats in sets], dtype=np.float64)


def expected_category_frequencies(regions, balance: Any = None,
                                  category_ids: Sequence[int] | None = None,
                                  window_dims=None, split=None) -> dict[int, float]:
    """Expected share of each category among the positives :meth:`preselect` draws.

    Takes the same candidate filters as
    :meth:`sampler_core.regions.CocoRegions.preselect` (categories, split,
    zero-size boxes when ``window_dims`` is None).

    Args:
        regions (sampler_core.regions.CocoRegions | sampler_core.CocoSampler): the pools.
        balance: see :func:`coerce_balance`.
        category_ids: only these categories are positives.
        window_dims: ``(height, width)`` of the windows (``None``: box sized).
        split (sampler_core.split.SubsetSelector | None): one side of a split.

    Returns:
        ``{category_id: share}``; shares sum to 1.
    """
    regions = getattr(regions, 'regions', regions)
    rows = regions.positive_candidates(window_dims=window_dims, category_ids=category_ids,
                                       split=split, warn=False)
    cids = np.asarray(regions.targets['category_id'])[rows]
    return category_shares(cids, balance)


def config_category_frequencies(sampler, config, subset: str | None = 'train') -> dict[str, float]:
    """Expected share of each category name among the positives of ``config``.

    What the explorer shows next to the drawn shares: the config's category
    filter, balance, window size, pad and split are all taken into account.

    Args:
        sampler (sampler_core.CocoSampler): a sampler of the config's dataset.
        config (sampler_core.SamplingConfig): the config.
        subset: ``'train'`` / ``'val'`` side of the config's split, or ``None``.

    Returns:
        ``{category name: share}`` (empty for ``mode: grid``, whose positives
        are windows holding several categories).

    Example:
        >>> from sampler_core import CocoSampler, SamplingConfig
        >>> sampler = CocoSampler.demo('shapes8')
        >>> cfg = SamplingConfig(balance='weights', class_weights={'star': 3.0})
        >>> freq = config_category_frequencies(sampler, cfg)
        >>> round(freq['star'] / max(v for k, v in freq.items() if k != 'star'), 6)
        3.0
    """
    if config.mode == 'grid':
        return {}
    kw = config.preselect_kwargs(sampler.dset, subset=subset)
    shares = expected_category_frequencies(sampler, balance=kw['balance'],
                                           category_ids=kw['category_ids'],
                                           window_dims=kw['window_dims'], split=kw['split'])
    return {sampler.dset.cats[cid]['name']: share for cid, share in shares.items()}


def pool_category_frequencies(regions) -> dict[int, float]:
    """Share of each category in the current positive pool of ``regions``.

    Example:
        >>> from sampler_core.regions import CocoRegions
        >>> regions = CocoRegions.demo('shapes8')
        >>> abs(sum(pool_category_frequencies(regions).values()) - 1) < 1e-9
        True
    """
    regions = getattr(regions, 'regions', regions)
    n = regions.n_positives
    if n == 0:
        return {}
    cids = np.asarray(regions.targets['category_id'])
    if regions._pos_select_idxs is not None:
        cids = cids[regions._pos_select_idxs]
    uniq, counts = np.unique(cids, return_counts=True)
    return {int(c): float(k / n) for c, k in zip(uniq.tolist(), counts.tolist())}
