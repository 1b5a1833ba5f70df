"""Feedback intake: user, system and team feedback normalised into one signal stream."""

# The config module imports this package's settings while it is being built; loading it
# first keeps that order whichever module is imported first.
from hypercare import config as _config  # noqa: F401
