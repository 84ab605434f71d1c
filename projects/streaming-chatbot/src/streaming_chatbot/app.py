"""The app factory: `uvicorn --factory streaming_chatbot.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI
from redis.exceptions import RedisError

from streaming_chatbot import conversation_api, openai_api, web
from streaming_chatbot.limits import redis_unavailable
from streaming_chatbot.openapi import state_limits
from streaming_chatbot.runtime import ChatRuntime
from streaming_chatbot.service import create_service_app
from streaming_chatbot.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        runtime=lambda metrics, _tracer: ChatRuntime(settings, metrics),
        routers=[openai_api.router, conversation_api.router],
    )
    state_limits(app, openai_api.schema_limits(settings))
    app.add_exception_handler(RedisError, redis_unavailable)
    # The page is public; its requests carry the API key like any other client's.
    app.include_router(web.router)
    app.mount("/static", web.static_files, name="static")
    return app
