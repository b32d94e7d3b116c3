from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks
        from django.db.models.signals import post_delete, post_save

        from config.core import hooks

        from . import authcache, stamps
        from .models import AuthToken, User

        # The lowest app registers the hooks check, so it runs whatever else is installed.
        checks.register(hooks.check)
        # Saves and deletes that the token cache must hear of (accounts.authcache).
        post_save.connect(authcache.on_user_saved, sender=User, dispatch_uid="authcache-user")
        post_save.connect(authcache.on_token_changed, sender=AuthToken, dispatch_uid="authcache-t")
        post_delete.connect(
            authcache.on_token_changed, sender=AuthToken, dispatch_uid="authcache-t-del"
        )
        # ... and the stamps upper layers' caches check (accounts.stamps).
        post_save.connect(stamps.on_user_saved, sender=User, dispatch_uid="stamps-user")
        post_delete.connect(stamps.on_user_deleted, sender=User, dispatch_uid="stamps-user-del")
