from django.db import migrations

# Per-post signals for ranking (completions, see-less over the last week) count a post's events
# by this index instead of scanning the week's partition. Created on the partitioned parent,
# so every partition, present and future, gets it.
SQL = "CREATE INDEX IF NOT EXISTS feed_event_post_idx ON feed_feedevent (post_id, kind, created_at)"


class Migration(migrations.Migration):
    dependencies = [("feed", "0002_feedevent_partitions")]

    operations = [
        migrations.RunSQL(SQL, "DROP INDEX IF EXISTS feed_event_post_idx"),
    ]
