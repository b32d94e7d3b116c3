"""Serializer bases and fields for strict request bodies and exact response bodies.

- `InputSerializer`: every request body. A key it does not declare is refused with 400
  `invalid` naming it (`fields.<name>`), instead of being dropped: a client that sends
  `"remember": true` or `"duration": 5` learns at once that the server ignores it.
- `OutputModelSerializer`: every response built from a model. Each listed field is always in
  the body (`null` when empty), so the schema marks it required; a field that may be left out
  must be declared on the serializer with `required=False`.
- The `Strict*` fields refuse what DRF would silently coerce (`{"bio": 0}` -> "0").
"""

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from rest_framework import serializers

UNKNOWN_FIELD = "Unknown field."
# A hostile body may carry thousands of keys, or a megabyte-long one; the error names a few.
_UNKNOWN_REPORTED = 10
_NAME_REPORTED_CHARS = 100


def refuse_unknown_fields(data: Any, allowed) -> None:
    """Raises a ValidationError naming the keys of `data` outside `allowed` (a mapping or
    multipart QueryDict; anything else is left to the serializer to refuse)."""
    if not isinstance(data, Mapping):
        return
    unknown = [key for key in data if key not in allowed]
    if unknown:
        names = sorted(str(key)[:_NAME_REPORTED_CHARS] for key in unknown)[:_UNKNOWN_REPORTED]
        raise serializers.ValidationError({name: [UNKNOWN_FIELD] for name in names})


# Field classes whose instances a request changes only through `bind` (its name, parent,
# label and source), so a shallow copy is as good as DRF's deep one: their validators, error
# messages and choices are read, never written, while validating.
_SHALLOW_COPIED = (
    serializers.CharField,
    serializers.ChoiceField,
    serializers.UUIDField,
    serializers.IntegerField,
    serializers.FloatField,
    serializers.BooleanField,
    serializers.DateField,
)


def _field_copy(field):
    """What `copy.deepcopy(field)` gives a serializer, cheaper for the plain fields above and
    a `ListField` of one: DRF rebuilds each field from its arguments (validators and all),
    which was 60 % of validating `POST /generations`' body (docs/bench-feed.md). Anything else
    (nested serializers, files, JSON) is deep-copied as DRF does."""
    if _plain(field):
        return _unbound(field)
    listed_plainly = type(field) is serializers.ListField and not _shared_default(field)
    if listed_plainly and _plain(field.child):
        listed = _unbound(field)
        listed.child = _unbound(field.child)
        listed.child.bind(field_name="", parent=listed)  # as ListField.__init__ binds it
        return listed
    return copy.deepcopy(field)


def _shared_default(field) -> bool:
    # A literal list or dict default would be shared by every request's copy (and the data a
    # view is given): such a field is deep-copied, as DRF does.
    return isinstance(field.default, (list, dict, set))


def _plain(field) -> bool:
    return isinstance(field, _SHALLOW_COPIED) and not _shared_default(field)


def _unbound(field):
    """A shallow copy of `field` as its constructor left it: what `bind` fills in (the source
    and label it defaults from the name) back to the arguments it was made with."""
    copied = copy.copy(field)
    copied.source = field._kwargs.get("source")
    copied.label = field._kwargs.get("label")
    return copied


# No docstrings on these two bases: drf-spectacular would show them as the description of
# every component that inherits them.
class InputSerializer(serializers.Serializer):
    # A request body: only the declared, writable fields are accepted (nested ones too).

    def get_fields(self):
        # DRF: `copy.deepcopy(self._declared_fields)`, each field rebuilt per request.
        return {name: _field_copy(field) for name, field in self._declared_fields.items()}

    @classmethod
    def refuse_unknown(cls, data: Any) -> None:
        """For views that read a multipart body themselves: the same refusal, up front."""
        cls().refuse_unknown_keys(data)

    def refuse_unknown_keys(self, data: Any) -> None:
        allowed = {name for name, field in self.fields.items() if not field.read_only}
        refuse_unknown_fields(data, allowed)

    def to_internal_value(self, data):
        self.refuse_unknown_keys(data)
        return super().to_internal_value(data)


class OutputModelSerializer(serializers.ModelSerializer):
    # A response body from a model: every field in `Meta.fields` is always present, so each is
    # read-only, which drf-spectacular states as required. Without this a model field with a
    # default (`status`, `created_at`) would be optional to a generated client.

    def get_fields(self):
        # ModelSerializer derives every field from the model again for each serializer object
        # (labels, validators, lazy translations): a fifth of `GET /me`'s time. The fields of a
        # class never change, so they are derived once per class and copied (DRF copies
        # declared fields the same way); a subclass that adjusts them gets its own copy.
        cls = type(self)
        template = _FIELDS.get(cls)
        if template is None:
            template = _FIELDS[cls] = super().get_fields()
        return copy.deepcopy(template)

    def get_extra_kwargs(self):
        extra = super().get_extra_kwargs()
        for name in getattr(self.Meta, "fields", ()):
            extra[name] = {**extra.get(name, {}), "read_only": True}
        return extra


_FIELDS: dict[type, dict] = {}
_DATETIME = serializers.DateTimeField()


def iso_datetime(value: datetime | None) -> str | None:
    """A datetime as DRF's DateTimeField renders it (ISO 8601 in the current time zone, `Z`
    for UTC), for the hot paths that build their JSON by hand (feed.hydrate, `GET /me`),
    without DRF's per-call time zone lookups when the zone is UTC (the setting)."""
    if value is None:
        return None
    if settings.TIME_ZONE != "UTC":
        return _DATETIME.to_representation(value)
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class StrictCharField(serializers.CharField):
    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictUUIDField(serializers.UUIDField):
    """DRF's UUIDField turns integers (and so `false`) into UUIDs; ids are strings here."""

    default_error_messages = {"not_a_string": "Must be a UUID string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON true/false only: DRF would also take 0/1 and "yes", which the schema forbids."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data
