"""The LLM providers blueprint knows, mapped to LiteLLM's own names.

Each entry says which model prefix LiteLLM routes on and which credential variables LiteLLM reads
for that provider (https://docs.litellm.ai/docs/providers). tests/test_providers.py holds every
entry against the installed LiteLLM: `litellm.get_llm_provider()` must resolve the prefix and
`litellm.validate_environment()` must ask for exactly these variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Credential:
    """A secret LiteLLM needs: the `litellm_params` key it fills and LiteLLM's usual variable."""

    param: str
    env: str
    required: bool = True
    document: bool = False  # a JSON document, which the store keeps on one line

    @property
    def field(self) -> str:
        """The config field holding the `${VAR}` reference (the param name, as LiteLLM spells it)."""
        return self.param


@dataclass(frozen=True)
class Setting:
    """A plain (non-secret) value a provider needs, e.g. Azure's api_version."""

    field: str
    param: str
    required: bool = True


@dataclass(frozen=True)
class Provider:
    name: str
    prefix: str
    title: str
    credentials: tuple[Credential, ...] = ()
    settings: tuple[Setting, ...] = ()
    # "required": the config must give base_url; "optional": LiteLLM knows the provider's URL.
    base_url: str = "optional"
    example_base_url: str = "http://host.containers.internal:8000/v1"  # for the hint when it is missing
    default_base_url: str | None = None
    # LiteLLM's OpenAI client refuses to start without some key, even for servers that need none.
    keyless_api_key: str | None = None
    # Served on hardware of your own: a model costs nothing per token unless its entry prices it.
    self_hosted: bool = False
    # What `blueprint init --provider NAME` writes: models LiteLLM 1.99.4 prices where there are
    # any, and the settings the provider needs (one of PLACEHOLDERS where a person must fill one in).
    starter_models: tuple[str, ...] = ()
    starter_fields: Mapping[str, str] = field(default_factory=dict)

    def model_id(self, model: str) -> str:
        """The `model` LiteLLM routes on: provider prefix + the provider's own model name."""
        return f"{self.prefix}/{model}"


def _key(env: str, required: bool = True) -> tuple[Credential, ...]:
    return (Credential("api_key", env, required),)


# What `blueprint init` writes where a person must put a value of their own: init writes these and
# validate and render look for them, so that they can say which fields still hold one.
AZURE_RESOURCE_PLACEHOLDER = "https://YOUR-RESOURCE.openai.azure.com"
VERTEX_PROJECT_PLACEHOLDER = "your-project"
PLACEHOLDERS = frozenset({AZURE_RESOURCE_PLACEHOLDER, VERTEX_PROJECT_PLACEHOLDER})

