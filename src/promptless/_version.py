"""The package version, in one place (the CLI, telemetry and artifacts read it)."""

__version__ = "0.1.0"
