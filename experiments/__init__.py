"""Experiment configs: ``get_config(arg=None)`` per file, shared blocks in ``common.py``.

A package so that a config can say ``from experiments import common``; see common.py.
"""
