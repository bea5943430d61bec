"""OpenAI Chat Completions wire format <-> gearshift's internal chat types, both directions.

The inbound dialect (``api/openai.py``) parses client bodies and renders responses and chunks;
the OpenAI-compatible provider encodes requests for the upstream and decodes its answers. Keeping
both directions in one module keeps them symmetric.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from gearshift.api.fields import check_model_name, optional_flag, short_repr, string_list
from gearshift.chat import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    FinishReason,
    ImagePart,
    Message,
    Role,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)
from gearshift.errors import InvalidRequest

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",  # o-series name for the system prompt; same routing meaning
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
# Parameters ChatRequest models itself; everything else is kept in ``extra``.
_KNOWN = frozenset(
    {
        "model",
        "messages",
        "tools",
        "functions",
        "tool_choice",
        "function_call",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
        "response_format",
        "user",
        "metadata",
    }
)


# ---- client body -> ChatRequest ---------------------------------------------------------------


def parse_request(body: Any) -> ChatRequest:
    """Validate an OpenAI Chat Completions body; every problem is a 400 naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = check_model_name(body.get("model"), "'model'")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    messages = [_parse_message(m, i) for i, m in enumerate(raw_messages)]
    tools = _parse_tools(body)
    metadata, user = metadata_and_user(body)
    return ChatRequest(
        model=model,
        messages=messages,
        dialect="openai",
        tools=tools,
        tool_choice=_parse_tool_choice(body),
        max_tokens=opt_int(body, "max_completion_tokens") or opt_int(body, "max_tokens"),
        temperature=opt_float(body, "temperature"),
        top_p=opt_float(body, "top_p"),
        stop=_parse_stop(body.get("stop")),
        stream=optional_flag(body, "stream", "'stream'"),
        response_format=_parse_response_format(body.get("response_format")),
        user=user,
        metadata=metadata,
        extra={k: v for k, v in body.items() if k not in _KNOWN},
        raw=body,
    )


def metadata_and_user(body: dict[str, Any]) -> tuple[dict[str, str], str | None]:
    """OpenAI's ``metadata`` (an object of strings) and ``user`` (a string), checked: both
    become attribution tags."""
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest("'metadata' must be an object of strings", param="metadata")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("'user' must be a string", param="user")
    return ({str(k): str(v) for k, v in metadata.items()} if metadata else {}), user


def _parse_message(raw: Any, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    given = raw.get("role")
    role = _ROLES.get(given) if isinstance(given, str) else None
    if role is None:
        raise InvalidRequest(
            f"{where}.role must be one of system, developer, user, assistant, tool; "
            f"got {short_repr(given)}",
            param=f"{where}.role",
        )
    message = Message(role=role, content=_parse_content(raw.get("content"), where))
    if isinstance(raw.get("name"), str):
        message.name = raw["name"]
    if role == "tool":
        call_id = raw.get("tool_call_id") or raw.get("name")
        message.tool_call_id = call_id if isinstance(call_id, str) else None
    calls = raw.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise InvalidRequest(f"{where}.tool_calls must be an array", param=f"{where}.tool_calls")
    for call in calls or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(
                f"{where}.tool_calls entries need function.name", param=f"{where}.tool_calls"
            )
        args = fn.get("arguments", "")
        message.tool_calls.append(
            ToolCall(
                id=str(call.get("id", "")),
                name=fn["name"],
                arguments=args if isinstance(args, str) else _dumps(args),
            )
        )
    legacy = raw.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("name"), str):
        message.tool_calls.append(
            ToolCall(id="", name=legacy["name"], arguments=str(legacy.get("arguments", "")))
        )
    return message


def _parse_content(content: Any, where: str) -> list[ContentPart]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise InvalidRequest(
            f"{where}.content must be a string or an array of parts", param=f"{where}.content"
        )
    parts: list[ContentPart] = []
    for part in content:
        if not isinstance(part, dict):
            raise InvalidRequest(f"{where}.content parts must be objects", param=f"{where}.content")
        kind = part.get("type")
        if kind == "text" or kind == "input_text":
            text = part.get("text", "")
            if not isinstance(text, str):
                raise InvalidRequest(
                    f"{where}.content: a text part's 'text' must be a string",
                    param=f"{where}.content",
                )
            parts.append(TextPart(text))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise InvalidRequest(
                    f"{where}.content: an image_url part needs image_url.url, a string",
                    param=f"{where}.content",
                )
            parts.append(image_from_url(url))
        # Audio and file parts reach an OpenAI upstream through the raw body; routing ignores them.
    return parts


def image_from_url(url: str) -> ImagePart:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";", 1)[0] or "image/png"
        try:
            return ImagePart(media_type=media_type, data=base64.b64decode(data))
        except ValueError:
            raise InvalidRequest("an image_url data URL is not valid base64") from None
    return ImagePart(url=url)


