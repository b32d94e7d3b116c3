"""GET /posts/{id}/lineage and /tree: shapes, placeholders, caps and query bounds."""

from __future__ import annotations

import pytest

from accounts.services import block_create
from tests.conftest import client_for
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db

# Auth, the post, blocks, the walk, the visible posts and their counts: a constant however deep
# the chain (11 today, one spare) ...
LINEAGE_QUERIES = 12


def tree_queries(depth: int) -> int:
    """... and for a tree, the same constant plus at most one query per level (9 + depth today,
    one spare), however wide."""
    return 10 + depth


def lineage(api, post, **params):
    return api.get(f"/api/v1/posts/{post.pk}/lineage", params)


# --- lineage ----------------------------------------------------------------------------------


def test_lineage_runs_from_parent_to_root(api, user, other, make_post):
    root = make_post(other)
    child = make_post(user, remix_of=root)
    grandchild = make_post(other, remix_of=child)
    body = lineage(api, grandchild).json()
    assert body["next"] is None
    assert [(p["id"], p["state"], p["depth"]) for p in body["results"]] == [
        (str(child.pk), "live", 1),
        (str(root.pk), "live", 0),
    ]
    assert body["results"][0]["author"]["username"] == user.username
    assert body["results"][1]["remix_count"] == 1
    assert lineage(api, root).json() == {"results": [], "next": None}


def test_lineage_of_a_1000_deep_chain_is_paged_in_bounded_queries(
    api, user, make_post, bulk_chain, django_assert_max_num_queries
):
    root = make_post(user)
    chain = bulk_chain(user, root, 1000)
    leaf = chain[-1]
    expected = [str(p.pk) for p in reversed([root, *chain[:-1]])]
    seen, url = [], f"/api/v1/posts/{leaf.pk}/lineage?limit=100"
    while url:
        with django_assert_max_num_queries(LINEAGE_QUERIES):
            page = api.get(url).json()
        assert len(page["results"]) == 100
        seen += page["results"]
        url = page["next"]
    assert [p["id"] for p in seen] == expected
    assert [p["depth"] for p in seen] == list(range(999, -1, -1))
    assert all(p["state"] == "live" and p["root"] == str(root.pk) for p in seen)


def test_lineage_shows_hidden_ancestors_as_placeholders(api, user, other, make_user, make_post):
    carol = make_user(username="carol")
    root = make_post(other)
    deleted = make_post(other, remix_of=root)
    blocked = make_post(carol, remix_of=deleted)
    leaf = make_post(other, remix_of=blocked)
    client_for(other).delete(f"/api/v1/posts/{deleted.pk}")
    block_create(blocker=carol, blocked=user)
    results = lineage(api, leaf).json()["results"]
    assert results[:2] == [
        {"id": str(blocked.pk), "state": "unavailable", "depth": 2},
        {"id": str(deleted.pk), "state": "unavailable", "depth": 1},
    ]
    assert (results[2]["id"], results[2]["state"]) == (str(root.pk), "live")


def test_lineage_of_an_invisible_post_and_bad_cursors(api, user, other, make_post):
    post = make_post(other)
    assert_error(lineage(api, post, cursor="nonsense"), 400, "invalid", "cursor")
    block_create(blocker=other, blocked=user)
    assert_error(lineage(api, post), 404, "not_found")


# --- tree -------------------------------------------------------------------------------------


def tree(api, post, **params):
    return api.get(f"/api/v1/posts/{post.pk}/tree", params)


def ids(nodes):
    return [n["id"] for n in nodes]


def test_tree_nests_descendants_down_to_the_depth_asked(api, user, other, make_post):
    root = make_post(other)
    a = make_post(user, remix_of=root)
    b = make_post(other, remix_of=root)
    a1 = make_post(other, remix_of=a)
    a11 = make_post(user, remix_of=a1)
    body = tree(api, root).json()
    assert (body["depth"], body["truncated"], body["node_count"]) == (3, False, 4)
    top = body["root"]
    assert (top["id"], top["state"], top["remix_count"]) == (str(root.pk), "live", 2)
    assert ids(top["children"]) == [str(b.pk), str(a.pk)]  # newest first
    node_a = top["children"][1]
    assert ids(node_a["children"]) == [str(a1.pk)]
    assert ids(node_a["children"][0]["children"]) == [str(a11.pk)]

    shallow = tree(api, root, depth=1).json()
    assert shallow["node_count"] == 2
    leaf_a = shallow["root"]["children"][1]
    # The cut is visible: no children sent, but remix_count says there are more to page.
    assert (leaf_a["children"], leaf_a["remix_count"]) == ([], 1)
    # A subtree starts anywhere in the chain.
    sub = tree(api, a).json()["root"]
    assert (sub["id"], ids(sub["children"])) == (str(a.pk), [str(a1.pk)])


def test_tree_keeps_hidden_posts_only_as_placeholders_over_visible_remixes(
    api, user, other, make_user, make_post
):
    carol = make_user(username="carol")
    root = make_post(other)
    removed = make_post(other, remix_of=root)
    under_removed = make_post(other, remix_of=removed)
    blocked_leaf = make_post(carol, remix_of=root)
    blocked_mid = make_post(carol, remix_of=root)
    under_blocked = make_post(other, remix_of=blocked_mid)
    client_for(other).delete(f"/api/v1/posts/{removed.pk}")
    block_create(blocker=user, blocked=carol)
    body = tree(api, root).json()
    children = body["root"]["children"]
    assert ids(children) == [str(blocked_mid.pk), str(removed.pk)]
    assert str(blocked_leaf.pk) not in str(body)
    for node, child in ((children[0], under_blocked), (children[1], under_removed)):
        assert set(node) == {"id", "state", "depth", "children"}
        assert (node["state"], node["depth"]) == ("unavailable", 1)
        assert ids(node["children"]) == [str(child.pk)]
        assert node["children"][0]["state"] == "live"


def test_tree_of_a_5000_wide_fan_is_capped_exactly_in_bounded_queries(
    api, user, other, make_post, bulk_fan, django_assert_max_num_queries
):
    root = make_post(other)
    fan = bulk_fan(user, root, 5000)
    for depth in (1, 10):
        with django_assert_max_num_queries(tree_queries(depth)):
            body = tree(api, root, depth=depth).json()
        assert (body["truncated"], body["node_count"]) == (True, 500)
        top = body["root"]
        assert top["remix_count"] == 5000
        newest = sorted(fan, key=lambda p: (p.created_at, p.pk), reverse=True)[:500]
        assert ids(top["children"]) == [str(p.pk) for p in newest]


def test_tree_cap_counts_across_levels(
    api, user, other, make_post, bulk_fan, bulk_chain, django_assert_max_num_queries
):
    root = make_post(other)
    chain = bulk_chain(user, root, 12)  # one 12-deep branch, older than the fan
    bulk_fan(user, root, 499)
    body = tree(api, root, depth=10).json()
    # Level 1: 499 fan posts + the chain's first post = 500 nodes; nothing deeper fits.
    assert (body["truncated"], body["node_count"]) == (True, 500)
    assert ids(body["root"]["children"])[-1] == str(chain[0].pk)
    assert body["root"]["children"][-1]["children"] == []
    with django_assert_max_num_queries(tree_queries(10)):
        deep = tree(api, chain[0], depth=10).json()
    assert (deep["truncated"], deep["node_count"]) == (False, 10)


@pytest.mark.parametrize("depth", ["0", "11", "two"])
def test_tree_depth_is_validated(api, other, make_post, depth):
    post = make_post(other)
    assert_error(tree(api, post, depth=depth), 400, "invalid", "depth")
