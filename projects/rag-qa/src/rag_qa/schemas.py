"""Request and response bodies of the documents and question routes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag_qa.fields import Count, Seed, Text
from rag_qa.openai_schemas import Usage
from rag_qa.store import DocumentInfo, Hit, SearchFilter

DOCUMENT_ID = r"^[0-9a-f]{32}$"
DocumentId = Annotated[str, Field(pattern=DOCUMENT_ID)]

# Request bodies are read strictly: a JSON type other than the schema's ("5" for 5, "true"
# for true) is a 422, as the schema says, not silently converted; unknown fields are too.
STRICT = ConfigDict(strict=True, extra="forbid")


class Document(BaseModel):
    id: str
    title: str
    filename: str
    content_type: str
    chunks: int
    ingested_at: float

    @classmethod
    def of(cls, info: DocumentInfo) -> Document:
        return cls(**vars(info))


class IngestResponse(BaseModel):
    document: Document
    created: bool  # False: the same text was already stored; nothing was added


class DocumentList(BaseModel):
    documents: list[Document]


class Deleted(BaseModel):
    id: str
    deleted_chunks: int


class Filter(BaseModel):
    model_config = STRICT

    document_ids: list[DocumentId] = Field(default_factory=list, max_length=100)
    content_types: list[Literal["text/plain", "text/markdown", "text/html", "application/pdf"]] = (
        Field(default_factory=list)
    )

    def to_store(self) -> SearchFilter:
        return SearchFilter(tuple(self.document_ids), tuple(self.content_types))


class SearchRequest(BaseModel):
    model_config = STRICT

    query: Text = Field(min_length=1)
    top_k: Count | None = None
    filter: Filter | None = None
    rerank: Literal["none", "mmr"] | None = None


class AskRequest(BaseModel):
    model_config = STRICT

    question: Text = Field(min_length=1)
    top_k: Count | None = None
    filter: Filter | None = None
    rerank: Literal["none", "mmr"] | None = None
    stream: bool = True
    max_tokens: Count | None = None
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: Seed | None = None


class Source(BaseModel):
    number: int  # as the prompt and the answer's [n] citations number it
    document_id: str
    title: str
    filename: str
    position: int  # the chunk's place in its document, from 0
    headings: str
    score: float
    text: str
    cited: bool = False

    @classmethod
    def of(cls, number: int, hit: Hit, *, cited: bool = False) -> Source:
        return cls(
            number=number,
            document_id=hit.document_id,
            title=hit.title,
            filename=hit.filename,
            position=hit.position,
            headings=hit.headings,
            score=round(hit.score, 4),
            text=hit.text,
            cited=cited,
        )


class SearchResponse(BaseModel):
    results: list[Source]


class AnswerPart(BaseModel):
    """A sentence of the answer: its text with its [n] markers, and the sources behind it."""

    text: str
    sources: list[int]  # numbers of the sources that support it
    supported: bool  # False only with APP_UNSUPPORTED_SENTENCES=flag


class Answerability(BaseModel):
    """Whether the sources answer the question, as the service judged before answering."""

    score: float  # below APP_MIN_ANSWERABILITY the service abstains
    similarity: float  # the best cosine between the question and one source sentence
    coverage: float  # the share of the question's key terms the sources hold
    missing: list[str]  # the question's key terms (stems) no source holds


class AskResponse(BaseModel):
    answer: str  # the parts' texts, joined by spaces
    answered: bool  # False: the documents do not answer the question, and the answer says so
    extracted: bool = False  # the model's answer was unsupported; these are the sources' words
    parts: list[AnswerPart] = Field(default_factory=list)
    answerability: Answerability | None = None  # None: no chunk scored above APP_MIN_SCORE
    sources: list[Source]
    finish_reason: str | None = None
    usage: Usage | None = None
