"""API tokens and roles."""
