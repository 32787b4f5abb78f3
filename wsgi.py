"""Entry point for gunicorn (`gunicorn -c gunicorn.conf.py wsgi:app`) and the Flask CLI
(`flask --app wsgi ...`)."""

from console import create_app
from console.cli import register_commands
from console.observability.logging import configure_logging
from console.settings import ConfigError, Settings

try:
    settings = Settings.from_env()
except ConfigError as error:
    # A clear one-line message naming the variable, not a traceback.
    raise SystemExit(f"configuration error: {error}") from None

configure_logging(settings.log_level)
app = create_app(settings)
register_commands(app)
