"""The JSON schema of each inference route, checked in one pass over the raw bytes.

Each route's body is a TypedDict validated by a TypeAdapter built once at import: pydantic
parses and checks the bytes in one step and hands back plain dicts and lists, which are
forwarded upstream as they are.  Unknown fields are refused (an allow-list: a new field
reaches an upstream only once someone decided it may).  The schema holds hard ceilings; the
configured limits (``gateway.validation``) are checked after, on the parsed value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired, Required  # pydantic needs these on 3.11

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from tsuba.core.config import ValidationSettings
from tsuba.core.errors import InputError

_NAME = Annotated[str, Field(min_length=1, max_length=256)]
_SHORT = Annotated[str, Field(max_length=256)]
_TEXT = Annotated[str, Field(max_length=10_000_000)]
_TOKENS = Annotated[int, Field(ge=1, le=10_000_000)]
_OBJ = dict[str, Any]
_STOP = Annotated[str, Field(max_length=1024)] | Annotated[
    list[Annotated[str, Field(max_length=1024)]], Field(max_length=16)
]
_LOGIT_BIAS = Annotated[
    dict[str, Annotated[float, Field(ge=-100, le=100)]], Field(max_length=1024)
]
_TOKEN_IDS = Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=1_000_000)]

_FORBID = ConfigDict(extra="forbid")


@with_config(_FORBID)
class StreamOptions(TypedDict, total=False):
    include_usage: bool
    include_obfuscation: bool


@with_config(_FORBID)
class ContentPart(TypedDict, total=False):
    type: Required[Literal["text", "image_url", "input_audio", "file", "refusal"]]
    text: _TEXT
    image_url: _OBJ
    input_audio: _OBJ
    file: _OBJ
    refusal: _TEXT


@with_config(_FORBID)
class Message(TypedDict, total=False):
    role: Required[Literal["system", "developer", "user", "assistant", "tool", "function"]]
    content: _TEXT | Annotated[list[ContentPart], Field(max_length=1024)] | None
    name: _SHORT
    tool_calls: Annotated[list[_OBJ], Field(max_length=1024)]
    tool_call_id: _SHORT
    function_call: _OBJ
    refusal: _TEXT | None
    audio: _OBJ | None


@with_config(_FORBID)
class ChatRequest(TypedDict, total=False):
    model: Required[_NAME]
    messages: Required[Annotated[list[Message], Field(min_length=1, max_length=100_000)]]
    stream: bool | None
    stream_options: StreamOptions | None
    max_tokens: _TOKENS | None
    max_completion_tokens: _TOKENS | None
    n: Annotated[int, Field(ge=1, le=128)] | None
    temperature: Annotated[float, Field(ge=0, le=2)] | None
    top_p: Annotated[float, Field(ge=0, le=1)] | None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None
    stop: _STOP | None
    logit_bias: _LOGIT_BIAS | None
    logprobs: bool | None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None
    seed: int | None
    user: _SHORT
    response_format: _OBJ
    tools: Annotated[list[_OBJ], Field(max_length=1024)]
    tool_choice: _SHORT | _OBJ
    parallel_tool_calls: bool
    functions: Annotated[list[_OBJ], Field(max_length=1024)]
    function_call: _SHORT | _OBJ
    metadata: Annotated[dict[str, _TEXT], Field(max_length=64)] | None
    store: bool | None
    service_tier: _SHORT | None
    modalities: Annotated[list[_SHORT], Field(max_length=8)] | None
    reasoning_effort: _SHORT | None
    prediction: _OBJ | None
    audio: _OBJ | None
    web_search_options: _OBJ


@with_config(_FORBID)
class CompletionRequest(TypedDict, total=False):
    model: Required[_NAME]
    prompt: Required[
        _TEXT
        | Annotated[list[_TEXT], Field(max_length=100_000)]
        | _TOKEN_IDS
        | Annotated[list[_TOKEN_IDS], Field(max_length=100_000)]
    ]
    suffix: _TEXT | None
    stream: bool | None
    stream_options: StreamOptions | None
    max_tokens: _TOKENS | None
    n: Annotated[int, Field(ge=1, le=128)] | None
    best_of: Annotated[int, Field(ge=1, le=128)] | None
    temperature: Annotated[float, Field(ge=0, le=2)] | None
    top_p: Annotated[float, Field(ge=0, le=1)] | None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None
    stop: _STOP | None
    logit_bias: _LOGIT_BIAS | None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None
    echo: bool | None
    seed: int | None
    user: _SHORT


@with_config(_FORBID)
class EmbeddingRequest(TypedDict, total=False):
    model: Required[_NAME]
    input: Required[
        _TEXT
        | Annotated[list[_TEXT], Field(min_length=1, max_length=100_000)]
        | _TOKEN_IDS
        | Annotated[list[_TOKEN_IDS], Field(min_length=1, max_length=100_000)]
    ]
    encoding_format: Literal["float", "base64"]
    dimensions: Annotated[int, Field(ge=1, le=65_536)]
    user: _SHORT


@with_config(_FORBID)
class PredictRequest(TypedDict):
    """KServe V1 ("instances"), the most common JSON contract of classic ML servers."""

    instances: Annotated[list[Any], Field(min_length=1)]
    parameters: NotRequired[_OBJ]


CHAT = TypeAdapter(ChatRequest)
COMPLETIONS = TypeAdapter(CompletionRequest)
EMBEDDINGS = TypeAdapter(EmbeddingRequest)
PREDICT = TypeAdapter(PredictRequest)

ROUTE_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "chat": CHAT,
    "completions": COMPLETIONS,
    "embeddings": EMBEDDINGS,
    "predict": PREDICT,
}


class RequestInvalid(InputError):
    """A request body that breaks the route's schema or a configured limit (HTTP 400)."""

    code = "invalid_request"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class BodyTooLarge(InputError):
    code = "request_too_large"


