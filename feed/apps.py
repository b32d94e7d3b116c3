from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class FeedConfig(AppConfig):
    name = "feed"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from generation.models import Generation

        from .ranking.cards import on_generation_deleted, on_generation_saved

        # The card state keeps each viewer's last creation (feed.ranking.cards).
        post_save.connect(on_generation_saved, sender=Generation, dispatch_uid="feed-last-created")
        post_delete.connect(
            on_generation_deleted, sender=Generation, dispatch_uid="feed-last-created-gone"
        )
