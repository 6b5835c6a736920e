"""`python -m vdi_cli` runs the CLI, like the `vdi` console script."""

from vdi_cli.cli import main

if __name__ == "__main__":
    main()
