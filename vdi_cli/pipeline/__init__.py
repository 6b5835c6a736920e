"""Library functions for each stage (parse, extract, train, evaluate, retrieve).

The CLI commands in `vdi_cli/commands/` are thin adapters over these; tests call them directly.
"""
