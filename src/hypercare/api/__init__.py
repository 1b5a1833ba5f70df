"""The console's HTTP layer: app factory, shared dependencies and error mapping."""