# Containers reach the host through this name (podman run --add-host default since Podman 4.7;
# netavark adds it on every network): localhost inside a container is the container itself.
HOST_FROM_CONTAINER = "host.containers.internal"

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("openai", "openai", "OpenAI", _key("OPENAI_API_KEY"), starter_models=("gpt-4o-mini",)),
        Provider(
            "anthropic", "anthropic", "Anthropic", _key("ANTHROPIC_API_KEY"), starter_models=("claude-sonnet-4-5",)
        ),
        Provider(
            "azure",
            "azure",
            "Azure OpenAI",
            _key("AZURE_API_KEY"),
            settings=(Setting("api_version", "api_version"),),
            base_url="required",
            example_base_url="https://<your-resource>.openai.azure.com",
            starter_models=("gpt-4o-mini",),  # the name of your deployment
            starter_fields={"base_url": AZURE_RESOURCE_PLACEHOLDER, "api_version": "2024-10-21"},
        ),
        Provider(
            "bedrock",
            "bedrock",
            "AWS Bedrock",
            (
                Credential("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
                Credential("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
            ),
            settings=(Setting("region", "aws_region_name"),),
            starter_models=("anthropic.claude-3-5-haiku-20241022-v1:0",),
            starter_fields={"region": "us-east-1"},
        ),
        Provider(
            "gemini",
            "gemini",
            "Google AI Studio (Gemini)",
            _key("GEMINI_API_KEY"),
            starter_models=("gemini-2.5-flash",),
        ),
        Provider(
            "vertex_ai",
            "vertex_ai",
            "Google Vertex AI",
            # A service-account JSON document; LiteLLM takes it as a string or a file path.
            (Credential("vertex_credentials", "VERTEXAI_CREDENTIALS", document=True),),
            settings=(Setting("project", "vertex_project"), Setting("location", "vertex_location")),
            starter_models=("gemini-2.5-flash",),
            starter_fields={"project": VERTEX_PROJECT_PLACEHOLDER, "location": "us-central1"},
        ),
        Provider(
            "openrouter",
            "openrouter",
            "OpenRouter",
            _key("OPENROUTER_API_KEY"),
            starter_models=("anthropic/claude-3.5-sonnet",),
        ),
        Provider("perplexity", "perplexity", "Perplexity", _key("PERPLEXITYAI_API_KEY"), starter_models=("sonar",)),
        Provider("groq", "groq", "Groq", _key("GROQ_API_KEY"), starter_models=("llama-3.1-8b-instant",)),
        Provider("mistral", "mistral", "Mistral AI", _key("MISTRAL_API_KEY"), starter_models=("mistral-small-latest",)),
        Provider(
            "together_ai",
            "together_ai",
            "Together AI",
            _key("TOGETHERAI_API_KEY"),
            starter_models=("meta-llama/Llama-3.3-70B-Instruct-Turbo",),
        ),
        Provider("cohere", "cohere_chat", "Cohere", _key("COHERE_API_KEY"), starter_models=("command-r",)),
        Provider("ai21", "ai21_chat", "AI21", _key("AI21_API_KEY"), starter_models=("jamba-1.5-mini",)),
        Provider(
            "huggingface",
            "huggingface",
            "Hugging Face",
            _key("HUGGINGFACE_API_KEY"),
            starter_models=("meta-llama/Llama-3.3-70B-Instruct",),
        ),
        # ollama_chat is LiteLLM's recommended route for chat models (/api/chat).
        Provider(
            "ollama",
            "ollama_chat",
            "Ollama",
            _key("OLLAMA_API_KEY", required=False),
            default_base_url=f"http://{HOST_FROM_CONTAINER}:11434",
            self_hosted=True,
            starter_models=("llama3.2",),
        ),
        Provider(
            "hosted_vllm",
            "hosted_vllm",
            "vLLM (OpenAI-compatible server)",
            _key("HOSTED_VLLM_API_KEY", required=False),
            base_url="required",
            self_hosted=True,
            starter_models=("meta-llama/Llama-3.1-8B-Instruct",),
            starter_fields={"base_url": f"http://{HOST_FROM_CONTAINER}:8000/v1"},
        ),
        Provider(
            "lm_studio",
            "lm_studio",
            "LM Studio",
            _key("LM_STUDIO_API_KEY", required=False),
            base_url="required",
            self_hosted=True,
            starter_models=("llama-3.2-3b-instruct",),
            starter_fields={"base_url": f"http://{HOST_FROM_CONTAINER}:1234/v1"},
        ),
        Provider(
            "openai_compatible",
            "openai",
            "Any OpenAI-compatible server (LocalAI, llama.cpp, TGI, ...)",
            _key("OPENAI_COMPATIBLE_API_KEY", required=False),
            base_url="required",
            keyless_api_key="none",
            self_hosted=True,
            starter_models=("local-model",),
            starter_fields={"base_url": f"http://{HOST_FROM_CONTAINER}:8080/v1"},
        ),
    )
}

# Every provider-specific field of a config entry (a field of one provider is refused on another).
PROVIDER_FIELDS = {c.field for p in PROVIDERS.values() for c in p.credentials} | {
    s.field for p in PROVIDERS.values() for s in p.settings
}

# The usual variables of every credential, which a key may always be named by.
VARIABLES = frozenset(c.env for p in PROVIDERS.values() for c in p.credentials)

# The usual variables of the credentials that are JSON documents.
JSON_CREDENTIALS = frozenset(c.env for p in PROVIDERS.values() for c in p.credentials if c.document)

# Names people use for the same thing; an entry called "vllm" needs no "provider" field.
ALIASES = {"vllm": "hosted_vllm", "localai": "openai_compatible", "google": "gemini"}


def is_placeholder(value: str) -> bool:
    """Whether `value` is, whole, one `blueprint init` wrote for a person to replace: a resource of
    one's own may well be named your-company-ai."""
    return value in PLACEHOLDERS


def lookup(name: str) -> Provider | None:
    return PROVIDERS.get(ALIASES.get(name, name))


def provider_names() -> list[str]:
    return sorted([*PROVIDERS, *ALIASES])
