"""sampler-explorer's app: the command line and the Panel explorer on top of sampler_core.

Importing ``app`` imports no GUI library: ``from app import Explorer`` loads
Panel / HoloViews on first access (module ``__getattr__``).
"""

__all__ = ['Explorer', 'ExplorerState']


def __getattr__(name):
    if name == 'Explorer':
        from app.layout import Explorer
        return Explorer
    if name == 'ExplorerState':
        from app.state import ExplorerState
        return ExplorerState
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
