"""sampler-explorer's app: command line now, the Panel explorer on top of sampler_core.

Importing ``app`` imports no GUI library; the Panel parts are imported where used.
"""
