"""Document routes: upload (`POST /v1/documents`), list, read and delete."""

from __future__ import annotations

import asyncio
import re
from http import HTTPStatus

from fastapi import APIRouter, Query, Request, Response, UploadFile

from rag_qa.documents import InvalidFilename
from rag_qa.errors import ServiceError, error_responses
from rag_qa.runtime import RagRuntime
from rag_qa.schemas import DOCUMENT_ID, Deleted, Document, DocumentList, IngestResponse
from rag_qa.service import ready_runtime

router = APIRouter(prefix="/v1/documents", tags=["documents"])


class DocumentNotFound(ServiceError):
    status_code = HTTPStatus.NOT_FOUND
    code = "document_not_found"


# What the upload's file part may be, in the schema: the types read, and a name that says
# which (the file name's extension decides how a file is read; the part's type does not).
_UPLOAD_ENCODING = {
    "file": {
        "contentType": "text/plain, text/markdown, text/html, application/pdf",
        "headers": {
            "Content-Disposition": {
                "schema": {
                    "type": "string",
                    "example": 'form-data; name="file"; filename="notes.txt"',
                }
            }
        },
    }
}


@router.post(
    "",
    response_model=IngestResponse,
    status_code=HTTPStatus.CREATED,
    summary="Ingest a .txt, .md, .html or .pdf file (multipart field `file`)",
    openapi_extra={
        "requestBody": {"content": {"multipart/form-data": {"encoding": _UPLOAD_ENCODING}}}
    },
    responses={
        200: {"description": "The same text was already stored; nothing was added"},
        **error_responses(
            413,
            415,
            422,
            503,
            s413="A file over the upload limit (`payload_too_large`) or with more chunks than "
            "one document may have (`too_many_chunks`).",
            s415="A file type this service does not read (`unsupported_media_type`).",
            s422="A file that cannot be read as its type (`unparsable_document`), holds no "
            "text (`empty_document`) or has no usable name (`invalid_filename`).",
            s503="Model loading (`not_ready`), replica over its budget (`overloaded`) or "
            "ingesting as many files as it may at once (`ingestion_busy`); see Retry-After.",
        ),
    },
)
async def upload(request: Request, response: Response, file: UploadFile) -> IngestResponse:
    runtime: RagRuntime = ready_runtime(request)
    if not file.filename:
        raise InvalidFilename("the upload has no file name")
    data = await file.read()
    async with runtime.ingestion_slot():
        result = await asyncio.to_thread(runtime.ingestor.ingest, file.filename, data)
    if result.created:
        await runtime.refresh_store_size()
    else:
        response.status_code = HTTPStatus.OK
    return IngestResponse(document=Document.of(result.document), created=result.created)


@router.get("", response_model=DocumentList, summary="Stored documents, newest first")
async def list_documents(
    request: Request,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
) -> DocumentList:
    runtime: RagRuntime = ready_runtime(request)
    found = await asyncio.to_thread(runtime.store.documents, limit, offset)
    return DocumentList(documents=[Document.of(info) for info in found])


_NOT_FOUND = error_responses(404, s404="No such document (`document_not_found`).")


@router.get("/{document_id}", response_model=Document, summary="One document", responses=_NOT_FOUND)
async def get_document(request: Request, document_id: str) -> Document:
    runtime: RagRuntime = ready_runtime(request)
    info = None
    if _valid(document_id):
        info = await asyncio.to_thread(runtime.store.get_document, document_id)
    if info is None:
        raise DocumentNotFound(f"no document {document_id!r}")
    return Document.of(info)


@router.delete(
    "/{document_id}",
    response_model=Deleted,
    summary="Delete a document's chunks",
    responses=_NOT_FOUND,
)
async def delete_document(request: Request, document_id: str) -> Deleted:
    runtime: RagRuntime = ready_runtime(request)
    deleted = 0
    if _valid(document_id):
        deleted = await asyncio.to_thread(runtime.store.delete_document, document_id)
    if not deleted:
        raise DocumentNotFound(f"no document {document_id!r}")
    await runtime.refresh_store_size()
    return Deleted(id=document_id, deleted_chunks=deleted)


def _valid(document_id: str) -> bool:
    return re.fullmatch(DOCUMENT_ID, document_id) is not None
