"""The rights catalogue: holders, their members, IP assets with versioned policies, and the
IP decision every generation gets (docs/rights.md "Catalogue" and "Detection").

Opt-in: only what a holder registers is protected. The decision for a request is the most
restrictive policy of every asset it matches (blocked > licensed > allowed); no match is
`allowed`. Matches come from
- the asset's name and aliases in the prompt or in a cameo's instructions (rights.detection,
  normalised against case, NFKC, confusables, leetspeak, spacing, punctuation, possessives);
- a character cameo that portrays the asset (`IPAsset.cameo`);
- on the worker only, the meaning of the prompt against the asset's reference text (MiniLM,
  rights.semantic), so a description without the name is caught too;
- the claims of the video a remix continues (its frames show the asset).

A holder's own members are not refused their own assets (a studio may use its character), and
their videos carry no claim for them.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from cameos.models import Cameo, CameoKind
from config.core.errors import Conflict, Forbidden, Invalid, NotFound

from .detection import AliasMatcher, alias_problem
from .models import (
    POLICY_RANK,
    AssetPolicy,
    Claim,
    ClaimStatus,
    HolderMember,
    IPAsset,
    IPAssetVersion,
    RightsHolder,
)

MAX_ALIASES = 20
MAX_ALIAS_CHARS = 60
MAX_DESCRIPTION_CHARS = 2000
MAX_MEMBERS = 50
# Fields of an asset a version records; changing any of them makes a new version.
VERSIONED = ("name", "aliases", "description", "policy", "share_bps", "fee_micros")


def name_key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


# --- holders and members ------------------------------------------------------------------


def is_member(user, holder_id) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    return HolderMember.objects.filter(holder_id=holder_id, user_id=user.pk).exists()


def member_holder_ids(user) -> set:
    if not getattr(user, "is_authenticated", False):
        return set()
    return set(HolderMember.objects.filter(user_id=user.pk).values_list("holder_id", flat=True))


def holder_for_member(*, holder_id, user) -> RightsHolder:
    """The holder, when `user` is a member or staff; else 404 (a holder's membership is not
    something a stranger can probe)."""
    holder = RightsHolder.objects.filter(pk=holder_id).first()
    if holder is None or not (user.is_staff or is_member(user, holder.pk)):
        raise NotFound("No such rights holder.")
    return holder


@transaction.atomic
def holder_create(*, name: str, members: Sequence) -> RightsHolder:
    name = " ".join(name.split())
    if not name:
        raise Invalid("A holder needs a name.", fields={"name": ["Required."]})
    if not members:
        raise Invalid("A holder needs a first member.", fields={"members": ["Required."]})
    try:
        with transaction.atomic():
            holder = RightsHolder.objects.create(name=name, name_key=name_key(name))
    except IntegrityError:
        raise Conflict(
            "A rights holder with this name exists.", fields={"name": ["Taken."]}
        ) from None
    HolderMember.objects.bulk_create(HolderMember(holder=holder, user=u) for u in members)
    return holder


@transaction.atomic
def holder_member_add(*, holder: RightsHolder, user) -> HolderMember:
    RightsHolder.objects.select_for_update().filter(pk=holder.pk).first()
    existing = HolderMember.objects.filter(holder=holder, user=user).first()
    if existing is not None:
        return existing
    if HolderMember.objects.filter(holder=holder).count() >= MAX_MEMBERS:
        raise Conflict(f"A holder has at most {MAX_MEMBERS} members.", code="too_many_members")
    return HolderMember.objects.create(holder=holder, user=user)


@transaction.atomic
def holder_member_remove(*, holder: RightsHolder, user, actor) -> None:
    """Members may leave or remove each other, but never the last one (nobody could manage
    the assets then); staff may (a holder that closes)."""
    RightsHolder.objects.select_for_update().filter(pk=holder.pk).first()
    membership = HolderMember.objects.filter(holder=holder, user=user).first()
    if membership is None:
        raise NotFound("Not a member.", fields={"username": ["Not a member."]})
    if not actor.is_staff and HolderMember.objects.filter(holder=holder).count() == 1:
        raise Conflict("A holder keeps at least one member.", code="last_member")
    membership.delete()


# --- assets -------------------------------------------------------------------------------


def _clean_aliases(name: str, aliases: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    seen = {name_key(name)}
    for alias in aliases:
        alias = " ".join(str(alias).split())
        if len(alias) > MAX_ALIAS_CHARS:
            raise Invalid(
                f"An alias has at most {MAX_ALIAS_CHARS} characters.",
                fields={"aliases": [f"Too long: {alias[:20]}..."]},
            )
        problem = alias_problem(alias)
        if problem:
            raise Invalid(problem, fields={"aliases": [f"{alias}: {problem}"]})
        if name_key(alias) not in seen:
            seen.add(name_key(alias))
            cleaned.append(alias)
    if len(cleaned) > MAX_ALIASES:
        raise Invalid(f"At most {MAX_ALIASES} aliases.", fields={"aliases": ["Too many."]})
    return cleaned


def _check_terms(values: dict[str, Any]) -> None:
    policy = values["policy"]
    problem = alias_problem(values["name"])
    if problem:
        raise Invalid(problem, fields={"name": [problem]})
    if len(values["description"]) > MAX_DESCRIPTION_CHARS:
        raise Invalid("The description is too long.", fields={"description": ["Too long."]})
    if policy == AssetPolicy.LICENSED:
        if not 1 <= values["share_bps"] <= 10_000:
            raise Invalid(
                "A licensed asset needs share_bps between 1 and 10000.",
                fields={"share_bps": ["1..10000 for a licensed asset."]},
            )
    elif values["share_bps"] or values["fee_micros"]:
        raise Invalid(
            "Only a licensed asset has a share or a fee.",
            fields={"share_bps" if values["share_bps"] else "fee_micros": ["Licensed only."]},
        )
    if not 0 <= values["fee_micros"] <= settings.RIFF_RIGHTS_MAX_FEE_MICROS:
        raise Invalid("fee_micros is out of range.", fields={"fee_micros": ["Out of range."]})
    threshold = values.get("semantic_threshold")
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise Invalid(
            "semantic_threshold is a cosine in (0, 1].",
            fields={"semantic_threshold": ["Out of range."]},
        )


def _backing_cameo(*, cameo_id, holder: RightsHolder) -> Cameo | None:
    """A character cameo owned by a member of the holder may portray its asset."""
    if cameo_id is None:
        return None
    cameo = Cameo.objects.filter(pk=cameo_id).first()
    if (
        cameo is None
        or cameo.kind != CameoKind.CHARACTER
        or not HolderMember.objects.filter(holder=holder, user_id=cameo.owner_id).exists()
    ):
        raise Invalid(
            "The cameo must be a character cameo owned by a member of the holder.",
            fields={"cameo_id": ["Not a character cameo of this holder."]},
        )
    return cameo


def _version_row(asset: IPAsset, actor) -> IPAssetVersion:
    return IPAssetVersion.objects.create(
        asset=asset,
        version=asset.version,
        changed_by=actor,
        **{f: getattr(asset, f) for f in VERSIONED},
    )


@transaction.atomic
def asset_create(*, holder: RightsHolder, actor, data: dict[str, Any]) -> IPAsset:
    values = {
        "name": " ".join(data["name"].split()),
        "description": data.get("description", "").strip(),
        "policy": data["policy"],
        "share_bps": data.get("share_bps") or 0,
        "fee_micros": data.get("fee_micros") or 0,
        "semantic_threshold": data.get("semantic_threshold"),
    }
    _check_terms(values)
    values["aliases"] = _clean_aliases(values["name"], data.get("aliases", []))
    cameo = _backing_cameo(cameo_id=data.get("cameo_id"), holder=holder)
    try:
        with transaction.atomic():
            asset = IPAsset.objects.create(holder=holder, cameo=cameo, **values)
    except IntegrityError:
        raise Conflict(
            "This cameo already portrays another asset.", fields={"cameo_id": ["Taken."]}
        ) from None
    _version_row(asset, actor)
    return asset


@transaction.atomic
def asset_update(*, asset: IPAsset, actor, data: dict[str, Any]) -> IPAsset:
    """Changes an asset's terms; any change to the terms is a new version (old claims keep
    theirs). Only new generations see the new terms."""
    locked = IPAsset.objects.select_for_update().get(pk=asset.pk)
    values = {f: getattr(locked, f) for f in (*VERSIONED, "semantic_threshold")}
    for name in ("name", "description", "policy", "share_bps", "fee_micros"):
        if name in data:
            values[name] = data[name] if data[name] is not None else 0
    if "name" in data:
        values["name"] = " ".join(data["name"].split())
    if "semantic_threshold" in data:
        values["semantic_threshold"] = data["semantic_threshold"]
    # Moving away from licensed drops the share and fee unless they were given again.
    if values["policy"] != AssetPolicy.LICENSED:
        values["share_bps"] = data.get("share_bps") or 0
        values["fee_micros"] = data.get("fee_micros") or 0
    _check_terms(values)
    if "aliases" in data or "name" in data:
        values["aliases"] = _clean_aliases(values["name"], data.get("aliases", locked.aliases))
    changed = [f for f in VERSIONED if values[f] != getattr(locked, f)]
    for name, value in values.items():
        setattr(locked, name, value)
    if "cameo_id" in data:
        locked.cameo = _backing_cameo(cameo_id=data["cameo_id"], holder=locked.holder)
    if changed:
        locked.version += 1
    locked.updated_at = timezone.now()
    try:
        with transaction.atomic():
            locked.save()
    except IntegrityError:
        raise Conflict(
            "This cameo already portrays another asset.", fields={"cameo_id": ["Taken."]}
        ) from None
    if changed:
        _version_row(locked, actor)
    return locked


def asset_for_member(*, asset_id, user) -> IPAsset:
    asset = IPAsset.objects.select_related("holder").filter(pk=asset_id).first()
    if asset is None:
        raise NotFound("No such asset.")
    # Members only, like registering: staff don't speak for a holder (they can add
    # themselves as a member, which the holder's other members see).
    if not is_member(user, asset.holder_id):
        raise Forbidden("Only members of the holder may change this asset.")
    return asset


def catalogue(*, q: str = "") -> QuerySet[IPAsset]:
    """The public catalogue, newest first; `q` finds a name or alias (case-insensitive)."""
    assets = IPAsset.objects.select_related("holder")
    q = " ".join(q.split())
    if q:
        # Alias lists are JSON; the cast text contains each alias verbatim.
        assets = assets.filter(Q(name__icontains=q) | Q(aliases__icontains=q))
    return assets


# --- the IP decision ----------------------------------------------------------------------


@dataclass(frozen=True)
class AssetMatch:
    asset: IPAsset
    via: str  # alias | cameo | semantic | remix
    matched: str  # what matched: the text fragment, @handle, or the asset's name
    field: str  # where: prompt | cameos | remix_of
    score: float | None = None


@dataclass
class IPDecision:
    matches: list[AssetMatch] = field(default_factory=list)

    @property
    def decision(self) -> str:
        if not self.matches:
            return AssetPolicy.ALLOWED.value
        worst = max(self.matches, key=lambda m: POLICY_RANK[m.asset.policy])
        return str(worst.asset.policy)

    @property
    def blocked(self) -> list[AssetMatch]:
        return [m for m in self.matches if m.asset.policy == AssetPolicy.BLOCKED]

    def refusal(self) -> Forbidden | None:
        """The 403 `ip_blocked` for the first blocked match (naming the asset), or None."""
        if not self.blocked:
            return None
        first = self.blocked[0]
        asset = first.asset
        sentence = f"{asset.name} is blocked by its rights holder, {asset.holder.name}."
        return Forbidden(sentence, code="ip_blocked", fields={first.field: [sentence]})


# Whether the catalogue changed: its size and newest edit. Names from the model only.
_STAMP_SQL = f'SELECT count(*), max("updated_at") FROM "{IPAsset._meta.db_table}"'  # noqa: S608
CATALOGUE_STAMP_KEY = "rights.catalogue.stamp"


def catalogue_stamp_statement() -> tuple[str, str]:
    """`(key, sql)` of the catalogue's freshness stamp, for admission to read in its first
    round trip (generation.services.admission) and pass back through `memo`."""
    return CATALOGUE_STAMP_KEY, _STAMP_SQL


class _Catalogue:
    """The alias matcher, compiled once per catalogue change (process-local). One cheap
    aggregate query per decision tells whether the catalogue changed (admission reads it in
    its first round trip and passes it in)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._matcher: AliasMatcher | None = None
        self._assets: dict = {}
        self._by_cameo: dict = {}

    @staticmethod
    def stamp() -> tuple:
        with connection.cursor() as cursor:
            cursor.execute(_STAMP_SQL)
            return tuple(cursor.fetchone())

    def current(self, stamp: tuple | None = None) -> tuple[AliasMatcher, dict, dict]:
        if stamp is None:
            stamp = self.stamp()
        with self._lock:
            if stamp != self._stamp or self._matcher is None:
                assets = {a.pk: a for a in IPAsset.objects.select_related("holder")}
                pairs = [(a.pk, term) for a in assets.values() for term in [a.name, *a.aliases]]
                self._matcher = AliasMatcher(pairs)
                self._assets = assets
                self._by_cameo = {a.cameo_id: a for a in assets.values() if a.cameo_id}
                self._stamp = stamp
            return self._matcher, self._assets, self._by_cameo


