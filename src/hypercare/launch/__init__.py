"""Launches: the hypercare period as an object — SLOs, burn-rate alerts, exit criteria, reports."""
