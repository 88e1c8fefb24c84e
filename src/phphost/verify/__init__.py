"""Live probes: real attacks against the applied host, run as its tenants would
(PHP in their pools, files in their trees, HTTP from outside), reported as a matrix.
See docs/verify.md. Entry point: runner.run_attacks; the CLI is cli/verify.py."""
