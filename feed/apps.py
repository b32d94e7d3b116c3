from django.apps import AppConfig


class FeedConfig(AppConfig):
    name = "feed"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from generation.models import Video

        from . import postcache
        from .models import Post

        # Saves and deletes the feed's caches must hear of (feed.postcache).
        post_save.connect(postcache.on_post_saved, sender=Post, dispatch_uid="postcache-post")
        post_delete.connect(postcache.on_post_saved, sender=Post, dispatch_uid="postcache-p-del")
        post_save.connect(postcache.on_video_saved, sender=Video, dispatch_uid="postcache-video")
