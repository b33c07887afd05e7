"""The job service: the one way the CLI, the HTTP API and the window act on jobs (no Qt here)."""
