"""The issue tracker: the single source of truth, governed by the priority matrix."""
