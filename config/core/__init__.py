"""The bottom layer: the small primitives every app uses, importing no Riff app.

The HTTP envelope and input rules (errors, fields, parsers, pagination, schema hooks, body
limits, uploads, throttles, client ip, caching headers, file streaming), the Redis client and
what happens while Redis is down (redis), media URLs (media), named hooks (hooks) and state
machines (states). The import-linter contract in pyproject.toml keeps it below every app; the
rest of `config` (settings, urls, asgi, celery, devserver, devtools) is project wiring on top.
"""
