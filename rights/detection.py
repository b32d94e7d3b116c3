"""Alias matching for IP detection at admission: does a prompt name a registered asset?

Pure Python (no Django, no database): the caller builds an `AliasMatcher` once from
`(asset key, alias)` pairs and calls `find(prompt)`. docs/rights-detection.md explains the
rules with examples; the decisions, in short:

* **Canonical letters.** Every character is read through NFKD (fullwidth, ligatures,
  mathematical letters, circled letters...), loses its combining marks ("Cäptain" ->
  "captain"), is mapped through a table of look-alike letters (Cyrillic, Greek, IPA, small
  capitals: `_CONFUSABLES`) and case-folded. Invisible and format characters (zero-width
  spaces and joiners, soft hyphens, bidi controls, variation selectors) are dropped as if
  they were not there, so they can neither split nor join words.
* **Separators.** Whatever is not a letter or digit (spaces, punctuation, symbols, emoji) is a
  word boundary. Inside an alias, boundaries are ignored: "captain comet", "captain-comet",
  "c a p t a i n comet", "C.A.P.T.A.I.N comet" and "captaincomet" all read "captaincomet".
* **Whole words.** The alias as a whole must start at a word start and end at a word end, so
  "Ant" never matches "want" or "antelope", "Comet" never matches "mcomet" or "cometary". The
  English plural/possessive of the alias itself *is* a match: "Comet's", "Comets", "Comets'",
  and "-es" after an alias ending in s, x, z, ch or sh ("Max" -> "Maxes").
* **Leetspeak is ambiguous, so both readings are tried.** A digit is itself *and* the letters
  it imitates (`4` -> 4 or a, `1` -> 1, i or l, `0` -> 0 or o ...), `o`, `i`, `l` also
  read as `0`, `1`, and `i` and `l` as each other (a capital I and a small l look alike in
  most fonts): "C4pt@in" matches "Captain", "CAPTAlN" too, "R2-D7" still matches "R2 D7",
  and "Agent OO7" matches "Agent 007". Symbols that imitate letters (`@ $ ! | + (`) are that letter *or*
  a separator, so "@captaincomet" and "Captain Comet!" match too. Multi-character leet
  ("|<" for k, "ph" for f) and phonetic spellings ("Kaptin Komet") are out of scope: the
  semantic check in the worker is the net for those.

The matcher is a trie of the aliases' compact forms walked by a set of active states (an NFA
over the alternatives of each character), so the work is linear in the prompt: each character
advances at most `MAX_ACTIVE_STATES` states, and a new state starts only at a word start. It is
independent of the number of aliases apart from dictionary lookups.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

__all__ = [
    "MAX_ALIAS_CHARS",
    "MIN_ALIAS_CHARS",
    "AliasMatch",
    "AliasMatcher",
    "alias_problem",
    "normalize",
]

# Bounds: an alias of more than MAX_ALIAS_CHARS canonical characters is refused (the trie depth
# and so the work per prompt character stay bounded); one of fewer than MIN_ALIAS_CHARS letters
# would match half the prompts on the platform.
MAX_ALIAS_CHARS = 80
MIN_ALIAS_CHARS = 3
# The most states the matcher advances per prompt character. Real prompts use a handful; only
# a hostile prompt against a hostile catalogue could reach it, and then the newest candidate
# matches are dropped rather than the work growing.
MAX_ACTIVE_STATES = 2048

_SEP = " "

# Look-alike letters -> the Latin letter they imitate. Applied after NFKD (so accented forms
# are already decomposed) and before lowercasing, so that capitals that look different from
# their lowercase (Greek Eta "Η" = H, eta "η" = n) keep their own reading.
_CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "А": "a", "а": "a", "В": "b", "в": "b", "Ь": "b", "ь": "b", "Ъ": "b", "ъ": "b",
    "С": "c", "с": "c", "Ԁ": "d", "ԁ": "d", "Е": "e", "е": "e", "Ё": "e", "ё": "e",
    "Э": "e", "э": "e", "Є": "e", "є": "e", "Һ": "h", "һ": "h", "Н": "h", "н": "h",
    "І": "i", "і": "i", "Ї": "i", "ї": "i", "Ӏ": "l", "ӏ": "l", "Ј": "j", "ј": "j",
    "К": "k", "к": "k", "М": "m", "м": "m", "П": "n", "п": "n", "О": "o", "о": "o",
    "Р": "p", "р": "p", "Ԛ": "q", "ԛ": "q", "Г": "r", "г": "r", "Ѕ": "s", "ѕ": "s",
    "Т": "t", "т": "t", "Ц": "u", "ц": "u", "Ѵ": "v", "ѵ": "v", "Ԝ": "w", "ԝ": "w",
    "Ш": "w", "ш": "w", "Щ": "w", "щ": "w", "Х": "x", "х": "x", "У": "y", "у": "y",
    "Ү": "y", "ү": "y", "З": "3", "з": "3", "Ч": "4", "ч": "4", "Б": "6", "б": "6",
    # Greek
    "Α": "a", "α": "a", "Β": "b", "β": "b", "Ε": "e", "ε": "e", "Ζ": "z", "Η": "h",
    "η": "n", "Ι": "i", "ι": "i", "Κ": "k", "κ": "k", "Μ": "m", "μ": "u", "Ν": "n",
    "ν": "v", "Ο": "o", "ο": "o", "σ": "o", "Ρ": "p", "ρ": "p", "Τ": "t", "τ": "t",
    "Υ": "y", "υ": "u", "Χ": "x", "χ": "x", "γ": "y", "ω": "w", "ϲ": "c", "Ϲ": "c",
    "ϳ": "j", "Ϳ": "j", "ς": "s",
    # Latin letters that do not decompose, IPA and small capitals
    "ı": "i", "ȷ": "j", "ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d",
    "ħ": "h", "Ħ": "h", "ŧ": "t", "Ŧ": "t", "ƀ": "b", "ɨ": "i", "ʉ": "u", "ɍ": "r",
    "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ð": "d", "Ð": "d", "þ": "p",
    "ɑ": "a", "ɡ": "g", "ɩ": "i", "ɪ": "i", "ʟ": "l", "ɴ": "n", "ʀ": "r", "ʏ": "y",
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ᴊ": "j",
    "ᴋ": "k", "ᴍ": "m", "ᴏ": "o", "ᴘ": "p", "ꞯ": "q", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u",
    "ᴠ": "v", "ᴡ": "w", "ᴢ": "z", "ɔ": "c", "ɛ": "e", "ɒ": "a", "ꓲ": "l", "ǀ": "l",
    # Armenian / Cherokee letters used as Latin look-alikes
    "օ": "o", "ս": "u", "ց": "g", "հ": "h", "ո": "n", "ք": "p",
    "Ꭺ": "a", "Ᏼ": "b", "Ꮯ": "c", "Ꭼ": "e", "Ꮋ": "h", "Ꮶ": "k", "Ꮇ": "m", "Ꮲ": "p",
    "Ꮪ": "s", "Ꭲ": "t", "Ꮃ": "w",
}  # fmt: skip

# Leetspeak, read on the prompt side only: what each character may also stand for. `_SEP` in
# the alternatives means "or a word boundary" (a symbol used as punctuation).
_LEET: dict[str, str] = {
    "0": "0o", "1": "1il", "2": "2z", "3": "3e", "4": "4a", "5": "5s", "6": "6gb", "7": "7t",
    "8": "8b", "9": "9g", "o": "o0", "i": "i1l", "l": "l1i",
    "@": "a ", "$": "s ", "!": "il ", "|": "il ", "+": "t ", "(": "c ", "€": "e ", "¡": "i ",
}  # fmt: skip

# Invisible characters that are not category Cf/Mn/Me but still render as nothing.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")


def _canonical(ch: str) -> str:
    """One character's canonical characters before classification: NFKD, combining marks and
    invisible characters removed, look-alikes mapped, case-folded ("ß" -> "ss"). "" when it
    renders as nothing; may be several characters (ligatures)."""
    if ch in _CONFUSABLES:  # before NFKD: some look-alikes decompose to another letter
        return _CONFUSABLES[ch]
    out = []
    for c in unicodedata.normalize("NFKD", ch):
        if c in _INVISIBLE or unicodedata.category(c) in ("Mn", "Me", "Cf"):
            continue
        out.append(_CONFUSABLES.get(c, c).casefold())
    return "".join(out)


def _base_chars(ch: str) -> str:
    """The literal reading (what `normalize` uses): canonical letters and digits, anything
    else `_SEP`."""
    return "".join(d if d.isalnum() else _SEP for d in _canonical(ch))


def _units_of(ch: str) -> tuple[str, ...]:
    """One character -> its matching units: each unit is a string of alternatives (canonical
    letters/digits, and `_SEP` when it may also be a boundary). Usually one unit; a ligature
    or "æ" gives several, an invisible character none. Leetspeak applies after NFKD, so a
    fullwidth "＠" or "４" reads like "@" or "4"."""
    return tuple(_LEET[d] if d in _LEET else (d if d.isalnum() else _SEP) for d in _canonical(ch))


# Per-character memo for `_units_of` (a plain dict: faster than lru_cache on the hot path).
# Cleared when it grows past _UNIT_CACHE_MAX so a prompt of many distinct code points cannot
# grow it without bound.
_UNIT_CACHE: dict[str, tuple[str, ...]] = {}
_UNIT_CACHE_MAX = 65536


def normalize(text: str) -> str:
    """Canonical form: lowercase ASCII-ish letters/digits tokens joined by single spaces.

    The literal reading, with no guessing: NFKD + combining marks removed + look-alikes
    mapped + lowercase; invisible characters removed; every other non-alphanumeric character
    is a separator. Digits stay digits. The one leetspeak rule is that "@" and "$" *between*
    two letters/digits read "a" and "s" ("Ke$ha" -> "kesha", "C4pt@in" -> "c4ptain"), since
    they are never punctuation there. Letters of other scripts stay as they are (lowercased).
    """
    chars: list[str] = []
    for ch in text:
        chars.append(_base_chars(ch) if ch not in "@$" else ch)
    flat = "".join(chars)
    out = []
    for i, c in enumerate(flat):
        if c in "@$":
            inside = 0 < i < len(flat) - 1 and flat[i - 1].isalnum() and flat[i + 1].isalnum()
            out.append(("a" if c == "@" else "s") if inside else _SEP)
        else:
            out.append(c)
    return " ".join("".join(out).split())


_ARTICLES = ("the", "a", "an")


def _alias_forms(alias: str) -> list[str]:
    """The compact forms (separators removed) an alias is matched by: itself, and without a
    leading article ("The Ink Phantom" is also "ink phantom"). [] when nothing is left."""
    tokens = normalize(alias).split()
    forms = ["".join(tokens)] if tokens else []
    if len(tokens) > 1 and tokens[0] in _ARTICLES:
        forms.append("".join(tokens[1:]))
    return forms


# Common English function words: an alias that is one of them would match most prompts.
# fmt: off
_COMMON_WORDS = frozenset({
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was",
    "one", "our", "out", "day", "get", "has", "him", "his", "how", "man", "new", "now", "old",
    "see", "two", "way", "who", "boy", "did", "its", "let", "put", "say", "she", "too", "use",
    "with", "from", "have", "this", "that", "they", "what", "when", "your", "will", "been", "into",
    "more", "some", "than", "them", "then", "very", "just", "like", "over", "also", "back",
    "after", "only", "most", "make", "made", "many", "much", "must", "here", "there", "where",
    "which", "while", "about", "again", "other", "these", "those", "their", "would", "could",
    "should",
})
# fmt: on


def alias_problem(alias: str) -> str | None:
    """Why `alias` cannot be registered, for the holder to read; None when it is fine.

    Refused: nothing left after normalisation ("!!!"), fewer than MIN_ALIAS_CHARS letters and
    digits in all (a single 1-2 letter token: "X", "Q-T"; "The X" counts as "X", since a
    leading article is optional when matching), more than MAX_ALIAS_CHARS, or a single very
    common English word ("the", "The Man") that would match most prompts.
    """
    tokens = normalize(alias).split()
    if not tokens:
        return "The alias has no letters or digits."
    if len(tokens) > 1 and tokens[0] in _ARTICLES:
        tokens = tokens[1:]
    compact = "".join(tokens)
    if len(compact) < MIN_ALIAS_CHARS:
        return (
            f"The alias is too short: fewer than {MIN_ALIAS_CHARS} letters or digits would "
            "match too many unrelated prompts."
        )
    if len(compact) > MAX_ALIAS_CHARS:
        return f"The alias is too long: at most {MAX_ALIAS_CHARS} letters and digits."
    if len(tokens) == 1 and compact in _COMMON_WORDS:
        return f"The alias is a common English word ({compact!r}) and would match most prompts."
    return None


@dataclass(frozen=True)
class AliasMatch:
    key: Hashable  # what the caller passed with the alias (an asset id)
    alias: str  # the alias as registered
    matched: str  # the fragment of the original text that matched


_PLURAL_ES_ENDINGS = ("s", "x", "z", "ch", "sh")


class AliasMatcher:
    """Finds registered aliases in prompts. Build once (the trie is compiled in __init__),
    then `find()` any number of times from any number of threads (it holds no mutable state).

    Aliases that normalise to nothing are ignored; the registration policy (length, common
    words) is `alias_problem`'s job, not the matcher's. Several keys may share an alias; each
    is reported.
    """

    def __init__(self, aliases: Iterable[tuple[Hashable, str]]):
        # The trie as parallel lists indexed by node id: transitions, and for terminal nodes
        # the (key, alias, may_take_es) entries that end there. Node 0 is the root.
        self._next: list[dict[str, int]] = [{}]
        self._ends: dict[int, list[tuple[Hashable, str, bool]]] = {}
        self.size = 0  # (key, alias form) entries; 0 = nothing can match
        for key, alias in aliases:
            for compact in _alias_forms(alias):
                node = 0
                for c in compact:
                    child = self._next[node].get(c)
                    if child is None:
                        child = len(self._next)
                        self._next.append({})
                        self._next[node][c] = child
                    node = child
                entry = (key, alias, compact.endswith(_PLURAL_ES_ENDINGS))
                if entry not in self._ends.setdefault(node, []):
                    self._ends[node].append(entry)
                    self.size += 1

    @property
    def nodes(self) -> int:
        """Trie nodes (memory and build-time indicator)."""
        return len(self._next)

    # ------------------------------------------------------------------ text -> units

    @staticmethod
    def _units(text: str) -> tuple[list[str], list[int], list[int]]:
        """The prompt as matching units (strings of alternatives) with the span of original
        text each covers. Runs of pure separators collapse into one unit."""
        units: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        cache = _UNIT_CACHE
        for i, ch in enumerate(text):
            produced = cache.get(ch)
            if produced is None:
                if len(cache) >= _UNIT_CACHE_MAX:
                    cache.clear()
                produced = cache[ch] = _units_of(ch)
            if len(produced) == 1:
                u = produced[0]
                if u == _SEP and units and units[-1] == _SEP:
                    ends[-1] = i + 1
                else:
                    units.append(u)
                    starts.append(i)
                    ends.append(i + 1)
                continue
            if not produced:
                if ends:  # an invisible char or a mark belongs to what precedes it
                    ends[-1] = i + 1
                continue
            for u in produced:
                if u == _SEP and units and units[-1] == _SEP:
                    ends[-1] = i + 1
                    continue
                units.append(u)
                starts.append(i)
                ends.append(i + 1)
        return units, starts, ends

    # ------------------------------------------------------------------ matching

    def find(self, text: str) -> list[AliasMatch]:
        """Every distinct key whose alias occurs in `text`, one match each (the one that
        starts first; the longest there), ordered by where it starts in the text."""
        if not self.size or not text:
            return []
        units, starts, ends = self._units(text)
        n = len(units)
        nxt, term = self._next, self._ends
        root = nxt[0]
        # best[key] = (start unit, -end unit, alias)
        best: dict[Hashable, tuple[int, int, str]] = {}

        def boundary_at(j: int) -> bool:
            return j >= n or _SEP in units[j]

        def record(node: int, start: int, end: int) -> None:
            # `end` is the unit index just after the alias' last letter.
            for key, alias, takes_es in term[node]:
                stop = None
                if boundary_at(end):
                    stop = end
                elif "s" in units[end] and boundary_at(end + 1):
                    stop = end + 1
                elif (
                    takes_es
                    and "e" in units[end]
                    and end + 1 < n
                    and "s" in units[end + 1]
                    and boundary_at(end + 2)
                ):
                    stop = end + 2
                if stop is None:
                    continue
                cand = (start, -stop, alias)
                prev = best.get(key)
                if prev is None or cand[:2] < prev[:2]:
                    best[key] = cand

        states: dict[int, int] = {}  # trie node -> earliest start unit
        prev_boundary = True
        for j in range(n):
            alts = units[j]
            if alts == _SEP:
                # Pure separator: every state waits across it, nothing starts on it.
                prev_boundary = True
                continue
            may_sep = _SEP in alts
            new: dict[int, int] = {}
            if states:
                for node, start in states.items():
                    if may_sep:
                        new[node] = start if node not in new else min(new[node], start)
                    trans = nxt[node]
                    for c in alts:
                        child = trans.get(c)
                        if child is not None:
                            old = new.get(child)
                            if old is None or start < old:
                                new[child] = start
                            if child in term:
                                record(child, start, j + 1)
            if prev_boundary:
                for c in alts:
                    child = root.get(c)
                    if child is not None:
                        if child not in new:
                            new[child] = j
                        if child in term:
                            record(child, j, j + 1)
            if len(new) > MAX_ACTIVE_STATES:
                new = dict(sorted(new.items(), key=lambda kv: kv[1])[:MAX_ACTIVE_STATES])
            states = new
            prev_boundary = may_sep
        found = sorted(best.items(), key=lambda kv: (kv[1][0], kv[1][1]))
        return [
            AliasMatch(
                key=key,
                alias=alias,
                matched=text[starts[start] : ends[stop - 1]].strip(),
            )
            for key, (start, neg_stop, alias) in found
            for stop in (-neg_stop,)
        ]
