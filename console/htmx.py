"""The one flask-htmx helper instance: ``if htmx:`` is true inside an htmx request."""

from flask_htmx import HTMX

htmx = HTMX()
