"""The `--demo` launch: a small shop behind the gateway, traffic, and a scripted incident."""
