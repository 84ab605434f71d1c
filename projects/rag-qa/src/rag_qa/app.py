"""The app factory: `uvicorn --factory rag_qa.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI
from redis.exceptions import RedisError

from rag_qa import documents_api, openai_api, qa_api
from rag_qa.limits import redis_unavailable
from rag_qa.openapi import state_limits
from rag_qa.runtime import RagRuntime
from rag_qa.service import create_service_app
from rag_qa.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        runtime=lambda metrics, _tracer: RagRuntime(settings, metrics),
        routers=[documents_api.router, qa_api.router, openai_api.router],
    )
    app.add_exception_handler(RedisError, redis_unavailable)
    question = {"maxLength": settings.max_question_chars}
    top_k = {"maximum": settings.max_top_k}
    state_limits(
        app,
        {
            "SearchRequest.query": question,
            "SearchRequest.top_k": top_k,
            "AskRequest.question": question,
            "AskRequest.top_k": top_k,
            **openai_api.schema_limits(settings),
        },
    )
    return app
