from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from feed.serializers import PostOut
from generation.serializers import GenerationIn


class RemixIn(GenerationIn):
    """`POST /posts/{id}/remix`: a generation request whose parent is the path's post."""

    remix_of = None  # the path names the parent


class ChainPostOut(PostOut):
    """A post in a chain (lineage, tree). `state` is `live` for a post the viewer may see, with
    every post field; `unavailable` for one they may not (deleted, removed, blocked), with only
    `id`, `state` and `depth`, so the chain keeps its shape without showing what is hidden."""

    state = serializers.CharField(help_text="live | unavailable")

    class Meta(PostOut.Meta):
        fields = [*PostOut.Meta.fields, "state"]

    def get_fields(self):
        fields = super().get_fields()
        for name, f in fields.items():
            # Placeholders carry only these three; the schema must accept them, and a read-only
            # field is "required" in a response schema, so the rest are marked neither.
            required = name in ("id", "state", "depth", "children")
            f.required = required
            if not required:
                f.read_only = False
        return fields


class RemixTreeNodeOut(ChainPostOut):
    """A tree node: a chain post with its remixes (newest first), cut at the requested depth or
    the node cap; `remix_count` says how many a node has in all."""

    children = serializers.SerializerMethodField()

    class Meta(ChainPostOut.Meta):
        fields = [*ChainPostOut.Meta.fields, "children"]

    @extend_schema_field(
        {"type": "array", "items": {"$ref": "#/components/schemas/RemixTreeNodeOut"}}
    )
    def get_children(self, obj) -> list:  # filled in by remix.apis, never from a model
        return []


class RemixTreeOut(serializers.Serializer):
    root = RemixTreeNodeOut()
    depth = serializers.IntegerField(help_text="Levels below the root that were read.")
    truncated = serializers.BooleanField(help_text="The node cap cut the tree.")
    node_count = serializers.IntegerField()
