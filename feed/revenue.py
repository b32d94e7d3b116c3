"""feed's implementation of the `revenue.contributors` hook (rights.hooks): the creator of a
post, the owners of the monetised cameos in its video, and the holders of its licensed IP
claims (rights knows claims by video; only feed knows which video a post shows)."""

from __future__ import annotations

from cameos.models import Cameo, CameoStatus
from rights.claims import claim_contributors
from rights.split import Contributor, Party

from .models import Post


def post_contributors(*, post_id) -> list[Contributor]:
    """The author (creator), one `cameo` contributor per cameo of the video whose owner
    turned monetisation on, is active, and whose cameo is still active, and one `ip`
    contributor per licensed claim on the video. Unknown post: []."""
    post = Post.objects.filter(pk=post_id).only("author_id", "cameo_ids", "video_id").first()
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
    found += claim_contributors(video_id=post.video_id)
    return found
