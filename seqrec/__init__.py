"""Shared core of the streaming sequence recommender: event schema, dataset readers, metrics.

This package imports none of the components (pipelines, serving, online learning),
so each of them can ship in its own image with only this package beside it.
"""
