"""feed's implementation of the `revenue.contributors` hook (rights.hooks): the creator of a
post and the owners of the monetised cameos in its video."""

from __future__ import annotations

from cameos.models import Cameo, CameoStatus
from rights.split import Contributor, Party

from .models import Post


def post_contributors(*, post_id) -> list[Contributor]:
    """The author (creator) and one `cameo` contributor per cameo of the video whose owner
    turned monetisation on, is active, and whose cameo is still active. Unknown post: []."""
    post = Post.objects.filter(pk=post_id).only("author_id", "cameo_ids").first()
    if post is None:
        return []
    found = [Contributor(role="creator", party=Party("user", str(post.author_id)))]
    cameos = (
        Cameo.objects.filter(
            pk__in=post.cameo_ids or [],
            monetization_enabled=True,
            status=CameoStatus.ACTIVE,
            owner__is_active=True,
        )
        .order_by("pk")
        .values_list("owner_id", flat=True)
    )
    found += [Contributor(role="cameo", party=Party("user", str(owner))) for owner in cameos]
    return found
