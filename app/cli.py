"""The ``sampler-explorer`` command line.

Example:
    $ sampler-explorer preview --out preview.png            # the bundled demo
    $ sampler-explorer preview data.kwcoco.json --window 256 256 --num 8
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: dataset used when none is given: generated locally by kwcoco, no download
DEMO_DATASET = 'shapes8'


def render_preview(sampler, window_dims=(128, 128), num: int = 8, neg_to_pos_ratio: float = 1.0,
                   pad=(0, 0), visible_thresh: float = 0.0, seed: int = 0, thumb: int = 160):
    """A PNG-ready ``(H, W, 3)`` uint8 grid: positives (green frame), then negatives (red).

    Args:
        sampler (sampler_core.CocoSampler): the sampler.
        window_dims: ``(height, width)`` of each window, pixels.
        num: number of positives (negatives: ``num * neg_to_pos_ratio``).
        neg_to_pos_ratio: negatives per positive.
        pad: ``(height, width)`` context added around each window.
        visible_thresh: leave out annotations less visible than this.
        seed: random seed of the pools.
        thumb: side of each thumbnail, pixels.

    Returns:
        ``(grid, n_pos, n_neg)``.
    """
    import kwimage
    import numpy as np
    n_pos, n_neg = sampler.regions.preselect(
        n_pos=min(num, len(sampler.regions.targets)), neg_to_pos_ratio=neg_to_pos_ratio,
        window_dims=window_dims, rng=seed)
    tiles = []
    for index in range(n_pos + n_neg):
        sample = sampler.load_item(index, target={'window_dims': tuple(window_dims), 'pad': pad},
                                   visible_thresh=visible_thresh)
        im = sample['im']
        if im.shape[2] == 1:
            im = np.repeat(im, 3, axis=2)
        im = kwimage.ensure_uint255(im[:, :, :3])
        dets = sample['annots']['frame_dets'][0]
        canvas = dets.draw_on(im.copy(), color='classes', labels=False)
        color = (0, 200, 0) if index < n_pos else (220, 0, 0)
        canvas = kwimage.imresize(canvas, dsize=(thumb, thumb), letterbox=True)
        canvas = kwimage.ensure_uint255(canvas[:, :, :3]).copy()
        canvas[:3, :], canvas[-3:, :], canvas[:, :3], canvas[:, -3:] = color, color, color, color
        tiles.append(canvas)
    if not tiles:
        raise ValueError('no windows could be sampled from this dataset')
    grid = kwimage.stack_images_grid(tiles, pad=4, bg_value=(255, 255, 255))
    return grid, n_pos, n_neg


def _cmd_preview(args) -> int:
    import kwimage
    from sampler_core import CocoSampler
    sampler = CocoSampler.coerce(args.dataset, workdir=args.workdir, backend=args.backend)
    grid, n_pos, n_neg = render_preview(
        sampler, window_dims=tuple(args.window), num=args.num, neg_to_pos_ratio=args.neg_ratio,
        pad=tuple(args.pad), visible_thresh=args.visible_thresh, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kwimage.imwrite(str(out), grid)
    print(f'wrote {out} ({n_pos} positives, {n_neg} negatives, window {tuple(args.window)})')
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='sampler-explorer',
        description='See, tune and reproduce the training windows sampled from a kwcoco dataset.')
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('preview', help='write a PNG grid of sampled positive and negative windows',
                       description='Sample positives (green frame) and negatives (red frame) '
                                   'and write them, annotations drawn, as one PNG grid.')
    p.add_argument('dataset', nargs='?', default=DEMO_DATASET,
                   help=f'a .kwcoco.json file or a kwcoco demo key (default: {DEMO_DATASET}, '
                        'generated locally)')
    p.add_argument('--out', default='preview.png', help='PNG file to write (default: preview.png)')
    p.add_argument('--window', nargs=2, type=int, default=(128, 128), metavar=('H', 'W'),
                   help='window height and width in pixels (default: 128 128)')
    p.add_argument('--pad', nargs=2, type=int, default=(0, 0), metavar=('PH', 'PW'),
                   help='context added above/below and left/right (default: 0 0)')
    p.add_argument('--num', type=int, default=8, help='number of positives (default: 8)')
    p.add_argument('--neg-ratio', type=float, default=1.0,
                   help='negatives per positive (default: 1.0)')
    p.add_argument('--visible-thresh', type=float, default=0.0,
                   help='hide annotations less visible than this fraction (default: 0)')
    p.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    p.add_argument('--backend', default=None, choices=[None, 'npy', 'auto'],
                   help='pixel backend: none (decode each time) or npy (memmap cache)')
    p.add_argument('--workdir', default=None, help='cache folder (default: ~/.cache/sampler-explorer)')
    p.set_defaults(func=_cmd_preview)
    return parser


def main(argv=None) -> int:
    """Entry point of ``sampler-explorer``; errors a user can fix print one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, KeyError, ValueError, TypeError, PermissionError) as ex:
        msg = ex.args[0] if isinstance(ex, KeyError) and ex.args else ex
        print(f'sampler-explorer: error: {msg}', file=sys.stderr)
        return 2


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
