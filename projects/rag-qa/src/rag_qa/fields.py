"""Request field types the LLM routes validate alike, so bad input is a 422, never a 500.

- `Text`: a string that is valid Unicode. JSON may escape a lone surrogate (a `\\u` escape
  from D800 to DFFF), which no tokenizer can encode: it raised deep inside generation.
- `Count`: an integer of at least 1 (a number of tokens, results, ...), also when JSON
  writes it as 5.0 (JSON Schema's integers include those; request bodies are otherwise
  read strictly, so "5" stays a 422). Bounds go before the validator: after it, pydantic
  leaves them out of the schema.
- `Seed`: a sampling seed within +-2**53: inside int64, what torch's generator and vLLM
  accept, and exact in every JSON parser (past 2**53 a double, JavaScript's only number,
  rounds it, so a client and the schema's validators would disagree on its value).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

SEED_MIN, SEED_MAX = -(2**53), 2**53


def _valid_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text holds a lone surrogate at position {exc.start}: not valid Unicode"
        ) from None
    return text


def _integral(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]
Count = Annotated[int, Field(ge=1), BeforeValidator(_integral)]
Seed = Annotated[int, Field(ge=SEED_MIN, le=SEED_MAX), BeforeValidator(_integral)]
