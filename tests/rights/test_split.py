"""The split engine (rights.split): exact sums, determinism, caps, the documented example."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rights.split import (
    PLATFORM,
    Contributor,
    Party,
    SplitPolicy,
    largest_remainder,
    split_exact,
    split_plan,
)

CREATOR = Contributor(role="creator", party=Party("user", "c"))


def user(name: str) -> Party:
    return Party("user", name)


def amounts(parts) -> dict[tuple[str, str], int]:
    return {(p.role, p.party.id): p.amount_micros for p in parts}


def test_worked_example_of_the_docs():
    # docs/rights.md "Revenue split": 10 units on a remix at depth 2 with one monetised cameo.
    contributors = [
        CREATOR,
        Contributor(role="cameo", party=user("m")),
        Contributor(role="ancestor", party=user("p"), depth=1),
        Contributor(role="ancestor", party=user("g"), depth=2),
    ]
    parts = split_plan(amount_micros=10_000_000, policy=SplitPolicy(), contributors=contributors)
    assert amounts(parts) == {
        ("platform", ""): 2_000_000,
        ("cameo", "m"): 800_000,
        ("ancestor", "p"): 1_152_000,
        ("ancestor", "g"): 288_000,
        ("creator", "c"): 5_760_000,
    }
    assert [p.role for p in parts] == ["platform", "cameo", "ancestor", "ancestor", "creator"]


def test_rounding_gives_leftover_micros_to_largest_remainders_with_stable_ties():
    assert largest_remainder(10, [("a", 1), ("b", 1), ("c", 1)]) == [4, 3, 3]
    assert largest_remainder(10, [("c", 1), ("b", 1), ("a", 1)]) == [3, 3, 4]
    assert largest_remainder(7, [("a", Fraction(1, 2)), ("b", Fraction(1, 2))]) == [4, 3]
    assert largest_remainder(0, [("a", 1)]) == [0]
    assert largest_remainder(5, [("a", 0), ("b", 3)]) == [0, 5]
    with pytest.raises(ValueError):
        largest_remainder(5, [])
    with pytest.raises(ValueError):
        largest_remainder(5, [("a", 0)])
    with pytest.raises(ValueError):
        largest_remainder(-1, [("a", 1)])


def test_one_micro_goes_to_one_party_deterministically():
    contributors = [CREATOR, Contributor(role="ancestor", party=user("p"), depth=1)]
    parts = split_plan(amount_micros=1, policy=SplitPolicy(), contributors=contributors)
    assert sum(p.amount_micros for p in parts) == 1
    assert amounts(parts) == {("platform", ""): 0, ("ancestor", "p"): 0, ("creator", "c"): 1}


def test_order_of_contributors_does_not_change_the_split():
    contributors = [
        CREATOR,
        *[Contributor(role="cameo", party=user(f"m{i}")) for i in range(5)],
        *[Contributor(role="ancestor", party=user(f"a{i}"), depth=i + 1) for i in range(4)],
        Contributor(role="ip", party=Party("holder", "h1"), share_bps=3000),
        Contributor(role="ip", party=Party("holder", "h2"), share_bps=4000),
    ]
    first = split_plan(amount_micros=999_999_937, policy=SplitPolicy(), contributors=contributors)
    for seed in range(20):
        shuffled = contributors[:]
        random.Random(seed).shuffle(shuffled)
        again = split_plan(amount_micros=999_999_937, policy=SplitPolicy(), contributors=shuffled)
        assert again == first


def test_caps_ip_cameo_and_depth():
    policy = SplitPolicy(
        platform_fee_bps=1000,
        ip_cap_bps=4000,
        cameo_bps=2000,
        cameo_cap_bps=3000,
        ancestor_bps=5000,
        ancestor_max_depth=2,
    )
    contributors = [
        CREATOR,
        Contributor(role="ip", party=Party("holder", "h1"), share_bps=6000),
        Contributor(role="ip", party=Party("holder", "h2"), share_bps=2000),
        *[Contributor(role="cameo", party=user(f"m{i}")) for i in range(3)],
        *[Contributor(role="ancestor", party=user(f"a{i}"), depth=i + 1) for i in range(5)],
    ]
    exact = {(r, p.id): v for r, p, v in split_exact(policy=policy, contributors=contributors)}
    net = Fraction(9, 10)
    # IP asked for 80% of the net; capped at 40%, shared 3:1.
    assert exact[("ip", "h1")] == net * Fraction(3, 10)
    assert exact[("ip", "h2")] == net * Fraction(1, 10)
    # Three cameos at 20% would be 60%: capped at 30% of what IP left, 10% each.
    after_ip = net * Fraction(6, 10)
    for i in range(3):
        assert exact[("cameo", f"m{i}")] == after_ip / 10
    rest = after_ip * Fraction(7, 10)
    # Only two ancestors are paid: creator R/2, parent R/4, grandparent R/4 (keeps all).
    assert exact[("creator", "c")] == rest / 2
    assert exact[("ancestor", "a0")] == rest / 4
    assert exact[("ancestor", "a1")] == rest / 4
    assert ("ancestor", "a2") not in exact
    assert sum(exact.values()) == 1


def test_same_party_in_two_cameos_is_one_line_and_roles_stay_apart():
    contributors = [
        CREATOR,
        Contributor(role="cameo", party=user("c")),
        Contributor(role="cameo", party=user("m")),
        Contributor(role="cameo", party=user("m")),
    ]
    parts = split_plan(amount_micros=1_000_000, policy=SplitPolicy(), contributors=contributors)
    keys = [(p.role, p.party.id) for p in parts]
    assert len(keys) == len(set(keys))
    assert ("cameo", "c") in keys and ("creator", "c") in keys
    assert amounts(parts)[("cameo", "m")] == 2 * amounts(parts)[("cameo", "c")]


def test_a_post_needs_exactly_one_creator():
    with pytest.raises(ValueError):
        split_plan(amount_micros=10, policy=SplitPolicy(), contributors=[])
    with pytest.raises(ValueError):
        split_plan(
            amount_micros=10,
            policy=SplitPolicy(),
            contributors=[CREATOR, Contributor(role="creator", party=user("x"))],
        )
    with pytest.raises(ValueError):
        SplitPolicy(platform_fee_bps=10_001)


contributor_lists = st.builds(
    lambda cameos, ancestors, ips: [
        CREATOR,
        *[Contributor(role="cameo", party=user(f"m{i}")) for i in cameos],
        *[Contributor(role="ancestor", party=user(f"a{d}"), depth=d) for d in ancestors],
        *[Contributor(role="ip", party=Party("holder", f"h{i}"), share_bps=b) for i, b in ips],
    ],
    st.lists(st.integers(0, 6), max_size=6),
    st.lists(st.integers(1, 8), max_size=8),
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10_000)), max_size=4),
)
policies = st.builds(
    SplitPolicy,
    platform_fee_bps=st.integers(0, 10_000),
    ip_cap_bps=st.integers(0, 10_000),
    cameo_bps=st.integers(0, 10_000),
    cameo_cap_bps=st.integers(0, 10_000),
    ancestor_bps=st.integers(0, 10_000),
    ancestor_max_depth=st.integers(0, 6),
)


@settings(max_examples=400, deadline=None)
@given(amount=st.integers(0, 10**15), policy=policies, contributors=contributor_lists)
def test_parts_always_add_up_exactly_and_are_near_their_exact_share(amount, policy, contributors):
    parts = split_plan(amount_micros=amount, policy=policy, contributors=contributors)
    assert sum(p.amount_micros for p in parts) == amount
    for p in parts:
        assert p.amount_micros >= 0
        # Largest remainder never moves a part by a whole micro or more.
        assert abs(p.amount_micros - p.exact) < 1
    assert split_plan(amount_micros=amount, policy=policy, contributors=contributors) == parts
    depths = [p for p in parts if p.role == "ancestor"]
    assert len(depths) <= policy.ancestor_max_depth
    assert PLATFORM in {p.party for p in parts} or policy.platform_fee_bps == 0
