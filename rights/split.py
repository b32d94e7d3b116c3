"""The split engine: who gets how many micros of a revenue event. Pure functions, no database.

`split_plan()` turns an amount and the contributors of a post into parts that add up to the
amount exactly. Each contributor's exact share is a rational number (`Fraction`), so nothing
is lost to floats; the shares are then rounded to whole micros by `largest_remainder()`. The
formula, with a worked example, is in docs/rights.md ("Revenue split").

Roles, in the order the money is taken:

- platform: `platform_fee_bps` of the amount;
- ip: holders of licensed claims, each its `share_bps` of what is left after the fee (the net),
  all of them together capped at `ip_cap_bps` of the net (scaled down pro rata when over);
- cameo: each monetised cameo in the video `cameo_bps` of the net, capped together at
  `cameo_cap_bps` of the net;
- creator and ancestors: the rest R. The parent takes `ancestor_bps` of what the creator would
  get (R), the grandparent the same fraction of the parent's take, and so on up to
  `ancestor_max_depth` ancestors; each keeps what it does not pass up, the last one keeps all
  it receives. Creator: R(1-a); ancestor k < D: R a^k (1-a); ancestor D: R a^D.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

BPS = 10_000

# Stable order of roles: the tie-break between equal remainders and the order of the parts.
ROLE_ORDER = ("platform", "ip", "cameo", "ancestor", "creator")


@dataclass(frozen=True, order=True)
class Party:
    type: str  # user | holder | platform
    id: str  # "" for the platform


PLATFORM = Party("platform", "")


@dataclass(frozen=True)
class Contributor:
    """Someone the `revenue.contributors` hook says took part in a post.

    `role` is ip, cameo, ancestor or creator. `depth` is 1 for the parent of the post, 2 for the
    grandparent... (ancestors only). `share_bps` is a licensed asset's share (ip only).
    """

    role: str
    party: Party
    depth: int = 0
    share_bps: int = 0
    # The claim an `ip` contributor comes from (rights.claims): a disputed one holds revenue.
    claim: str = ""

    def as_json(self) -> dict:
        return {
            "role": self.role,
            "party": [self.party.type, self.party.id],
            "depth": self.depth,
            "share_bps": self.share_bps,
            "claim": self.claim,
        }

    @classmethod
    def from_json(cls, data: dict) -> Contributor:
        return cls(
            role=data["role"],
            party=Party(*data["party"]),
            depth=data["depth"],
            share_bps=data["share_bps"],
            claim=data["claim"],
        )


@dataclass(frozen=True)
class SplitPolicy:
    platform_fee_bps: int = 2000
    ip_cap_bps: int = 5000
    cameo_bps: int = 1000
    cameo_cap_bps: int = 3000
    ancestor_bps: int = 2000
    ancestor_max_depth: int = 3

    def as_json(self) -> dict:
        return dict(self.__dict__)

    def __post_init__(self) -> None:
        for name in (
            "platform_fee_bps",
            "ip_cap_bps",
            "cameo_bps",
            "cameo_cap_bps",
            "ancestor_bps",
        ):
            value = getattr(self, name)
            if not 0 <= value <= BPS:
                raise ValueError(f"{name} must be within 0..{BPS}, not {value}")
        if self.ancestor_max_depth < 0:
            raise ValueError("ancestor_max_depth must be >= 0")


@dataclass(frozen=True)
class Part:
    role: str
    party: Party
    amount_micros: int
    # The exact share before rounding (for docs and tests; not stored).
    exact: Fraction = field(default=Fraction(0), compare=False)


def largest_remainder(amount: int, weights: Sequence[tuple[Hashable, Fraction | int]]) -> list[int]:
    """`amount` divided in proportion to `weights`, in whole units that add up to `amount`.

    Every key gets the floor of its exact share; the units left over (fewer than the number of
    keys) go one each to the largest fractional remainders. Ties go to the key that sorts first
    (keys must be mutually comparable), so the answer depends only on the input, never on the
    order it came in or on the platform.
    """
    if amount < 0:
        raise ValueError("amount must be >= 0")
    total = sum(Fraction(w) for _, w in weights)
    if any(Fraction(w) < 0 for _, w in weights):
        raise ValueError("weights must be >= 0")
    if not weights:
        if amount:
            raise ValueError("no weights to divide a non-zero amount by")
        return []
    if total == 0:
        raise ValueError("weights must not all be zero")
    exact = [Fraction(w) / total * amount for _, w in weights]
    floors = [e.numerator // e.denominator for e in exact]
    left = amount - sum(floors)
    ranked = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), weights[i][0]))
    for i in ranked[:left]:
        floors[i] += 1
    return floors


def _ancestor_shares(policy: SplitPolicy, depths: int) -> list[Fraction]:
    """Fractions of R for [creator, ancestor 1, ..., ancestor `depths`]; they sum to 1."""
    a = Fraction(policy.ancestor_bps, BPS)
    shares = [Fraction(1)]  # what the creator would get with no ancestors
    for _ in range(depths):
        passed = shares[-1] * a
        shares[-1] -= passed
        shares.append(passed)
    return shares


def split_exact(
    *, policy: SplitPolicy, contributors: Iterable[Contributor]
) -> list[tuple[str, Party, Fraction]]:
    """(role, party, exact fraction of the amount) for every party that gets something.

    The same (role, party) met twice (two monetised cameos of one owner, a creator who also
    authored an ancestor is *not* merged: other role) is merged into one line.
    """
    contributors = list(contributors)
    creators = {c.party for c in contributors if c.role == "creator"}
    if len(creators) != 1:
        raise ValueError(f"a post has exactly one creator, got {len(creators)}")
    (creator,) = creators
    fee = Fraction(policy.platform_fee_bps, BPS)
    net = 1 - fee
    lines: dict[tuple[str, Party], Fraction] = {}

    def add(role: str, party: Party, value: Fraction) -> None:
        if value:
            lines[(role, party)] = lines.get((role, party), Fraction(0)) + value

    add("platform", PLATFORM, fee)

    ip = [c for c in contributors if c.role == "ip" and c.share_bps > 0]
    ip_total = sum(Fraction(min(c.share_bps, BPS), BPS) for c in ip)
    ip_cap = Fraction(policy.ip_cap_bps, BPS)
    ip_scale = ip_cap / ip_total if ip_total > ip_cap else Fraction(1)
    for c in ip:
        add("ip", c.party, net * Fraction(min(c.share_bps, BPS), BPS) * ip_scale)
    ip_taken = net * min(ip_total, ip_cap)

    cameos = [c for c in contributors if c.role == "cameo"]
    per_cameo = Fraction(policy.cameo_bps, BPS)
    cameo_total = per_cameo * len(cameos)
    cameo_cap = Fraction(policy.cameo_cap_bps, BPS)
    if cameo_total > cameo_cap:
        per_cameo = cameo_cap / len(cameos)
    # The cameo pool comes out of what is left after IP, so the two can never exceed the net.
    cameo_base = net - ip_taken
    for c in cameos:
        add("cameo", c.party, cameo_base * per_cameo)
    rest = cameo_base * (1 - per_cameo * len(cameos))

    # Ancestors in depth order; a depth given twice keeps the first (hooks should not do that).
    chain: dict[int, Party] = {}
    for c in sorted((c for c in contributors if c.role == "ancestor"), key=lambda c: c.depth):
        if c.depth >= 1 and c.depth not in chain:
            chain[c.depth] = c.party
    ordered = [chain[d] for d in sorted(chain)][: policy.ancestor_max_depth]
    shares = _ancestor_shares(policy, len(ordered))
    add("creator", creator, rest * shares[0])
    for party, share in zip(ordered, shares[1:], strict=True):
        add("ancestor", party, rest * share)
    return [(role, party, value) for (role, party), value in lines.items()]


def _sort_key(role: str, party: Party) -> tuple:
    return (ROLE_ORDER.index(role), party.type, party.id)


def split_plan(
    *, amount_micros: int, policy: SplitPolicy, contributors: Iterable[Contributor]
) -> list[Part]:
    """The parts of `amount_micros`: they add up to it exactly, every part >= 0, and the same
    input always gives the same parts in the same order (role order, then party)."""
    exact = split_exact(policy=policy, contributors=contributors)
    exact.sort(key=lambda line: _sort_key(line[0], line[1]))
    keyed = [(_sort_key(role, party), value) for role, party, value in exact]
    amounts = largest_remainder(amount_micros, keyed)
    return [
        Part(role=role, party=party, amount_micros=amount, exact=value * amount_micros)
        for (role, party, value), amount in zip(exact, amounts, strict=True)
    ]
