"""Entry of the served explorer: ``panel serve app/main.py --args [DATASET] [--allow-root DIR ...]``.

The only module that calls ``.servable()``. ``sampler-explorer serve`` serves
the same page through :func:`app.cli.serve` (with the same options).
"""
import sys

from app.cli import create_page, parse_serve_args

_options = parse_serve_args(sys.argv[1:])
create_page(_options).servable(title='sampler-explorer')
