"""Request and response bodies of conversations (the OpenAI format is in openai_schemas)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from streaming_chatbot.fields import Text
from streaming_chatbot.openai_schemas import Role, SamplingFields


class NewConversation(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    system_prompt: Text | None = Field(default=None, max_length=8000)


class ConversationMessage(BaseModel):
    role: Role
    content: str


class Conversation(BaseModel):
    id: str
    created: int
    messages: list[ConversationMessage]


class UserTurn(SamplingFields):
    model_config = ConfigDict(strict=True, extra="forbid")

    content: Text = Field(min_length=1)
    stream: bool = True
