"""The ``sampler-explorer`` command line.

Example:
    $ sampler-explorer preview --out preview.png            # the bundled demo
    $ sampler-explorer preview data.kwcoco.json --window 256 256 --num 8
    $ sampler-explorer serve                                # the explorer on the demo
    $ sampler-explorer serve data.kwcoco.json --port 5006 --allow-root /data --show

Panel is imported only by ``serve`` (``preview`` and ``--help`` stay fast).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from pathlib import Path

from sampler_core.demo import DEFAULT_DEMO, DEMOS

#: dataset used when none is given: a demo generated locally, no download
DEMO_DATASET = DEFAULT_DEMO
#: the demo keys, for the help texts
_DEMO_KEYS = ', '.join(DEMOS)
#: how often the server looks for closed sessions to free (Bokeh's default: 17 s); a session
#: is freed once it has had no connection for Bokeh's unused-session lifetime (15 s)
CHECK_UNUSED_MS = 2000
#: the garbage collector's thresholds in a server (Python's default: 700, 10, 10). A page
#: makes ~40k objects that live as long as its session; with collections of the youngest
#: generation every 700 allocations, the sessions' objects were walked again and again and
#: full collections (up to 0.4 s each) came every few pages. Measured with 12 pages opened
#: in turn: collector time 2.0 s -> 0.8 s, longest pause 416 -> 229 ms.
GC_THRESHOLDS = (20_000, 10, 10)
#: pixel backends on the command line; ``none`` is the library's ``backend=None``
BACKEND_CHOICES = ('none', 'npy', 'cog')


def backend_arg(name: str | None) -> str | None:
    """The library's ``backend`` for a ``--backend`` choice (``'none'`` -> None).

    Example:
        >>> backend_arg('none'), backend_arg('npy'), backend_arg(None)
        (None, 'npy', None)
    """
    return None if name in (None, 'none') else name


def silence_known_warnings() -> None:
    """Hide kwimage's "optional cpu_nms is not available" warning (printed when a demo is
    generated without the optional ``kwimage_ext``; kwimage then uses its numpy NMS).
    Only that message from that module: every other warning still shows."""
    warnings.filterwarnings('ignore', message='optional cpu_nms is not available',
                            category=UserWarning, module=r'kwimage\.algo\.algo_nms')


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
    sampler = CocoSampler.coerce(args.dataset, workdir=args.workdir,
                                 backend=backend_arg(args.backend))
    grid, n_pos, n_neg = render_preview(
        sampler, window_dims=tuple(args.window), num=args.num, neg_to_pos_ratio=args.neg_ratio,
        pad=tuple(args.pad), visible_thresh=args.visible_thresh, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kwimage.imwrite(str(out), grid)
    print(f'wrote {out} ({n_pos} positives, {n_neg} negatives, window {tuple(args.window)})')
    return 0


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``serve`` (also parsed by ``panel serve app/main.py --args ...``)."""
    p.add_argument('dataset', nargs='?', default=DEMO_DATASET,
                   help=f'a .kwcoco.json file or a demo key ({_DEMO_KEYS}; default: '
                        f'{DEMO_DATASET}, generated locally, listed in the app). A file\'s folder '
                        'is added to the allowed roots.')
    p.add_argument('--workdir', default=None,
                   help='frame cache folder (default: ~/.cache/sampler-explorer); the only '
                        'place the explorer writes frames: a config or a link cannot change it')
    p.add_argument('--upload-dir', default=None, metavar='DIR',
                   help='folder of uploaded datasets, one sub-folder per content hash, each '
                        'deleted when no session uses it (default: a temporary folder removed '
                        'at exit)')
    p.add_argument('--port', type=int, default=5006,
                   help='port to listen on; 0 picks a free one (default: 5006)')
    p.add_argument('--address', default='localhost',
                   help='address to bind (default: localhost, reachable from this machine only)')
    p.add_argument('--allow-root', action='append', default=[], metavar='DIR',
                   help='also allow datasets (typed, uploaded or in a config) under DIR; '
                        'repeatable. Default roots: the working directory and the demo folders')
    p.add_argument('--backend', default='npy', choices=BACKEND_CHOICES,
                   help='initial pixel backend: npy (memmap cache, fast zoom on large images), '
                        'cog (tiled, compressed cache: about a tenth of the disk) or none '
                        '(decode on every read) (default: npy)')
    p.add_argument('--show', action='store_true', help='open the page in a web browser')


