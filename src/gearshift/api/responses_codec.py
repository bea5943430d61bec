"""OpenAI Responses API wire format <-> gearshift's internal chat types.

``parse_request`` turns a ``POST /v1/responses`` body into a ``ChatRequest`` (``input`` as a string
or as items: messages with text and image parts, ``function_call`` and ``function_call_output``
items; ``instructions`` as the system prompt; function tools; ``text.format`` as the response
format), so any upstream (OpenAI-compatible, Anthropic, Bedrock) can answer it through the
router. ``render_response`` writes a ``response`` object; ``api/responses.py`` writes the stream.

A non-streamed request whose every candidate model is an OpenAI upstream with ``responses_api:
true`` is passed through to its ``/responses`` (``decode_response`` reads the answer for pricing;
the client gets the upstream's body). ``previous_response_id`` (and ``conversation``) need such
an upstream, which keeps the state; elsewhere they are refused with a 400 that says why.
"""

from __future__ import annotations

import time
from typing import Any

from gearshift.api.fields import check_model_name, optional_flag, short_repr
from gearshift.api.openai_codec import image_from_url, metadata_and_user, opt_float, opt_int
from gearshift.chat import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    FinishReason,
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
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}
# Parameters ChatRequest models itself; the rest go to ``extra`` (part of the cache key).
_KNOWN = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "temperature",
        "top_p",
        "text",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "parallel_tool_calls",
    }
)
STATELESS = (
    "'{field}' needs an upstream that keeps conversation state: a non-streamed request to a "
    "model (or a router whose every candidate is one) with responses_api: true. Chat upstreams "
    "keep none: send the whole conversation in 'input' (earlier output items included) instead"
)


def parse_request(body: Any) -> ChatRequest:
    """Validate a Responses body; every problem is a 400 naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = check_model_name(body.get("model"), "'model'")
    messages: list[Message] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidRequest("'instructions' must be a string", param="instructions")
        messages.append(Message(role="system", content=[TextPart(instructions)]))
    messages += _parse_input(body.get("input"))
    metadata, user = metadata_and_user(body)
    return ChatRequest(
        model=model,
        messages=messages,
        dialect="responses",
        tools=_parse_tools(body.get("tools")),
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        max_tokens=opt_int(body, "max_output_tokens"),
        temperature=opt_float(body, "temperature"),
        top_p=opt_float(body, "top_p"),
        stream=optional_flag(body, "stream", "'stream'"),
        response_format=_parse_text_format(body.get("text")),
        user=user,
        metadata=metadata,
        extra={k: v for k, v in body.items() if k not in _KNOWN},
        raw=body,
    )


def stateful_field(body: dict[str, Any]) -> str | None:
    """The field that asks the upstream to remember a conversation, if the body has one."""
    for name in ("previous_response_id", "conversation"):
        if body.get(name) is not None:
            return name
    return None


def decode_response(data: dict[str, Any]) -> ChatResponse:
    """A Responses upstream's ``response`` object -> ChatResponse (its body kept as ``raw``)."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for item in data.get("output") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            texts += [
                str(p.get("text", ""))
                for p in item.get("content") or ()
                if isinstance(p, dict) and p.get("type") == "output_text"
            ]
        elif item.get("type") == "function_call":
            calls.append(
                ToolCall(
                    str(item.get("call_id", "")),
                    str(item.get("name", "")),
                    str(item.get("arguments", "")),
                )
            )
    block = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    assert isinstance(block, dict)
    usage = Usage(
        input_tokens=int(block.get("input_tokens") or 0),
        output_tokens=int(block.get("output_tokens") or 0),
        cache_read_tokens=int((block.get("input_tokens_details") or {}).get("cached_tokens") or 0),
        reasoning_tokens=int(
            (block.get("output_tokens_details") or {}).get("reasoning_tokens") or 0
        ),
    )
    incomplete = (data.get("incomplete_details") or {}).get("reason")
    finish: FinishReason = (
        "tool_calls" if calls else "length" if incomplete == "max_output_tokens" else "stop"
    )
    return ChatResponse(
        id=str(data.get("id", "")),
        model=str(data.get("model", "")),
        content=[TextPart("".join(texts))] if texts else [],
        tool_calls=calls,
        finish_reason=finish,
        usage=usage,
        created=int(data.get("created_at") or 0),
        raw=data,
    )


def _parse_input(value: Any) -> list[Message]:
    if isinstance(value, str):
        return [Message(role="user", content=[TextPart(value)])]
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "'input' must be a string or a non-empty array of items", param="input"
        )
    messages: list[Message] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            given = item.get("role")
            role = _ROLES.get(given) if isinstance(given, str) else None
            if role is None:
                raise InvalidRequest(
                    f"{where}.role must be one of user, system, developer, assistant; "
                    f"got {short_repr(item.get('role'))}",
                    param=f"{where}.role",
                )
            messages.append(Message(role=role, content=_parse_content(item.get("content"), where)))
        elif kind == "function_call":
            call = ToolCall(
                id=_string(item, "call_id", where),
                name=_string(item, "name", where),
                arguments=str(item.get("arguments") or ""),
            )
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant" and not last.content:
                last.tool_calls.append(call)  # parallel calls: one assistant turn
            else:
                messages.append(Message(role="assistant", tool_calls=[call]))
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _output_text(output, where)
            messages.append(
                Message(
                    role="tool",
                    content=[TextPart(text)],
                    tool_call_id=_string(item, "call_id", where),
                )
            )
        elif kind == "reasoning":
            continue  # a model's own reasoning summary: not part of the prompt a chat API takes
        else:
            raise InvalidRequest(
                f"{where}: input items of type {short_repr(kind)} are not supported; use "
                "message, function_call or function_call_output",
                param=f"{where}.type",
            )
    return messages


