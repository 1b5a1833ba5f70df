"""Post-incident reviews drafted from data, and runbooks (the knowledge base)."""
