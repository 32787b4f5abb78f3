"""The scheduler process: periodic jobs, one active leader across instances.

Runs as `flask --app wsgi scheduler`, never inside gunicorn (each forked worker would run every
job again). Standby instances wait on a PostgreSQL advisory lock (a file lock on SQLite) and take
over when the leader's connection goes away.
"""
