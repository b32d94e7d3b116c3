from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from config.core import hooks

        # The lowest app registers the hooks check, so it runs whatever else is installed.
        checks.register(hooks.check)
