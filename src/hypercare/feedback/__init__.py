"""Feedback intake: user, system and team feedback normalised into one signal stream."""