_CATALOGUE = _Catalogue()


def ip_decision(
    *,
    user,
    prompt: str,
    cameos: Sequence[Cameo] = (),
    semantic: bool = False,
    alias: bool = True,
    extra: Sequence[tuple[Any, float]] = (),
    inherited_from=None,
    memo: dict | None = None,
) -> IPDecision:
    """Every asset the request uses (one match per asset, the first way it was found) and the
    resulting decision. `semantic` adds the MiniLM check (workers only: it needs torch);
    `extra` adds semantic (asset id, cosine) pairs a worker computed for the web tier.
    `inherited_from`: the video a remix continues. Its frames show what it used, so every
    asset it claims (unless released) is used again, under the asset's current terms. `memo`:
    admission's per-request scratch dict, which may hold the catalogue stamp already read."""
    matcher, assets, by_cameo = _CATALOGUE.current((memo or {}).get(CATALOGUE_STAMP_KEY))
    if not assets:
        return IPDecision()
    own = member_holder_ids(user)
    found: dict = {}

    def add(match: AssetMatch) -> None:
        if match.asset.holder_id not in own and match.asset.pk not in found:
            found[match.asset.pk] = match

    for hit in matcher.find(prompt) if alias else ():
        add(AssetMatch(assets[hit.key], "alias", hit.matched[:200], "prompt"))
    for cameo in cameos:
        backed = by_cameo.get(cameo.pk)
        if backed is not None:
            add(AssetMatch(backed, "cameo", f"@{cameo.handle}", "cameos"))
        for text in (cameo.instructions, cameo.restrictions):
            for hit in matcher.find(text or ""):
                add(AssetMatch(assets[hit.key], "alias", hit.matched[:200], "cameos"))
    if semantic and settings.RIFF_RIGHTS_SEMANTIC:
        from .semantic_check import semantic_hits

        for asset, score in semantic_hits(prompt=prompt, assets=list(assets.values())):
            add(AssetMatch(asset, "semantic", asset.name, "prompt", score=score))
    if inherited_from is not None:
        parent_claims = Claim.objects.filter(video_id=inherited_from).exclude(
            status=ClaimStatus.RELEASED
        )
        for asset_id in parent_claims.order_by("created_at").values_list("asset_id", flat=True):
            if asset_id in assets:
                add(AssetMatch(assets[asset_id], "remix", assets[asset_id].name, "remix_of"))
    by_text_id = {str(key): a for key, a in assets.items()} if extra else {}
    for asset_id, score in extra:
        asset = by_text_id.get(str(asset_id))
        if asset is not None:
            add(AssetMatch(asset, "semantic", asset.name, "prompt", score=score))
    ordered = sorted(found.values(), key=lambda m: -POLICY_RANK[m.asset.policy])
    return IPDecision(matches=ordered)


def admission_check(
    *, user, prompt: str, cameos: Sequence[Cameo], inherited_from=None, memo: dict | None = None
) -> IPDecision:
    """At admission: refuse a blocked match (403 `ip_blocked`), else return the decision."""
    decision = ip_decision(
        user=user, prompt=prompt, cameos=cameos, inherited_from=inherited_from, memo=memo
    )
    refusal = decision.refusal()
    if refusal is not None:
        raise refusal
    return decision
