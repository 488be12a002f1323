"""URLs in the config: each one well formed, and none holding a credential.

blueprint writes the config's URLs where every user of the machine can read them: a provider's
base_url into litellm.yaml (0644), Langfuse's and Lago's into the units' Environment= (0644, and
podman's command line while the container runs). A credential in one (user:password@, or a
?api_key= parameter) would be every user's; credentials go to the secret store instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from blueprint import credentials
from blueprint.config import fields
from blueprint.jsontext import pointer
from blueprint.model import providers as catalog
from blueprint.model.problems import Problem
from blueprint.model.sections import ENV_REF, Config

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
        yield Problem(where, f"{credentials.masked(url)!r} is not a valid URL: {exc}")
        return
    if not parts.hostname:
        yield Problem(where, f"{credentials.masked(url)!r} has no host")
    elif port == 0:
        yield Problem(where, f"{credentials.masked(url)!r}: port 0 is not a port")


def _credentials(url: str, where: str, hint: str) -> Iterator[Problem]:
    """The credential in a URL, named by its kind and never shown."""
    if found := credentials.userinfo(url):
        held = "user:password" if ":" in url[found.start : found.end] else "user"
        yield Problem(where, f"the URL holds credentials before its host ({held}@{found.host}): {EXPOSED}", hint=hint)
        return
    for name in credentials.credential_parameters(url)[:1]:
        yield Problem(where, f"the URL's parameter {name!r} looks like a credential: {EXPOSED}", hint=hint)


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
