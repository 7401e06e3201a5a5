"""The SQL package itself: merges, process control, error logging, roles."""
