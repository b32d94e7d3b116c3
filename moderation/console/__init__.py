"""The staff moderation console: queue, report pages, appeals, dashboard
(docs/moderation-console.md). Mounted at /console/ by config/urls.py."""
