"""Analysis: detection rules over live gateway telemetry, correlation, impact, validation."""
