"""The `distillery` command and its subcommands."""
