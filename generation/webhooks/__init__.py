"""Webhooks for video events (docs/webhooks.md): users register endpoints, Riff signs every
delivery per the Standard Webhooks spec and retries it with backoff from the `default` queue.

- `signing`: secrets and the `webhook-signature` header.
- `urls_guard`: which URLs an endpoint may have, checked at registration and each delivery.
- `transport`: one POST to a vetted address (no redirects, no proxies, a hard deadline).
- `services` / `selectors`: writes and reads; `tasks`: delivery and the sweep; `apis`: the
  `/api/v1/me/webhooks` endpoints.
"""
