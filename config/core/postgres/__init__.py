"""Django's PostgreSQL backend with a cheaper pool checkout (see `base`)."""
