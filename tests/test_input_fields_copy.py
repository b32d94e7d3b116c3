"""config.core.fields.InputSerializer copies its declared fields more cheaply than DRF's deep
copy: every request body serializer in Riff must validate exactly as it would with DRF's."""

from __future__ import annotations

import pytest
from django.urls import get_resolver
from rest_framework import serializers

from config.core.fields import InputSerializer, _field_copy

# Some validators read the database (a username taken, an invite used).
pytestmark = pytest.mark.django_db


def _input_serializers() -> list[type]:
    get_resolver().url_patterns  # noqa: B018 - imports every view, so every serializer
    found, todo = [], [InputSerializer]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return found


# Per field: a few values of every JSON kind, right and wrong, and hostile ones.
VALUES = [
    None,
    "",
    "  ",
    "ok",
    "x" * 5000,
    "00000000-0000-0000-0000-000000000000",
    "9:16",
    "2024-02-29",
    "a@b.example",
    0,
    -1,
    7,
    2**40,
    1.5,
    True,
    False,
    [],
    ["ok"],
    ["00000000-0000-0000-0000-000000000000"] * 2,
    [1, 2],
    {},
    {"a": 1},
]


def _payloads(cls) -> list[dict]:
    names = list(cls._declared_fields)
    payloads = [{}, {"unknown": 1}]
    for name in names:
        payloads += [{name: value} for value in VALUES]
    for value in VALUES[:12]:
        payloads.append(dict.fromkeys(names, value))
    return payloads


def _outcome(cls, payload):
    serializer = cls(data=payload, context={})
    try:
        valid = serializer.is_valid()
    except Exception as error:  # noqa: BLE001 - a view-only validator may need the request
        return ("raised", type(error).__name__, str(error))
    return (valid, serializer.errors, serializer.validated_data if valid else None)


@pytest.mark.parametrize("cls", _input_serializers(), ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_validation_is_drfs_own(cls):
    deep = type(f"Deep{cls.__name__}", (cls,), {"get_fields": serializers.Serializer.get_fields})
    for payload in _payloads(cls):
        assert _outcome(cls, payload) == _outcome(deep, payload), payload


def test_copies_are_bound_to_their_own_serializer_and_leave_the_declared_fields_alone():
    from generation.serializers import GenerationIn

    declared = GenerationIn._declared_fields
    before = {name: (f.source, f.label) for name, f in declared.items()}
    one, two = GenerationIn(data={}), GenerationIn(data={})
    for name in declared:
        a, b = one.fields[name], two.fields[name]
        assert a is not b and a is not declared[name]
        assert a.parent is one and b.parent is two
        assert (a.field_name, a.source, a.source_attrs) == (name, name, [name])
    cameos = one.fields["cameos"]
    assert cameos.child is not two.fields["cameos"].child
    assert cameos.child is not declared["cameos"].child and cameos.child.parent is cameos
    assert {name: (f.source, f.label) for name, f in declared.items()} == before
    assert not one.is_valid() and not two.is_valid()
    assert one.errors == two.errors == {"prompt": ["This field is required."]}


def test_other_fields_are_deep_copied():
    nested = serializers.ListField(child=serializers.DictField())
    assert type(_field_copy(nested)) is serializers.ListField
    copied = _field_copy(nested)
    assert copied.child is not nested.child and copied.child.parent is copied
    files = serializers.FileField()
    assert _field_copy(files) is not files


def test_a_literal_mutable_default_is_not_shared():
    for field in (
        serializers.ListField(child=serializers.CharField(), default=[]),
        serializers.CharField(default=[]),
        serializers.ListField(child=serializers.ListField(child=serializers.CharField())),
    ):
        copied = _field_copy(field)
        assert copied is not field
        if isinstance(field.default, list):
            assert copied.default == [] and copied.default is not field.default
    plain = serializers.ListField(child=serializers.CharField(), required=False)
    assert _field_copy(plain).child.parent is not plain
