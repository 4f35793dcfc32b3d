"""A deterministic A2A agent for the local cluster and the tests: it answers every message with the
message's text prefixed by ``echo: `` (no model call). Served with ``a2a-sdk`` 1.x routes (agent card at
``/.well-known/agent-card.json``, JSON-RPC at ``/``) on 127.0.0.1.

Run: ``python -m reconciler.devcluster.a2a_agent --port 8080 [--name echo-agent] [--skill echo …]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from a2a.helpers.proto_helpers import get_message_text, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill

DEFAULT_SKILLS = ("echo", "reverse")


class EchoExecutor(AgentExecutor):
    """Answers each request with ``echo: <text of the request>``; never cancels anything."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Publish one agent message echoing the request's text."""
        text = get_message_text(context.message) if context.message else ""
        await event_queue.enqueue_event(
            new_text_message(f"echo: {text}", context_id=context.context_id, task_id=context.task_id)
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Nothing runs long enough to cancel."""
        return None


def agent_card(url: str, name: str = "echo-agent", skills: Sequence[str] = DEFAULT_SKILLS) -> AgentCard:
    """The A2A 1.0 card of the echo agent served at ``url`` with one skill per id in ``skills``."""
    return AgentCard(
        name=name,
        description="Deterministic echo agent for reconciler's probes and tests",
        version="1.0.0",
        supported_interfaces=[AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(id=s, name=s.capitalize(), description=f"the {s} skill", tags=["test"]) for s in skills
        ],
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the echo agent until terminated."""
    import uvicorn
    from starlette.applications import Starlette

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="echo-agent")
    parser.add_argument("--skill", action="append", dest="skills")
    args = parser.parse_args(argv)
    card = agent_card(f"http://127.0.0.1:{args.port}/", args.name, args.skills or DEFAULT_SKILLS)
    handler = DefaultRequestHandler(
        agent_executor=EchoExecutor(), task_store=InMemoryTaskStore(), agent_card=card
    )
    routes = [*create_agent_card_routes(card), *create_jsonrpc_routes(handler, rpc_url="/")]
    uvicorn.run(Starlette(routes=routes), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
