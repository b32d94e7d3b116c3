"""What a report or an event is about: find the subject, who is answerable for it, what a
reporter may see, and how far it reaches. moderation is the top layer: it reads every app."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from accounts.models import Follow, User
from cameos.models import Cameo, CameoStatus
from config.core.errors import Invalid, NotFound
from feed.models import Comment, Post
from feed.selectors import post_counts, posts_visible_to
from generation.models import Appearance, Generation, Video
from generation.selectors import videos_visible_to

from .models import SubjectType

T = SubjectType


@dataclass
class Subject:
    type: str
    id: str
    obj: Any
    owner: User | None  # who is answerable (and may appeal)

    @property
    def post(self) -> Post | None:
        """The post it is, or shows in (for reach and for takedowns)."""
        if self.type == T.POST:
            return self.obj
        if self.type == T.COMMENT:
            return self.obj.post
        video = self.video
        return Post.objects.filter(video=video).first() if video is not None else None

    @property
    def video(self) -> Video | None:
        if self.type == T.VIDEO:
            return self.obj
        if self.type == T.POST:
            return self.obj.video
        if self.type == T.GENERATION:
            return Video.objects.filter(generation=self.obj).first()
        return None


def _uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise Invalid("subject_id is not an id.", fields={"subject_id": ["Invalid."]}) from None


def subject_get(subject_type: str, subject_id: str) -> Subject:
    """The subject, whatever its state (moderators see removed things too); 404 if none."""
    if subject_type not in T.values:
        raise Invalid("Unknown subject_type.", fields={"subject_type": ["Invalid."]})
    pk = _uuid(subject_id)
    obj: Any
    if subject_type == T.POST:
        obj = Post.objects.select_related("author", "video").filter(pk=pk).first()
        owner = obj.author if obj else None
    elif subject_type == T.VIDEO:
        obj = Video.objects.select_related("owner").filter(pk=pk).first()
        owner = obj.owner if obj else None
    elif subject_type == T.COMMENT:
        obj = Comment.objects.select_related("author", "post").filter(pk=pk).first()
        owner = obj.author if obj else None
    elif subject_type == T.CAMEO:
        obj = Cameo.objects.select_related("owner").filter(pk=pk).first()
        owner = obj.owner if obj else None
    elif subject_type == T.GENERATION:
        obj = Generation.objects.select_related("owner").filter(pk=pk).first()
        owner = obj.owner if obj else None
    else:
        obj = User.objects.filter(pk=pk).first()
        owner = obj
    if obj is None:
        raise NotFound("No such subject.")
    return Subject(subject_type, str(pk), obj, owner)


def subject_for_reporter(user: User, subject_type: str, subject_id: str) -> Subject:
    """The subject when the reporter can see it; the same 404 as a missing one otherwise."""
    subject = subject_get(subject_type, subject_id)
    pk, visible = subject.obj.pk, True
    if subject_type == T.POST:
        visible = posts_visible_to(user).filter(pk=pk).exists()
    elif subject_type == T.VIDEO:
        visible = videos_visible_to(user).filter(pk=pk).exists()
    elif subject_type == T.COMMENT:
        visible = posts_visible_to(user).filter(pk=subject.obj.post_id).exists()
    elif subject_type == T.CAMEO:
        # An active cameo's handle is public; others only to their owner.
        visible = subject.obj.status == CameoStatus.ACTIVE or subject.owner == user
    elif subject_type == T.GENERATION:
        visible = subject.owner == user
    elif subject_type == T.USER:
        visible = subject.obj.is_active
    if not visible:
        raise NotFound("No such subject.")
    return subject


def reach(subject: Subject) -> int:
    """How many people it reaches: the post's views, or a user's followers."""
    if subject.type == T.USER:
        return Follow.objects.filter(followee_id=subject.obj.pk).count()
    post = subject.post
    if post is None:
        return 0
    return int(post_counts([post.pk]).get(post.pk, {}).get("views") or 0)


def shows_cameo_of(subject: Subject, user: User) -> bool:
    """Whether `user` owns a cameo that appears in the subject (a likeness report by the
    person themselves jumps the queue)."""
    video = subject.video
    if video is not None:
        return Appearance.objects.filter(video=video, cameo__owner=user).exists()
    return subject.type == T.CAMEO and subject.owner == user
