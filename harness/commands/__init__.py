"""The `harness` subcommands, one module per area."""
