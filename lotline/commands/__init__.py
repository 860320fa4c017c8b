"""The `lotline` subcommands, one module per area; each exposes `register(app)`."""
