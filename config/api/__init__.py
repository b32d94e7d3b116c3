"""HTTP primitives shared by every app: the error envelope, pagination, idempotency.

This module imports no Riff app, so any app may import it.
"""
