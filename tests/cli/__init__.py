"""The `harness` command as a user meets it: faults, exit codes, secrets, where output goes."""