def _parse_content(content: Any, where: str) -> list[ContentPart]:
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise InvalidRequest(
            f"{where}.content must be a string or an array of parts", param=f"{where}.content"
        )
    parts: list[ContentPart] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            assert isinstance(part, dict)
            parts.append(TextPart(_string(part, "text", at)))
        elif kind == "input_image":
            assert isinstance(part, dict)
            url = part.get("image_url")
            if not isinstance(url, str):
                raise InvalidRequest(
                    f"{at}: an input_image needs 'image_url' (an https or data: URL); "
                    "file_id images live in OpenAI's file store, which gearshift cannot read",
                    param=at,
                )
            parts.append(image_from_url(url))
        else:
            raise InvalidRequest(
                f"{at}: content parts of type {short_repr(kind)} are not supported; use "
                "input_text or input_image",
                param=at,
            )
    return parts


def _output_text(output: Any, where: str) -> str:
    """A function_call_output given as content parts: their text, joined."""
    if isinstance(output, list):
        return "".join(
            str(p.get("text", "")) for p in output if isinstance(p, dict) and "text" in p
        )
    raise InvalidRequest(f"{where}.output must be a string", param=f"{where}.output")


def _string(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.{key} must be a string", param=f"{where}.{key}")
    return value


def _parse_tools(value: Any) -> list[Tool]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("'tools' must be an array", param="tools")
    tools: list[Tool] = []
    for i, spec in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(spec, dict) or spec.get("type") != "function":
            kind = spec.get("type") if isinstance(spec, dict) else None
            raise InvalidRequest(
                f"{where}: tools of type {short_repr(kind)} are OpenAI-hosted tools gearshift "
                "cannot run for other upstreams; only function tools are supported",
                param=where,
            )
        params = spec.get("parameters")
        tools.append(
            Tool(
                name=_string(spec, "name", where),
                description=str(spec.get("description") or ""),
                parameters=params if isinstance(params, dict) else {"type": "object"},
            )
        )
    return tools


def _parse_tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if isinstance(name, str) and name:
            return {"name": name}
    raise InvalidRequest(
        "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", "
        '"name": ...}',
        param="tool_choice",
    )


def _parse_text_format(text: Any) -> dict[str, Any] | None:
    """``text.format`` -> the Chat Completions ``response_format`` every provider understands."""
    if text is None:
        return None
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt, dict) and isinstance(fmt.get("schema"), dict):
        schema: dict[str, Any] = {
            "name": str(fmt.get("name") or "response"),
            "schema": fmt["schema"],
        }
        if isinstance(fmt.get("strict"), bool):
            schema["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(
        '\'text.format\' must be {"type": "text"}, {"type": "json_object"} or '
        '{"type": "json_schema", "name": ..., "schema": {...}}',
        param="text.format",
    )


# ---- ChatResponse -> response object ----------------------------------------------------------


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if text else []
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def call_item(item_id: str, call: ToolCall, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def envelope(
    response_id: str, model: str, request: ChatRequest, status: str, created: int | None = None
) -> dict[str, Any]:
    """The response object's fields besides ``output`` and ``usage``, echoing the request."""
    raw = request.raw or {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created if created is not None else int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": raw.get("instructions"),
        "max_output_tokens": request.max_tokens,
        "model": model,
        "output": [],
        "parallel_tool_calls": raw.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "store": False,  # nothing is kept: see STATELESS
        "temperature": request.temperature,
        "text": raw.get("text") or {"format": {"type": "text"}},
        "tool_choice": raw.get("tool_choice", "auto"),
        "tools": raw.get("tools") or [],
        "top_p": request.top_p,
        "usage": None,
        "metadata": request.metadata,
    }


def finish(body: dict[str, Any], finish_reason: str, usage: Usage) -> dict[str, Any]:
    """Mark a response object done: completed, or incomplete when the answer was cut short."""
    if finish_reason == "length":
        body["status"] = "incomplete"
        body["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        body["status"] = "incomplete"
        body["incomplete_details"] = {"reason": "content_filter"}
    else:
        body["status"] = "completed"
    body["usage"] = usage_body(usage)
    return body


def render_response(
    response: ChatResponse, response_id: str, model: str, request: ChatRequest
) -> dict[str, Any]:
    body = envelope(response_id, model, request, "completed", response.created or None)
    output: list[dict[str, Any]] = []
    text = response.text()
    if text or not response.tool_calls:
        output.append(message_item(f"msg_{response_id}", text))
    for n, call in enumerate(response.tool_calls):
        output.append(call_item(f"fc_{response_id}_{n}", call))
    body["output"] = output
    return finish(body, response.finish_reason, response.usage)
