"""The worker runtime: exit codes, stop and wake-ups, pipelines side by side."""
