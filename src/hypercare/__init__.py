"""Hypercare: one command center for the weeks after a product launch."""

__version__ = "0.1.0"
