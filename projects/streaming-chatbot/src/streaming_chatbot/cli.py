"""Command line: `python -m streaming_chatbot serve | prepare-model | demo | chat`."""

from __future__ import annotations

import argparse
import json
import sys

import httpx

from streaming_chatbot import commands
from streaming_chatbot.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streaming_chatbot", description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True)

    commands.add_serve(subcommands)
    commands.add_prepare_model(subcommands)

    demo = subcommands.add_parser(
        "demo", help="prepare the demo model if needed and serve the chat page"
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--once", action="store_true", help="ask one question, then exit")

    chat = subcommands.add_parser("chat", help="chat in the terminal with a running gateway")
    chat.add_argument("--url", default="http://127.0.0.1:8000")
    chat.add_argument("--api-key", help="X-API-Key header, when the gateway asks for one")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return commands.serve(args.host, args.port)
    if args.command == "prepare-model":
        return commands.prepare(args.output, args.gguf)
    if args.command == "demo":
        return _demo(args.port, once=args.once)
    return _chat(args.url, args.api_key)


def _demo(port: int, *, once: bool) -> int:
    from streaming_chatbot.app import create_app

    settings = commands.demo_settings(port)
    server = commands.BackgroundServer(create_app(settings), port)
    if not server.start():
        return 1
    base_url = server.base_url
    print(f"chat page: {base_url}/  (OpenAI API: {base_url}/v1)")
    if once:
        status = _ask(base_url, "What is the capital of France?", None)
        server.stop()
        return status
    server.wait()
    return 0


def _ask(base_url: str, question: str, api_key: str | None) -> int:
    """Streams one answer to stdout; 0 when it arrived."""
    headers = {"X-API-Key": api_key} if api_key else {}
    body = {
        "model": Settings().model_name,
        "messages": [{"role": "user", "content": question}],
        "stream": True,
        "max_tokens": 64,
        "temperature": 0,
    }
    print(f"> {question}")
    with httpx.stream(
        "POST", base_url + "/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as response:
        if response.status_code != 200:
            print(response.read().decode(), file=sys.stderr)
            return 1
        _print_stream(response)
    print()
    return 0


def _chat(base_url: str, api_key: str | None) -> int:
    """A terminal chat that keeps its history on the server."""
    headers = {"X-API-Key": api_key} if api_key else {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        created = client.post("/v1/conversations", json={})
        if created.status_code != 201:
            print(created.text, file=sys.stderr)
            return 1
        conversation = created.json()["id"]
        print("type a message; an empty line quits")
        while question := input("> ").strip():
            path = f"/v1/conversations/{conversation}/messages"
            with client.stream("POST", path, json={"content": question}) as response:
                if response.status_code != 200:
                    print(response.read().decode(), file=sys.stderr)
                    continue
                _print_stream(response)
            print()
    return 0


def _print_stream(response: httpx.Response) -> None:
    """Prints the text of a streamed chat completion as it arrives."""
    for line in response.iter_lines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                print(choice["delta"].get("content", ""), end="", flush=True)
