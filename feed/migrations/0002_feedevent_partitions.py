from django.db import migrations

from feed.partitions import PARENT, create_parent_sql, ensure_partitions


def forwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for statement in create_parent_sql():
            cursor.execute(statement)
    ensure_partitions(schema_editor.connection)


def backwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {PARENT} CASCADE")


class Migration(migrations.Migration):
    dependencies = [("feed", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
