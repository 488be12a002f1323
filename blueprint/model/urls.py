"""URLs in the config: each one well formed, and none holding a credential.

blueprint writes the config's URLs where every user of the machine can read them: a provider's
base_url into litellm.yaml (0644), Langfuse's and Lago's into the units' Environment= (0644, and
podman's command line while the container runs). A credential in one (user:password@, or a
?api_key= parameter) would be every user's; credentials go to the secret store instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

from blueprint.config import fields
from blueprint.jsontext import pointer
from blueprint.model import providers as catalog
from blueprint.model.problems import Problem
from blueprint.model.sections import ENV_REF, Config

# Parameter names (lowercase, letters and digits only) that carry a credential: the common
# spellings of an API key, a token, a password or a signature.
CREDENTIAL_NAMES = frozenset(
    {
        *("key", "apikey", "token", "secret", "password", "passwd", "pwd", "pass", "auth", "authorization"),
        *("sig", "signature", "credential", "credentials", "session", "jwt", "bearer"),
    }
)
CREDENTIAL_ENDINGS = ("key", "token", "secret", "password", "signature")
EXPOSED = "blueprint writes it where every user of this machine can read it (litellm.yaml, the units)"


def problems(data: Config) -> Iterator[Problem]:
    """Every URL field of the config (the schema's url definition), in the config's order."""
    for path, url in fields(data, "url"):
        where = pointer(path)
        found = list(_credentials(url, where, _credentials_hint(path, data)))
        yield from found or url_problems(url, where)


def url_problems(url: str, where: str) -> Iterator[Problem]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        yield Problem(where, f"{_shown(url)!r} is not a valid URL: {exc}")
        return
    if not parts.hostname:
        yield Problem(where, f"{_shown(url)!r} has no host")
    elif port == 0:
        yield Problem(where, f"{_shown(url)!r}: port 0 is not a port")


def _credentials(url: str, where: str, hint: str) -> Iterator[Problem]:
    """The credential in a URL, named by its kind and never shown."""
    authority = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)", url)
    if authority and "@" in authority[1]:
        userinfo, _, host = authority[1].rpartition("@")
        held = "user:password" if ":" in userinfo else "user"
        yield Problem(where, f"the URL holds credentials before its host ({held}@{host}): {EXPOSED}", hint=hint)
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        return  # url_problems says why
    for name, _ in [*parse_qsl(parts.query, keep_blank_values=True), *parse_qsl(parts.fragment)]:
        word = re.sub(r"[^a-z0-9]", "", name.lower())
        if word in CREDENTIAL_NAMES or word.endswith(CREDENTIAL_ENDINGS):
            yield Problem(where, f"the URL's parameter {name!r} looks like a credential: {EXPOSED}", hint=hint)
            return


def _credentials_hint(path: tuple, data: Config) -> str:
    """Where the credential of this field goes instead, if blueprint has a place for it."""
    match path:
        case ("llm_providers", entry_name, *_):
            entry = data["llm_providers"][entry_name]
            kind = catalog.lookup(entry.get("provider", entry_name))
            if kind is not None and kind.credentials:
                refs = [
                    (c.field, ENV_REF.match(entry[c.field])[1] if c.field in entry else c.env) for c in kind.credentials
                ]
                if [field for field, _ in refs] == ["api_key"]:
                    var = refs[0][1]
                    return f'give the key as "api_key": "${{{var}}}" and store it with `blueprint secrets set {var}`'
                given = ", ".join(f'"{field}": "${{{var}}}"' for field, var in refs)
                return f"{kind.title} takes its credentials as {given}; store each with `blueprint secrets set NAME`"
        case ("callbacks", "langfuse", *_):
            return (
                "Langfuse's keys are secrets: `blueprint secrets set LANGFUSE_PUBLIC_KEY` and "
                "`blueprint secrets set LANGFUSE_SECRET_KEY`; give the host alone"
            )
        case ("callbacks", "lago", *_):
            return "Lago's key is a secret: `blueprint secrets set LAGO_API_KEY`; give the API's address alone"
    return "credentials go in blueprint's secret store (`blueprint secrets set NAME`), never in a URL"


def _shown(url: str) -> str:
    """A URL as an error may print it: whatever stands before an @ in its authority left out."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@", r"\1…@", url)
