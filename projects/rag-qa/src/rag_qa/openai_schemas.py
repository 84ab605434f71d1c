"""OpenAI's chat completions format: the request, the answer, its stream's usage, models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag_qa.fields import Count, Seed, Text

Role = Literal["system", "user", "assistant"]
StopSequence = Annotated[Text, Field(min_length=1)]


# Request bodies are read strictly: a JSON type other than the schema's ("5" for 5, "true"
# for true) is a 422, as the schema says, not silently converted.
STRICT = ConfigDict(strict=True)


class TextPart(BaseModel):
    model_config = STRICT

    type: Literal["text"]
    text: Text


class Message(BaseModel):
    model_config = STRICT

    role: Role
    # A string, or OpenAI's list of content parts (text parts only: this model reads text).
    content: Text | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    model_config = STRICT

    include_usage: bool = False


class SamplingFields(BaseModel):
    model_config = STRICT

    max_tokens: Count | None = None
    max_completion_tokens: Count | None = None
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: Seed | None = None
    stop: StopSequence | Annotated[list[StopSequence], Field(max_length=4)] | None = None
    # vLLM's extension: keep generating past the end-of-sequence token.
    ignore_eos: bool = False

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


# OpenAI fields that change what the answer is (tools, JSON mode, log-probabilities,
# penalties): this gateway does none of them, so asking for one is refused by name rather
# than answered with free text. Each maps to the values that ask for nothing.
UNSUPPORTED_FIELDS: dict[str, tuple[object, ...]] = {
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "parallel_tool_calls": (None, False),
    "functions": (None, []),
    "function_call": (None, "none"),
    "response_format": (None, {"type": "text"}),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
}


class ChatCompletionRequest(SamplingFields):
    # Fields this gateway does not read but that change nothing (user, metadata, store, ...)
    # are accepted; those that would change the answer are refused (unsupported_field).
    model_config = ConfigDict(strict=True, extra="allow")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] = 1

    def unsupported_field(self) -> str | None:
        """The first field that asks for something this gateway does not do, if any."""
        extra = self.model_extra or {}
        for name, no_op in UNSUPPORTED_FIELDS.items():
            if name in extra and extra[name] not in no_op:
                return name
        return None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ChoiceMessage
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    # A kind may add fields of its own beside OpenAI's (the sources of a grounded answer);
    # clients read them as extra fields of the completion.
    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
