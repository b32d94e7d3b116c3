"""Name rules shared by usernames and cameo handles.

A name is compared by its *key*: NFKC-normalised, case-folded, with look-alike characters
folded onto ASCII, so "Alice", "ＡＬＩＣＥ" (full width) and "аlice" (Cyrillic а) are the same
name. Only ASCII letters, digits, "_" and "." survive into a stored name, so a name always
reads the same way it compares.
"""

from __future__ import annotations

import re
import unicodedata

# Letters that render like ASCII in common fonts (Cyrillic, Greek, Latin extensions).
_CONFUSABLES = str.maketrans(
    {
        "а": "a",
        "е": "e",
        "о": "o",
        "р": "p",
        "с": "c",
        "у": "y",
        "х": "x",
        "і": "i",
        "ј": "j",
        "ѕ": "s",
        "ԁ": "d",
        "ɡ": "g",
        "һ": "h",
        "ӏ": "l",
        "ո": "n",
        "ԛ": "q",
        "ԝ": "w",
        "α": "a",
        "ο": "o",
        "ρ": "p",
        "ν": "v",
        "τ": "t",
        "ι": "i",
        "κ": "k",
        "ı": "i",
        "ℓ": "l",
        "ɑ": "a",
    }
)
# Structural look-alikes inside the allowed ASCII set.
_SKELETON = str.maketrans({"0": "o", "1": "l", "i": "l", "5": "s", "_": "", ".": ""})

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_.]*[a-z0-9])?$")

RESERVED = frozenset(
    [
        "admin",
        "administrator",
        "root",
        "system",
        "riff",
        "support",
        "help",
        "staff",
        "moderator",
        "mod",
        "official",
        "security",
        "api",
        "www",
        "app",
        "mail",
        "email",
        "team",
        "null",
        "none",
        "undefined",
        "anonymous",
        "everyone",
        "me",
        "self",
        "settings",
        "login",
        "logout",
        "register",
        "signup",
        "signin",
        "auth",
        "account",
        "accounts",
        "user",
        "users",
        "cameo",
        "cameos",
        "feed",
        "posts",
        "post",
        "explore",
        "search",
        "trending",
        "notifications",
        "invite",
        "invites",
        "about",
        "terms",
        "privacy",
    ]
)


def normalize(raw: str) -> str:
    """The stored form: NFKC, case-folded, confusables folded, stripped."""
    value = unicodedata.normalize("NFKC", raw or "").strip().casefold()
    return value.translate(_CONFUSABLES)


def name_key(raw: str) -> str:
    """The comparison key: normalised, then digit/letter look-alikes and separators folded.

    Two names with the same key cannot coexist ("bob_1" vs "bobl", "al1ce" vs "alice").
    """
    return normalize(raw).translate(_SKELETON)


def validate_name(raw: str, *, min_length: int = 3, max_length: int = 30) -> str | None:
    """Returns an error message, or None when the name is acceptable."""
    value = normalize(raw)
    if not (min_length <= len(value) <= max_length):
        return f"Must be {min_length} to {max_length} characters."
    if not NAME_RE.match(value):
        return "Use letters, digits, '_' and '.', starting and ending with a letter or digit."
    if ".." in value or "__" in value:
        return "No repeated separators."
    if value in RESERVED or name_key(value) in _RESERVED_KEYS:
        return "This name is reserved."
    return None


_RESERVED_KEYS = frozenset(name_key(word) for word in RESERVED)
