"""Hypothesis strategies for the route fuzzer (test_fuzz.py): plausible request bodies for each
dialect, then mutated (a value anywhere in the tree swapped for any JSON, a key or item dropped,
a stray key added), plus raw bytes that are not JSON at all. Valid-looking bodies reach routing and
the fake upstreams; mutated ones probe every field's type check."""

from __future__ import annotations

import base64
import copy
from typing import Any

from hypothesis import strategies as st

# Names the fuzz gateway knows (routers and models of tests/dialects/conftest.mixed_config),
# and a few it does not.
MODEL_NAMES = st.sampled_from(
    ["auto", "oa-an", "an-br", "br-oa", "oa", "an", "br", "haiku-an", "o4-oa", "nope", ""]
)
BEDROCK_IDS = st.sampled_from(
    [
        "auto",
        "br",
        "an",
        "oa",
        "amazon.nova-fake-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/auto",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/x/y",
        "unknown.model-v1:0",
        "%00",
        "x" * 300,
    ]
)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
any_json = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
short_text = st.text(max_size=40)
schema = st.sampled_from(
    [
        {"type": "object", "properties": {"city": {"type": "string"}}},
        {"type": "object"},
    ]
)


# ---- OpenAI ------------------------------------------------------------------------------------


@st.composite
def openai_message(draw: st.DrawFn) -> dict[str, Any]:
    role = draw(st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]))
    content: Any = draw(
        st.one_of(
            short_text,
            st.none(),
            st.lists(
                st.one_of(
                    st.fixed_dictionaries({"type": st.just("text"), "text": short_text}),
                    st.just(
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
                    ),
                    st.just({"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}),
                ),
                max_size=3,
            ),
        )
    )
    message: dict[str, Any] = {"role": role, "content": content}
    if role == "assistant" and draw(st.booleans()):
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
        ]
    if role == "tool":
        message["tool_call_id"] = "call_1"
    return message


@st.composite
def openai_chat(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": draw(MODEL_NAMES),
        "messages": draw(st.lists(openai_message(), min_size=1, max_size=3)),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "stream": st.booleans(),
        "stream_options": st.just({"include_usage": True}),
        "max_tokens": st.integers(1, 64),
        "max_completion_tokens": st.integers(1, 64),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "stop": st.one_of(short_text, st.lists(short_text, max_size=2)),
        "user": short_text,
        "metadata": st.dictionaries(st.text(max_size=8), short_text, max_size=2),
        "response_format": st.just({"type": "json_object"}),
        "tools": st.just(
            [
                {
                    "type": "function",
                    "function": {"name": "weather", "parameters": {"type": "object"}},
                }
            ]
        ),
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "functions": st.just([{"name": "weather", "parameters": {"type": "object"}}]),
        "seed": st.integers(0, 100),
    }
    return _with_optional(draw, body, optional)


@st.composite
def openai_embeddings(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "model": draw(MODEL_NAMES),
        "input": draw(st.one_of(short_text, st.lists(short_text, min_size=1, max_size=3))),
    }


# ---- Anthropic ---------------------------------------------------------------------------------


anthropic_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": short_text}),
    st.just(
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    ),
    st.just({"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}),
    st.just({"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}),
    st.just({"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}),
    st.just({"type": "thinking", "thinking": "hmm", "signature": "sig"}),
)


@st.composite
def anthropic_messages(draw: st.DrawFn, *, count_tokens: bool = False) -> dict[str, Any]:
    messages = [
        {
            "role": draw(st.sampled_from(["user", "assistant"])),
            "content": draw(st.one_of(short_text, st.lists(anthropic_block, max_size=3))),
        }
        for _ in range(draw(st.integers(1, 3)))
    ]
    body: dict[str, Any] = {"model": draw(MODEL_NAMES), "messages": messages}
    if not count_tokens:
        body["max_tokens"] = draw(st.integers(1, 64))
    optional: dict[str, st.SearchStrategy[Any]] = {
        "system": st.one_of(
            short_text,
            st.lists(
                st.fixed_dictionaries({"type": st.just("text"), "text": short_text}), max_size=2
            ),
        ),
        "stream": st.booleans(),
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "stop_sequences": st.lists(short_text, max_size=2),
        "metadata": st.fixed_dictionaries({"user_id": short_text}),
        "tools": st.just(
            [{"name": "weather", "description": "w", "input_schema": {"type": "object"}}]
        ),
        "tool_choice": st.sampled_from(
            [
                {"type": "auto"},
                {"type": "any"},
                {"type": "none"},
                {"type": "tool", "name": "weather"},
            ]
        ),
        "top_k": st.integers(1, 5),
    }
    return _with_optional(draw, body, optional)


@st.composite
def bedrock_invoke(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(anthropic_messages())
    body.pop("model", None)
    body.pop("stream", None)
    body["anthropic_version"] = "bedrock-2023-05-31"
    return body


# ---- Bedrock Converse --------------------------------------------------------------------------


converse_block = st.one_of(
    st.fixed_dictionaries({"text": short_text}),
    st.just({"image": {"format": "png", "source": {"bytes": PNG}}}),
    st.just({"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}}),
    st.just(
        {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}, {"json": {"a": 1}}]}}
    ),
    st.just({"cachePoint": {"type": "default"}}),
)


@st.composite
def bedrock_converse(draw: st.DrawFn) -> dict[str, Any]:
    messages = [
        {
            "role": draw(st.sampled_from(["user", "assistant"])),
            "content": draw(st.lists(converse_block, min_size=1, max_size=3)),
        }
        for _ in range(draw(st.integers(1, 3)))
    ]
    body: dict[str, Any] = {"messages": messages}
    optional: dict[str, st.SearchStrategy[Any]] = {
        "system": st.lists(st.fixed_dictionaries({"text": short_text}), max_size=2),
        "inferenceConfig": st.fixed_dictionaries(
            {},
            optional={
                "maxTokens": st.integers(1, 64),
                "temperature": st.floats(0, 1),
                "topP": st.floats(0, 1),
                "stopSequences": st.lists(short_text, max_size=2),
            },
        ),
        "toolConfig": st.just(
            {
                "tools": [
                    {"toolSpec": {"name": "weather", "inputSchema": {"json": {"type": "object"}}}},
                    {"cachePoint": {"type": "default"}},
                ],
                "toolChoice": {"auto": {}},
            }
        ),
        "requestMetadata": st.dictionaries(st.text(max_size=8), short_text, max_size=2),
        "additionalModelRequestFields": any_json,
    }
    return _with_optional(draw, body, optional)


def _with_optional(
    draw: st.DrawFn, body: dict[str, Any], optional: dict[str, st.SearchStrategy[Any]]
) -> dict[str, Any]:
    """``body`` with up to four of the ``optional`` fields drawn and set."""
    for key in draw(st.sets(st.sampled_from(sorted(optional)), max_size=4)):
        body[key] = draw(optional[key])
    return body


# ---- mutation ----------------------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON tree (the root excluded)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            out.append((*prefix, key))
            out.extend(_paths(inner, (*prefix, key)))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            out.append((*prefix, i))
            out.extend(_paths(inner, (*prefix, i)))
    return out


def _parent(tree: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        tree = tree[step]
    return tree


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Any:
    """``base`` with 0-3 mutations: most cases keep a mostly valid body, so deep fields are
    reached before a shallow check refuses the request."""
    body = copy.deepcopy(draw(base))  # st.just() hands out one shared object
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(body)
        if not paths:
            return draw(any_json)
        path = draw(st.sampled_from(paths))
        parent = _parent(body, path)
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(any_json)
        elif action == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(any_json)
        else:
            parent.append(draw(any_json))
    return body
