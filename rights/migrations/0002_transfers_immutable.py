"""Transfers and revenue events are insert-only, enforced by the database itself: a trigger
refuses every UPDATE and DELETE, whichever client or code path sends it (the ORM, the admin,
psql). Corrections are reversing transfers (rights.ledger.transfer_reverse).

TRUNCATE is not refused: it is the operator's tool (and the test runner's flush), never a
path an application query takes.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION rights_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is insert-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER rights_transfer_insert_only
    BEFORE UPDATE OR DELETE ON rights_transfer
    FOR EACH ROW EXECUTE FUNCTION rights_refuse_change();

CREATE TRIGGER rights_revenueevent_insert_only
    BEFORE DELETE ON rights_revenueevent
    FOR EACH ROW EXECUTE FUNCTION rights_refuse_change();

CREATE TRIGGER rights_revenueevent_fixed
    BEFORE UPDATE OF source, key, post_id, amount_micros, currency, held ON rights_revenueevent
    FOR EACH ROW EXECUTE FUNCTION rights_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS rights_revenueevent_fixed ON rights_revenueevent;
DROP TRIGGER IF EXISTS rights_revenueevent_insert_only ON rights_revenueevent;
DROP TRIGGER IF EXISTS rights_transfer_insert_only ON rights_transfer;
DROP FUNCTION IF EXISTS rights_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("rights", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
