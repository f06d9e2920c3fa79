"""Sub-commands of the `vaderbench` CLI, one module per command group."""