@dataclass(frozen=True, slots=True)
class Checked:
    """A validated body and what the limits stage needs to know about it."""

    body: dict[str, Any]
    model: str
    stream: bool
    input_chars: int
    max_output_tokens: int | None  # as requested; None: the model's default applies
    choices: int


def parse(route: str, raw: bytes, limits: ValidationSettings) -> Checked:
    """Parse and check ``raw`` for ``route``; RequestInvalid names the first problem."""
    try:
        body: dict[str, Any] = ROUTE_ADAPTERS[route].validate_json(raw)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if route == "chat":
        return _check_chat(body, limits)
    if route == "completions":
        return _check_completions(body, limits)
    if route == "embeddings":
        return _check_embeddings(body, limits)
    return _check_predict(body, limits)


def _invalid(exc: ValidationError) -> RequestInvalid:
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] in ("json_invalid", "json_type"):
        return RequestInvalid(f"request body is not valid JSON: {err['msg']}")
    if err["type"] == "model_type" or (err["type"] == "dict_type" and not loc):
        return RequestInvalid("request body must be a JSON object")
    if err["type"] == "extra_forbidden":
        return RequestInvalid(f"unknown field '{loc}': remove it", param=loc)
    if err["type"] == "missing":
        return RequestInvalid(f"missing required field '{loc}'", param=loc)
    return RequestInvalid(f"{loc or 'body'}: {err['msg']}", param=loc or None)


def message_text_chars(msg: dict[str, Any]) -> int:
    content = msg.get("content")
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(p.get("text") or "") for p in content)
    return 0


def _output_tokens(value: int | None, limits: ValidationSettings, field: str) -> None:
    if value is not None and value > limits.max_output_tokens:
        raise RequestInvalid(
            f"{field} {value} is above the gateway's limit of {limits.max_output_tokens}",
            param=field,
        )