def parse_serve_args(argv) -> argparse.Namespace:
    """Parse ``serve`` options (for ``panel serve app/main.py --args ...``)."""
    p = argparse.ArgumentParser(prog='panel serve app/main.py --args')
    add_serve_arguments(p)
    return p.parse_args(list(argv))


def serve_roots(args) -> list:
    """Allowed roots: defaults, ``--allow-root`` folders, the dataset's folder."""
    import os
    from app.roots import default_roots
    from sampler_core.demo import is_demo_key
    roots = default_roots() + list(args.allow_root)
    if not is_demo_key(args.dataset):
        roots.append(os.path.dirname(os.path.abspath(args.dataset)))
    return roots


def freeze_long_lived() -> int:
    """Move every object alive now (the dataset, its sampler's tables, the imported
    libraries) to the garbage collector's permanent generation; return how many.

    They live as long as the server, yet each full collection walked them all again: the
    sessions' objects trigger one at every ~25 % growth of the objects alive (with 20
    sessions, pauses of 1-2.5 s of the one server loop). Frozen, only the sessions' own
    objects are walked. Called once by :func:`serve`, before the first session, which
    also sets the collector's :data:`GC_THRESHOLDS`.

    Example:
        >>> import gc
        >>> before = gc.get_freeze_count()
        >>> freeze_long_lived() >= before
        True
        >>> gc.unfreeze()
    """
    import gc
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _new_explorer(args, state=None, hold_updates: bool = False):
    from app.layout import Explorer
    from app.uploads import server_store
    store = server_store(getattr(args, 'upload_dir', None))
    if state is not None:
        return Explorer(state=state, hold_updates=hold_updates, uploads=store)
    backend = backend_arg(args.backend)
    return Explorer(dataset=args.dataset, roots=serve_roots(args), workdir=args.workdir,
                    backend=backend, hold_updates=hold_updates, uploads=store)


def create_page(args, ready_made: list | None = None):
    """One session's page (a Panel template) for parsed ``serve`` options.

    ``ready_made``: explorers built ahead (by :func:`serve`, while the server waits
    for its first visitor); one whose dataset is still current is used first.
    """
    while ready_made:
        explorer = ready_made.pop()
        if explorer.state.dataset_is_current():
            return explorer.template()
    return _new_explorer(args, hold_updates=True).template()


@contextlib.contextmanager
def _prebound(sockets, port: int):
    """Make Bokeh's server listen on ``sockets`` (bound already) instead of binding anew."""
    import bokeh.server.server as bk_server
    original = bk_server.bind_sockets
    bk_server.bind_sockets = lambda address, _port: (sockets, port)
    try:
        yield
    finally:
        bk_server.bind_sockets = original


