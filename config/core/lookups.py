"""`field__any=values`: membership in a long list as one array parameter (issue #31).

`field__in=[...]` writes one placeholder per value. For the lists ranking uses (a For You
order is ranked from ~1,000 candidate ids, and their counts, remix attempts and likes are read
by the same list), the list cost more than the queries: Django prepared every value on its
own, and psycopg, which binds on the client, parsed a statement with a thousand placeholders
and quoted each value (that text is never cached: each list length is a new statement). In a
first For You visit those were 35-45 % of the ranking's CPU (docs/bench-feed.md).

`field = ANY(%s)` takes the whole list as one array parameter; PostgreSQL plans it as it plans
`IN (...)` (it turns an IN list into exactly that). An empty list matches nothing, as
`__in=[]` does, but the query still runs. A UUID column (every such list here) gets the array
as one text literal (`'{...}'::uuid[]`, `uuid_array`); other fields' values are prepared by
the field (`get_db_prep_value`) and written by psycopg's array dumper. Import this module
where `__any` is used: it registers the lookup on every field.
"""

from __future__ import annotations

import uuid

from django.db.models import Field, Lookup, UUIDField
from django.db.models.fields.related import ForeignKey, ForeignObject


def _uuid_column(field) -> bool:
    target = field.target_field if isinstance(field, ForeignKey) else field
    return isinstance(target, UUIDField)


def _as_uuid(value) -> uuid.UUID:
    return value if type(value) is uuid.UUID else uuid.UUID(str(value))


def uuid_array(values) -> str:
    """UUIDs (or their text) as one PostgreSQL array literal, for `= ANY(%s::uuid[])`: each is
    parsed as a UUID first, so the text joined is hex digits only, nothing to quote. (`hex`,
    32 digits, which PostgreSQL reads as a UUID too, costs a third of `str()`'s formatting:
    a ranking writes ~4,000.)"""
    return "{" + ",".join([_as_uuid(v).hex for v in values]) + "}"


class AnyOf(Lookup):
    lookup_name = "any"
    # The right-hand side is a list of plain values, prepared here as one parameter.
    prepare_rhs = False
    can_use_none_as_rhs = False

    def get_prep_lookup(self):
        rhs = self.rhs
        if isinstance(rhs, str | bytes) or hasattr(rhs, "resolve_expression"):
            raise TypeError("__any takes a list of values, not a string, query or expression")
        if not hasattr(rhs, "__iter__"):
            raise TypeError("__any takes a list of values")
        field = self.lhs.output_field
        if _uuid_column(field):
            return [_as_uuid(v) for v in self.rhs]
        return [field.get_prep_value(v) for v in self.rhs]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        if _uuid_column(field):
            # One text parameter in PostgreSQL's array syntax (`uuid_array`: hex digits only,
            # nothing to quote): psycopg quotes one string, in C, where a list goes element by
            # element through its Python array dumper.
            return f"{lhs} = ANY(%s::uuid[])", (*lhs_params, uuid_array(self.rhs))
        values = [field.get_db_prep_value(v, connection, prepared=True) for v in self.rhs]
        return f"{lhs} = ANY(%s)", (*lhs_params, values)


Field.register_lookup(AnyOf)
# Relations keep lookups of their own (related_lookups): a foreign key's column takes it too.
ForeignObject.register_lookup(AnyOf)
