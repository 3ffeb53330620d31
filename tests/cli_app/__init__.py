"""A tiny application for the `durable` command's tests (`durable worker cli_app.app`)."""
