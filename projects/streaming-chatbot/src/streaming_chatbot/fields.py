"""Request field types the LLM routes validate alike, so bad input is a 422, never a 500.

- `Text`: a string that is valid Unicode. JSON may escape a lone surrogate (a `\\u` escape
  from D800 to DFFF), which no tokenizer can encode: it raised deep inside generation.
- `Seed`: a sampling seed within int64, what torch's generator and vLLM accept.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _valid_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text holds a lone surrogate at position {exc.start}: not valid Unicode"
        ) from None
    return text


Text = Annotated[str, AfterValidator(_valid_unicode)]
Seed = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
