"""Entry point for gunicorn (`gunicorn -c gunicorn.conf.py wsgi:app`) and the Flask CLI
(`flask --app wsgi ...`)."""

from console import create_app as build_app
from console.cli import commands_only_app, register_commands
from console.observability.logging import configure_logging
from console.settings import ConfigError, Settings

try:
    settings = Settings.from_env()
except ConfigError as error:
    # No `app` then, so nothing can serve an unconfigured console (gunicorn's on_starting
    # names the problem). The Flask CLI falls back to this factory: `flask --app wsgi --help`
    # and every command's `--help` still work, and running a command stops with the problem.
    problem = f"configuration error: {error}"

    def create_app():
        return commands_only_app(problem)
else:
    configure_logging(settings.log_level)
    app = build_app(settings)
    register_commands(app)
