"""One colour per category, the same in every view of the explorer.

Each category of a dataset gets a colour of :data:`PALETTE` (colorcet's
``glasbey_hv``: HoloViz's own categorical palette, its first colours are
HoloViews' default cycle, the rest chosen so that each colour is as different
as possible from all before it). The ``k``-th category in id order gets colour
``k`` (modulo 256), so neighbouring categories always differ and a dataset
gives the same colours in every session and process. The overview, detail
pane, galleries and statistics all read :func:`category_colors`.

Outlines are drawn over a darker, wider :data:`HALO` line (a halo), so a
category colour stays visible on bright, dark and noisy images.

Example:
    >>> import kwcoco
    >>> dset = kwcoco.CocoDataset.demo('shapes8')
    >>> colors = category_colors(dset)
    >>> sorted(colors) == sorted(dset.cats)
    True
    >>> colors[min(dset.cats)] == PALETTE[0]
    True
"""
from __future__ import annotations

import weakref

import colorcet

#: the categorical palette, 256 ``'#rrggbb'`` colours
PALETTE: list[str] = list(colorcet.palette['glasbey_hv'])
#: colour and opacity of the halo under each outline
HALO, HALO_ALPHA = '#000000', 0.7
#: colour of a category id the dataset does not have
UNKNOWN = '#ffffff'

#: dataset -> (its sorted category ids, {id: colour}); forgotten with the dataset
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def category_colors(dset) -> dict[int, str]:
    """``{category id: '#rrggbb'}`` of a ``kwcoco.CocoDataset`` (the ``k``-th id in sorted
    order gets :data:`PALETTE` ``[k % 256]``); cached per dataset and category ids.

    Args:
        dset: a ``kwcoco.CocoDataset`` (anything with a ``cats`` dict).

    Returns:
        a new dict (the caller may change it).

    Example:
        >>> import kwcoco
        >>> dset = kwcoco.CocoDataset()
        >>> _ = [dset.add_category(name, id=cid) for cid, name in [(7, 'b'), (3, 'a')]]
        >>> category_colors(dset) == {3: PALETTE[0], 7: PALETTE[1]}
        True
    """
    ids = tuple(sorted(dset.cats))
    try:
        hit = _CACHE.get(dset)
    except TypeError:           # not weakly referable: computed each time
        hit = None
    if hit is None or hit[0] != ids:
        hit = (ids, {cid: PALETTE[k % len(PALETTE)] for k, cid in enumerate(ids)})
        try:
            _CACHE[dset] = hit
        except TypeError:
            pass
    return dict(hit[1])


def halo_hook(plot, element) -> None:
    """HoloViews hook: draw a :data:`HALO` line (2 px wider) under an outline glyph.

    The halo is a second Bokeh renderer of the same glyph on the same data
    source, inserted just below it: it follows every update of the element and
    takes no part in hover or taps. Added once per plot.
    """
    from bokeh.models import CDSView, GlyphRenderer
    renderer = plot.handles.get('glyph_renderer')
    if renderer is None or getattr(renderer, 'tags', None) and 'halo-added' in renderer.tags:
        return
    glyph = renderer.glyph
    width = glyph.line_width if isinstance(glyph.line_width, (int, float)) else 2
    halo = glyph.clone(line_color=HALO, line_alpha=HALO_ALPHA, line_width=width + 2)
    if hasattr(halo, 'fill_alpha'):
        halo.fill_alpha = 0
    if hasattr(halo, 'hatch_alpha'):
        halo.hatch_alpha = 0
    under = GlyphRenderer(data_source=renderer.data_source, glyph=halo, nonselection_glyph=halo,
                          view=CDSView(filter=renderer.view.filter), level=renderer.level,
                          tags=['halo'])
    renderers = list(plot.state.renderers)
    renderers.insert(renderers.index(renderer), under)
    plot.state.renderers = renderers
    renderer.tags = list(renderer.tags or []) + ['halo-added']
