"""One Typer module per command; each exposes `register(app)`. Modules are discovered by name,
so adding a command never means editing a central list."""
