"""Back-fills what admission now does for every new remix (issue #27): a remix carries its
parent's cameos. Remixes made before that have no appearance rows for the likenesses they took
from their parents, so their owners could not see them and revocation could not reach them.

Each pass copies the parent video's appearances to the remix videos one level down (drafts
included, since a draft's generation names the post it remixes), until a pass adds nothing.
Jobs still queued or running get the same cameos, so the worker re-checks consent for them.
Posts' denormalised `cameo_ids` are refreshed from the rows. Nothing is taken down here:
the owners of those cameos now see the videos under /cameos/{id}/appearances and decide.
"""

from django.db import migrations

COPY_APPEARANCES = """
INSERT INTO generation_appearance (video_id, cameo_id, instructions_version, created_at)
SELECT v.id, a.cameo_id, a.instructions_version, now()
FROM generation_video v
JOIN generation_generation g ON g.id = v.generation_id
JOIN feed_post p ON p.id = g.remix_of_id
JOIN generation_appearance a ON a.video_id = p.video_id
ON CONFLICT DO NOTHING
"""

LINK_JOBS = """
INSERT INTO generation_generationcameo (generation_id, cameo_id, instructions_version, position)
SELECT g.id, a.cameo_id, a.instructions_version, 100
FROM generation_generation g
JOIN feed_post p ON p.id = g.remix_of_id
JOIN generation_appearance a ON a.video_id = p.video_id
WHERE g.status IN ('queued', 'running')
ON CONFLICT DO NOTHING
"""

REFRESH_POSTS = """
UPDATE feed_post p SET cameo_ids = sub.ids
FROM (
    SELECT a.video_id, jsonb_agg(a.cameo_id::text ORDER BY a.created_at, a.id) AS ids
    FROM generation_appearance a GROUP BY a.video_id
) sub
WHERE sub.video_id = p.video_id AND p.cameo_ids::jsonb IS DISTINCT FROM sub.ids
"""


def inherit(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for _ in range(10_000):  # one level per pass; a chain is never deeper than its posts
            cursor.execute(COPY_APPEARANCES)
            if cursor.rowcount == 0:
                break
        cursor.execute(LINK_JOBS)
        cursor.execute(REFRESH_POSTS)


class Migration(migrations.Migration):
    dependencies = [
        ("feed", "0004_postcounter_completes_see_less"),
        ("generation", "0002_remix_of_index"),
        ("cameos", "0001_initial"),
    ]

    operations = [migrations.RunPython(inherit, migrations.RunPython.noop)]
