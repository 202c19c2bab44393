"""``mdm relay``: deliver events to webhooks, or publish them to NATS JetStream."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any

import typer


def relay(
    nats: str | None = typer.Option(
        None, "--nats", help="Publish to this NATS server's JetStream instead of webhooks."
    ),
    stream: str = typer.Option("MDM_EVENTS", "--stream", help="JetStream stream name."),
    subject_prefix: str = typer.Option(
        "mdm", "--subject-prefix", help="Subjects are PREFIX.<entity_type>.<verb>."
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="Webhook requests in flight (default: settings)."
    ),
) -> None:
    """Run the event relay until interrupted (SIGINT/SIGTERM).

    Webhooks (default): at-least-once, in order per entity, signed, with retries and
    dead letters. Several relays may run at once. With --nats: every event, in feed
    order, to a JetStream stream (created if missing), de-duplicated by event ID.
    Both run the sequencer that gives committed events their feed positions.
    See docs/events.md.
    """
    from mdm.events.relay import RelayConfig, WebhookRelay
    from mdm.store.db import get_engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per delivery
    engine = get_engine()
    stop = threading.Event()

    def _stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)

    if nats is not None:
        from mdm.config import get_settings
        from mdm.events.jetstream import NatsRelay

        publisher = NatsRelay(
            engine,
            stream=stream,
            subject_prefix=subject_prefix,
            lease_seconds=get_settings().relay_lease_seconds,
        )

        async def _main() -> None:
            done = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, done.set)
            loop.add_signal_handler(signal.SIGTERM, done.set)
            await publisher.run(nats, done)

        typer.echo(f"relay {publisher.owner}: publishing to {nats} stream {stream}", err=True)
        asyncio.run(_main())
        return

    config = RelayConfig.from_settings()
    if concurrency is not None:
        from dataclasses import replace

        config = replace(config, concurrency=concurrency)
    worker = WebhookRelay(engine, config)
    typer.echo(f"relay {worker.owner}: delivering webhooks", err=True)
    try:
        worker.run(stop)
    finally:
        worker.close()
        typer.echo(f"relay {worker.owner}: stopped {worker.stats}", err=True)