def serve(args, ready=None):
    """Start the server (blocks). ``ready(server, url)`` is called once it listens.

    The dataset is opened first (a bad one is refused before anything is served); then
    the port is bound and the URL printed, and Panel is imported while the browser
    opens the page (its request waits in the socket's queue).
    """
    from tornado.netutil import bind_sockets

    from app.state import ExplorerState
    # build the shared sampler (and refuse a bad dataset) before the first visitor
    backend = backend_arg(args.backend)
    state = ExplorerState(dataset=args.dataset, roots=serve_roots(args), workdir=args.workdir,
                          backend=backend)
    from app.browse import BrowseFacts
    BrowseFacts.of(state.shared)    # the image grid's arrays: part of loading the dataset
    try:
        sockets = bind_sockets(args.port, args.address)
    except OSError as ex:
        raise ValueError(f'cannot listen on {args.address}:{args.port}: {ex.strerror}') from None
    port = sockets[0].getsockname()[1]
    url = f'http://{args.address}:{port}/'
    print(f'sampler-explorer: serving {args.dataset} at {url}  (Ctrl+C to stop)', flush=True)

    import panel as pn

    from app.layout import ensure_extensions
    from app.uploads import WEBSOCKET_MAX_BYTES
    ensure_extensions()
    freeze_long_lived()
    import gc
    gc.set_threshold(*GC_THRESHOLDS)
    origins = sorted({f'{host}:{port}' for host in (args.address, 'localhost', '127.0.0.1')})
    ready_made = []
    with _prebound(sockets, port):
        server = pn.serve({'/': lambda: create_page(args, ready_made)}, port=port,
                          address=args.address, show=False, start=False,
                          title='sampler-explorer', websocket_origin=origins,
                          # every upload chunk (app.uploads.UPLOAD_CHUNK_BYTES) fits
                          websocket_max_message_size=WEBSOCKET_MAX_BYTES,
                          check_unused_sessions_milliseconds=CHECK_UNUSED_MS)
    if server.port != port:  # pragma: no cover - a Bokeh that binds in another way
        raise RuntimeError(f'the server listens on port {server.port}, not on the printed '
                           f'{port}; this Bokeh version is not supported by serve()')

    def build_ahead():
        # the first loop callback, before any request is handled: the first visitor's
        # explorer (on the state built above) is made while the browser opens the page
        try:
            ready_made.append(_new_explorer(args, state=state, hold_updates=True))
        except Exception:  # pragma: no cover - the visitor's page builds its own
            import traceback
            traceback.print_exc()

    server.io_loop.add_callback(build_ahead)
    if ready is not None:
        ready(server, url)
    if args.show:
        server.io_loop.add_callback(server.show, '/')
    import signal
    import threading
    if threading.current_thread() is threading.main_thread():
        # a terminated server stops its loop and exits normally: its uploads are removed
        server.io_loop.asyncio_loop.add_signal_handler(signal.SIGTERM, server.io_loop.stop)
    server.start()
    try:
        server.io_loop.start()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    finally:
        from app.uploads import server_store
        server_store().remove_all()
    return 0


def _cmd_serve(args) -> int:
    return serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='sampler-explorer',
        description='See, tune and reproduce the training windows sampled from a kwcoco dataset.')
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('preview', help='write a PNG grid of sampled positive and negative windows',
                       description='Sample positives (green frame) and negatives (red frame) '
                                   'and write them, annotations drawn, as one PNG grid.')
    p.add_argument('dataset', nargs='?', default=DEMO_DATASET,
                   help=f'a .kwcoco.json file or a demo key ({_DEMO_KEYS}; default: '
                        f'{DEMO_DATASET}, generated locally)')
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
    p.add_argument('--backend', default='none', choices=BACKEND_CHOICES,
                   help='pixel backend: none (decode each time), npy (memmap cache) or cog '
                        '(tiled, compressed cache) (default: none)')
    p.add_argument('--workdir', default=None, help='cache folder (default: ~/.cache/sampler-explorer)')
    p.set_defaults(func=_cmd_preview)

    p = sub.add_parser('serve', help='serve the interactive explorer (Panel) in the browser',
                       description='Serve the explorer: browse images, tune the sampling config '
                                   'live, see positives / negatives, galleries and pool '
                                   'statistics, export the config. Prints the URL.')
    add_serve_arguments(p)
    p.set_defaults(func=_cmd_serve)

    from sampler_core.prepare import add_subcommands  # prepare, export-chips
    add_subcommands(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of ``sampler-explorer``; errors a user can fix print one line."""
    silence_known_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (OSError, KeyError, ValueError, TypeError) as ex:  # OSError: a folder, a full disk
        msg = ex.args[0] if isinstance(ex, KeyError) and ex.args else ex
        print(f'sampler-explorer: error: {msg}', file=sys.stderr)
        return 2
    except MemoryError as ex:
        what = ' '.join(str(getattr(args, key)) for key in ('command', 'config', 'dataset')
                        if getattr(args, key, None) is not None)
        print(f'sampler-explorer: error: not enough memory for {what}: {ex}', file=sys.stderr)
        return 2


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
