"""What the shared state costs each WeChat message (bot.coordination).

    .venv/bin/python benchmarks/coordination_benchmark.py [--messages 2000]
    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python benchmarks/coordination_benchmark.py

The WeChat channel's `handle()` with an instant stand-in of Rasa (FakeRasa-like: one
reply, no NLU), called directly in one event loop, so what is measured is the
channel's own work per message: without shared state (the channel before
bot.coordination), with the in-process engine (`make run`) and with Redis
(`REDIS_URL`, several Rasa servers). Closed loop, one message at a time, distinct
MsgIds; p50/p99 of the per-message time and messages per second. Prints the
machine's load average, since the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

from rasa.core.channels.channel import UserMessage

from bot.channels.wechat import WeChatConfig, WeChatInput
from bot.channels.wechat_protocol import IncomingMessage
from bot.coordination import InProcessState, SharedState


async def answer(message: UserMessage) -> None:
    await message.output_channel.send_response(message.sender_id, {"text": "好的"})


def incoming(n: int, sender: str) -> IncomingMessage:
    return IncomingMessage(
        to_user="gh_bench",
        from_user=sender,
        create_time=int(time.time()),
        msg_type="text",
        content="暖气不热",
        msg_id=str(n),
    )


async def measure(shared: SharedState | None, messages: int) -> dict[str, float]:
    channel = WeChatInput(WeChatConfig(token="t"), shared=shared, busy_text="忙")
    sender = "oBench" + uuid.uuid4().hex[:20]
    times = []
    for n in range(200):  # warm-up
        await channel.handle(incoming(10_000_000 + n, sender), answer)
    began = time.perf_counter()
    for n in range(messages):
        start = time.perf_counter()
        reply = await channel.handle(incoming(n, sender), answer)
        times.append(time.perf_counter() - start)
        assert reply == "好的", reply
    total = time.perf_counter() - began
    times.sort()
    return {
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": times[int(len(times) * 0.99) - 1] * 1000,
        "per_second": messages / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    engines: list[tuple[str, SharedState | None]] = [
        ("none (channel alone)", None),
        ("in-process", InProcessState()),
    ]
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        from bot.coordination.redis_engine import RedisState

        engines.append(("redis", RedisState(redis_url, prefix=f"bench:{uuid.uuid4().hex}:")))
    print(f"load average before: {os.getloadavg()[0]:.1f} (2 cores, shared)")
    print("| shared state | p50 ms | p99 ms | messages/s |")
    print("| --- | --- | --- | --- |")
    for name, state in engines:
        figures = asyncio.run(measure(state, args.messages))
        print(
            f"| {name} | {figures['p50_ms']:.3f} | {figures['p99_ms']:.3f} "
            f"| {figures['per_second']:.0f} |"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
