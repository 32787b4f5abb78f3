"""How the console is served: request framing and the gunicorn worker that buffers slow clients."""