def _choices(n: int | None, limits: ValidationSettings) -> int:
    if n is not None and n > limits.max_n:
        raise RequestInvalid(f"n {n} is above the gateway's limit of {limits.max_n}", param="n")
    return n or 1


def _input_chars(chars: int, limits: ValidationSettings) -> None:
    if chars > limits.max_input_chars:
        raise RequestInvalid(
            f"the request holds {chars} characters of input, above the gateway's limit of "
            f"{limits.max_input_chars}"
        )


def _check_chat(body: dict[str, Any], limits: ValidationSettings) -> Checked:
    messages = body["messages"]
    if len(messages) > limits.max_messages:
        raise RequestInvalid(
            f"{len(messages)} messages is above the gateway's limit of {limits.max_messages}",
            param="messages",
        )
    chars = sum(message_text_chars(m) for m in messages)
    _input_chars(chars, limits)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    _output_tokens(body.get("max_tokens"), limits, "max_tokens")
    _output_tokens(body.get("max_completion_tokens"), limits, "max_completion_tokens")
    return Checked(
        body, body["model"], bool(body.get("stream")), chars, max_tokens,
        _choices(body.get("n"), limits),
    )


def _prompt_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if value and isinstance(value[0], str):
        return sum(len(p) for p in value)
    if value and isinstance(value[0], list):
        return sum(len(p) * 4 for p in value)
    return len(value) * 4  # token ids: about four characters each


def _check_completions(body: dict[str, Any], limits: ValidationSettings) -> Checked:
    chars = _prompt_chars(body["prompt"]) + len(body.get("suffix") or "")
    _input_chars(chars, limits)
    _output_tokens(body.get("max_tokens"), limits, "max_tokens")
    best_of = body.get("best_of")
    n = _choices(body.get("n"), limits)
    if best_of is not None and best_of > limits.max_n:
        raise RequestInvalid(
            f"best_of {best_of} is above the gateway's limit of {limits.max_n}", param="best_of"
        )
    return Checked(
        body, body["model"], bool(body.get("stream")), chars, body.get("max_tokens"),
        max(n, best_of or 1),
    )


def _check_embeddings(body: dict[str, Any], limits: ValidationSettings) -> Checked:
    value = body["input"]
    count = 1 if isinstance(value, str) or (value and isinstance(value[0], int)) else len(value)
    if count > limits.max_embedding_inputs:
        raise RequestInvalid(
            f"{count} inputs is above the gateway's limit of {limits.max_embedding_inputs}",
            param="input",
        )
    chars = _prompt_chars(value)
    _input_chars(chars, limits)
    return Checked(body, body["model"], False, chars, 0, 1)


_MAX_DEPTH = 8
_MAX_STRING = 4096


def _count_features(value: Any, depth: int, budget: list[int]) -> None:
    if depth > _MAX_DEPTH:
        raise RequestInvalid(f"instances are nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, list):
        for item in value:
            _count_features(item, depth + 1, budget)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if len(key) > _MAX_STRING:
                raise RequestInvalid(f"a feature name is longer than {_MAX_STRING} characters")
            _count_features(item, depth + 1, budget)
        return
    if isinstance(value, str) and len(value) > _MAX_STRING:
        raise RequestInvalid(f"a feature value is longer than {_MAX_STRING} characters")
    budget[0] -= 1
    if budget[0] < 0:
        raise RequestInvalid("the request holds more feature values than the gateway allows")


def _check_predict(body: dict[str, Any], limits: ValidationSettings) -> Checked:
    _count_features(body["instances"], 0, [limits.max_features])
    return Checked(body, "", False, 0, 0, 1)


def estimate_tokens(checked: Checked, default_max_tokens: int) -> int:
    """Prompt tokens (about four characters each) plus the most the reply may spend."""
    prompt = checked.input_chars // 4 + 1
    reply = (
        checked.max_output_tokens
        if checked.max_output_tokens is not None
        else default_max_tokens
    )
    return prompt + reply * checked.choices
