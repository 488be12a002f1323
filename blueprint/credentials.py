"""Credentials inside a URL's text: where they stand, and the URL as a message may print them masked.

Read from the text, not from a parsed URL: the values that need it most are those a parser
refuses (a password holding a space, a slash or a quote), and the schema's error prints them
before model/urls.py ever sees them.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote_plus

# Parameter names (lowercase, letters and digits only) that carry a credential: the common
# spellings of an API key, a token, a password or a signature.
CREDENTIAL_NAMES = frozenset(
    {
        *("key", "apikey", "token", "secret", "password", "passwd", "pwd", "pass", "auth", "authorization"),
        *("sig", "signature", "credential", "credentials", "session", "jwt", "bearer"),
    }
)
CREDENTIAL_ENDINGS = ("key", "token", "secret", "password", "signature")
MASK = "***"

# A host and port as they are written when nothing stands before them: what an authority without
# an @ looks like when it holds no user name.
_PLAIN_AUTHORITY = re.compile(r"([A-Za-z0-9._~%-]*|\[[0-9A-Fa-f:.]*\])(:[0-9]*)?")
# A parameter: after ?, & or ; (servers read ; as &, and path segments carry ;name=value) or #.
_PARAMETER = re.compile(r"[?&;#](?P<name>[^=&;#?/]*)=(?P<value>[^&;#]*)")


class Userinfo(NamedTuple):
    start: int  # of the user name
    end: int  # of the @ after it
    host: str  # what follows the @, up to the path


def userinfo(text: str) -> Userinfo | None:
    """The user name (and password) before a URL's host. A password holding a / ? or # ends the
    authority where a parser would (http://user:pa/ss@host reads as host "user", port "pa"): an
    authority that is no host[:port] with an @ after it is read as one whose password does."""
    scheme = text.find("://")
    start = scheme + 3 if scheme >= 0 else 0
    end = _authority_end(text, start)
    authority = text[start:end]
    if "@" in authority:
        at = start + authority.rindex("@")
    elif "@" in text[end:] and not _PLAIN_AUTHORITY.fullmatch(authority):
        at = text.rindex("@")
    else:
        return None
    return Userinfo(start, at, text[at + 1 : _authority_end(text, at + 1)])


def _authority_end(text: str, start: int) -> int:
    found = re.compile(r"[/?#]").search(text, start)
    return found.start() if found else len(text)


def credential_parameters(text: str) -> list[str]:
    """The names of the parameters (query, fragment, path ;name=value) that look like a credential."""
    found = _PARAMETER.finditer(text, _after_userinfo(text))
    return [parameter["name"] for parameter in found if _is_credential(parameter["name"])]


def _is_credential(name: str) -> bool:
    word = re.sub(r"[^a-z0-9]", "", unquote_plus(name).lower())
    return word in CREDENTIAL_NAMES or word.endswith(CREDENTIAL_ENDINGS)


def _after_userinfo(text: str) -> int:
    found = userinfo(text)
    return found.end + 1 if found else 0


def masked(text: str) -> str:
    """`text` as a message may print it: its user name and password, and the value of each
    parameter named like a credential, replaced by ***."""
    spans = []
    if found := userinfo(text):
        spans.append((found.start, found.end))
    spans += [
        parameter.span("value")
        for parameter in _PARAMETER.finditer(text, _after_userinfo(text))
        if _is_credential(parameter["name"]) and parameter["value"]
    ]
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + MASK + text[end:]
    return text