def _parse_tools(body: dict[str, Any]) -> list[Tool]:
    tools: list[Tool] = []
    for key in ("tools", "functions"):
        if body.get(key) is not None and not isinstance(body[key], list):
            raise InvalidRequest(f"'{key}' must be an array", param=key)
    for i, spec in enumerate(body.get("tools") or []):
        fn = spec.get("function") if isinstance(spec, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(f"tools[{i}] needs function.name", param=f"tools[{i}]")
        tools.append(_tool(fn))
    for fn in body.get("functions") or []:
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            tools.append(_tool(fn))
    return tools


def _tool(fn: dict[str, Any]) -> Tool:
    params = fn.get("parameters")
    return Tool(
        name=fn["name"],
        description=str(fn.get("description") or ""),
        parameters=params if isinstance(params, dict) else {"type": "object"},
    )


def _parse_tool_choice(body: dict[str, Any]) -> Any:
    """``tool_choice`` (or the legacy ``function_call``) as gearshift's own form: ``"auto"``,
    ``"none"``, ``"required"`` or ``{"name": ...}``."""
    key = "tool_choice" if "tool_choice" in body else "function_call"
    choice = body.get(key)
    if choice is None:
        return None
    if isinstance(choice, str) and choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        if isinstance(name, str) and name:
            return {"name": name}
        if isinstance(choice.get("type"), str):
            return None  # a newer form (allowed_tools, custom...): an OpenAI upstream gets it raw
    raise InvalidRequest(
        f"'{key}' must be 'auto', 'none', 'required' or "
        '{"type": "function", "function": {"name": ...}}',
        param=key,
    )


def _parse_stop(stop: Any) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    listed = string_list(stop)
    if listed is not None:
        return listed
    raise InvalidRequest("'stop' must be a string or an array of strings", param="stop")


def _parse_response_format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    schema = value.get("json_schema") if isinstance(value, dict) else None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("type"), str)
        or (schema is not None and not isinstance(schema, dict))
    ):
        raise InvalidRequest(
            '\'response_format\' must be an object like {"type": "json_object"} '
            "(json_schema, when given, an object)",
            param="response_format",
        )
    return value


def opt_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"'{key}' must be a positive integer", param=key)
    return value


def opt_float(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"'{key}' must be a number", param=key)
    return float(value)


# ---- ChatRequest -> upstream body -------------------------------------------------------------


def encode_request(request: ChatRequest, upstream_model: str, *, stream: bool) -> dict[str, Any]:
    """The body for an OpenAI-compatible upstream. A request that arrived in the OpenAI dialect is
    forwarded as the client sent it, with only ``model`` (and usage reporting on streams) set."""
    if request.dialect == "openai" and request.raw is not None:
        body = dict(request.raw)
        body["model"] = upstream_model
        if stream:
            body["stream"] = True
            options = body.get("stream_options")
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return body
    body = {"model": upstream_model, "messages": [_encode_message(m) for m in request.messages]}
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in request.tools
        ]
        choice = _encode_tool_choice(request.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.user:
        body["user"] = request.user
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _encode_message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if all(isinstance(p, TextPart) for p in message.content):
        out["content"] = message.text() if message.content or not message.tool_calls else None
    else:
        out["content"] = [_encode_part(p) for p in message.content]
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in message.tool_calls
        ]
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id or ""
    if message.name:
        out["name"] = message.name
    return out


def _encode_part(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if part.data is not None:
        data = base64.b64encode(part.data).decode("ascii")
        return {"type": "image_url", "image_url": {"url": f"data:{part.media_type};base64,{data}"}}
    return {"type": "image_url", "image_url": {"url": part.url or ""}}


def _encode_tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict):
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        if name:
            return {"type": "function", "function": {"name": name}}
    return None


# ---- upstream answer -> ChatResponse / usage --------------------------------------------------


def parse_usage(block: Any) -> Usage:
    if not isinstance(block, dict):
        return Usage()
    prompt_details = block.get("prompt_tokens_details") or {}
    completion_details = block.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(block.get("prompt_tokens") or 0),
        output_tokens=int(block.get("completion_tokens") or 0),
        cache_read_tokens=int(prompt_details.get("cached_tokens") or 0),
        cache_write_tokens=int(prompt_details.get("cache_write_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def finish_reason(value: Any) -> FinishReason:
    return _FINISH.get(value, "stop") if isinstance(value, str) else "stop"


def decode_response(data: dict[str, Any]) -> ChatResponse:
    choices = data.get("choices") or [{}]
    message = choices[0].get("message") or {}
    content: list[ContentPart] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append(TextPart(text))
    calls = [
        ToolCall(
            id=str(c.get("id", "")),
            name=str((c.get("function") or {}).get("name", "")),
            arguments=str((c.get("function") or {}).get("arguments", "")),
        )
        for c in message.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    return ChatResponse(
        id=str(data.get("id", "")),
        model=str(data.get("model", "")),
        content=content,
        tool_calls=calls,
        finish_reason=finish_reason(choices[0].get("finish_reason")),
        usage=parse_usage(data.get("usage")),
        created=int(data.get("created") or time.time()),
    )


# ---- ChatResponse -> client body --------------------------------------------------------------


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def render_response(response: ChatResponse, request_id: str, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.text() or None}
    if response.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in response.tool_calls
        ]
    return {
        "id": response.id or f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": response.created or int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "error"
                if response.finish_reason == "error"
                else response.finish_reason,
            }
        ],
        "usage": usage_body(response.usage),
    }


def _dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()
