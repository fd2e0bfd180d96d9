"""Render chats into prompt strings: the tokenizer's chat template when it has one, else the paper's
StarChat-style format (``<|user|>`` ... ``<|end|>``) for base models.

Config option ``chat_format``: ``auto`` (template if the tokenizer has one, else StarChat),
``template`` (require the template) or ``starchat`` (always StarChat).

A chat may end with a *prefix*: an assistant message marked ``"prefix": True`` (the name Mistral's and
DeepSeek's APIs use) is the start of the reply, which the model continues; the completion is what comes
after it. Local engines render it as the open assistant turn followed by the prefix text."""

from __future__ import annotations

from typing import Any

from .base import Chat, PromptLike

CHAT_FORMATS = ("auto", "template", "starchat")
STARCHAT_END = "<|end|>"
STARCHAT_STOP: tuple[str, ...] = (STARCHAT_END,)
_ROLES = ("system", "user", "assistant")


PREFIX_KEY = "prefix"


def has_prefix(chat: Chat) -> bool:
    """Whether the chat ends with a reply prefix the model is to continue."""
    return bool(chat) and chat[-1]["role"] == "assistant" and bool(chat[-1].get(PREFIX_KEY))


def with_prefix(chat: Chat, prefix: str) -> Chat:
    """``chat`` (ending with a user turn) with ``prefix`` as the start of the assistant's reply."""
    return [*chat, {"role": "assistant", "content": prefix, PREFIX_KEY: True}]


def validate_chat(chat: Any, where: str = "chat") -> Chat:
    """Check the chat shape; the last turn must be the user's, or an assistant *prefix* (``with_prefix``):
    an unmarked assistant turn at the end is a mistake more often than a wish to continue it."""
    if not isinstance(chat, list) or not chat:
        raise ValueError(f"{where}: a chat must be a non-empty list of messages, got {type(chat).__name__}")
    for i, m in enumerate(chat):
        if not isinstance(m, dict) or set(m) < {"role", "content"}:
            raise ValueError(
                f"{where}[{i}]: a message must be a dict with 'role' and 'content', got {m!r:.80}"
            )
        if m["role"] not in _ROLES:
            raise ValueError(f"{where}[{i}]: role must be one of {_ROLES}, got {m['role']!r}")
        if not isinstance(m["content"], str):
            raise ValueError(f"{where}[{i}]: content must be a str, got {type(m['content']).__name__}")
        if m["role"] == "system" and i != 0:
            raise ValueError(f"{where}[{i}]: a system message may only come first")
    for i, m in enumerate(chat[:-1]):
        if m.get(PREFIX_KEY):
            raise ValueError(f"{where}[{i}]: only the last message may be a reply prefix")
    if chat[-1]["role"] == "assistant" and not has_prefix(chat):
        raise ValueError(f"{where}: the last message is the assistant's; end with a user turn, or mark it as the "
                         f"reply's start with {PREFIX_KEY!r}: True")
    if chat[-1].get(PREFIX_KEY) and chat[-1]["role"] != "assistant":
        raise ValueError(f"{where}: a reply prefix must be an assistant message")
    if has_prefix(chat) and len(chat) < 2:
        raise ValueError(f"{where}: a reply prefix needs a turn before it")
    return chat


def render_starchat(chat: Chat) -> str:
    """``<|system|>\\n...<|end|>\\n<|user|>\\n...<|end|>\\n<|assistant|>\\n...<|end|>\\n...<|assistant|>\\n``"""
    validate_chat(chat)
    turns, prefix = (chat[:-1], chat[-1]["content"]) if has_prefix(chat) else (chat, "")
    parts = [f"<|{m['role']}|>\n{m['content']}{STARCHAT_END}\n" for m in turns]
    return "".join(parts) + "<|assistant|>\n" + prefix


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_chat_format(tokenizer: Any, chat_format: str = "auto") -> str:
    """Return the concrete format, ``template`` or ``starchat``, for this tokenizer."""
    if chat_format not in CHAT_FORMATS:
        raise ValueError(f"chat_format must be one of {CHAT_FORMATS}, got {chat_format!r}")
    if chat_format == "starchat":
        return "starchat"
    if has_chat_template(tokenizer):
        return "template"
    if chat_format == "template":
        raise ValueError(
            f"chat_format='template' but tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat "
            "template; use chat_format='auto' or 'starchat'"
        )
    return "starchat"


def render_chat(chat: Chat, tokenizer: Any, chat_format: str = "auto") -> str:
    """Render one chat to the prompt string the model continues (with an open assistant turn)."""
    validate_chat(chat)
    if resolve_chat_format(tokenizer, chat_format) == "starchat":
        return render_starchat(chat)
    # a prefix is appended to the open assistant turn as text: the template sees only whole turns
    turns, prefix = (chat[:-1], chat[-1]["content"]) if has_prefix(chat) else (chat, "")
    return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True) + prefix


def render_prompt(prompt: PromptLike, tokenizer: Any, chat_format: str = "auto") -> str:
    """A raw string is sent as is; a chat is rendered."""
    if isinstance(prompt, str):
        return prompt
    return render_chat(prompt, tokenizer, chat_format)


def stop_strings(
    prompt: PromptLike, tokenizer: Any, chat_format: str, user_stop: tuple[str, ...]
) -> tuple[str, ...]:
    """Stop strings for one prompt: the caller's plus ``<|end|>`` for StarChat-rendered chats (a base
    model has no end-of-turn token, so the turn marker is the only reliable stop)."""
    if isinstance(prompt, str) or resolve_chat_format(tokenizer, chat_format) != "starchat":
        return tuple(user_stop)
    return tuple(dict.fromkeys((*user_stop, *STARCHAT_STOP)))
