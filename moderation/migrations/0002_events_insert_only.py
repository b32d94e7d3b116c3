"""Moderation events are insert-only, enforced by the database: a trigger refuses UPDATE and
DELETE from any client (the audit trail can't be edited; a mistake is reversed by a new event).
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION moderation_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is insert-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER moderation_event_insert_only
    BEFORE UPDATE OR DELETE ON moderation_moderationevent
    FOR EACH ROW EXECUTE FUNCTION moderation_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS moderation_event_insert_only ON moderation_moderationevent;
DROP FUNCTION IF EXISTS moderation_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("moderation", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
