"""Cadre: teams of small specialist language models.

The public pieces: :mod:`orchestrator.catalog` (what a user writes, loaded and checked),
:mod:`orchestrator.engines` (model engines behind one interface), :mod:`orchestrator.hosting`
(Ray actors that host engines) and :mod:`orchestrator.cli`.
"""

__version__ = "0.1.0"
