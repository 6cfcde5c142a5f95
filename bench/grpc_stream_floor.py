"""The floor of a watch fan-out: the server CPU grpc.aio itself spends per streamed
message, with nothing else in the server (no database, no interceptors, the payload
pre-serialized bytes).

    .venv/bin/python bench/grpc_stream_floor.py --streams 100 --period-ms 20

One server process (uvloop) holds `--streams` server-streaming calls from two client
processes; every `--period-ms` each stream sends one message of `--bytes` bytes. The
server measures its own CPU for `--duration` seconds and divides by the messages sent.
What flowrun's watch streams cost per message beyond this is flowrun's (bench/watch.py
reports that figure as server_extra_cpu_us_per_event_message)."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time

METHOD = "/bench.Floor/Stream"


async def _serve(port_queue, args, out) -> None:
    import grpc

    payload = b"x" * args.bytes
    tick = asyncio.Event()

    async def stream(request, context):
        while True:
            await tick.wait()
            yield payload

    def same(data):
        return data

    handler = grpc.unary_stream_rpc_method_handler(stream, request_deserializer=same, response_serializer=same)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Floor", {"Stream": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_queue.put(port)
    await asyncio.sleep(3.0)  # the clients open their streams
    cpu, started, ticks = time.process_time(), time.monotonic(), 0
    while time.monotonic() - started < args.duration:
        tick.set()
        await asyncio.sleep(0)  # every stream takes the tick
        tick.clear()
        ticks += 1
        await asyncio.sleep(args.period_ms / 1000)
    out.put((time.process_time() - cpu, ticks))
    await server.stop(0)


async def _receive(port: int, streams: int, seconds: float, out) -> None:
    import grpc

    received = 0

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_stream(METHOD, request_serializer=bytes, response_deserializer=bytes)

        async def one() -> None:
            nonlocal received
            async for _ in call(b""):
                received += 1

        tasks = [asyncio.ensure_future(one()) for _ in range(streams)]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    out.put(received)


def _run(coroutine_function, *args) -> None:
    import uvloop

    uvloop.run(coroutine_function(*args))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--period-ms", type=float, default=20.0)
    parser.add_argument("--bytes", type=int, default=1200, help="one message (a batch of a few events is ~1-10 kB)")
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    ports, results, counts = context.Queue(), context.Queue(), context.Queue()
    server = context.Process(target=_run, args=(_serve, ports, args, results))
    server.start()
    port = ports.get(timeout=60)
    shares = [args.streams // 2, args.streams - args.streams // 2]
    clients = [
        context.Process(target=_run, args=(_receive, port, share, args.duration + 4.0, counts)) for share in shares
    ]
    for client in clients:
        client.start()
    cpu, ticks = results.get(timeout=120)
    received = sum(counts.get(timeout=120) for _ in clients)
    sent = ticks * args.streams
    report = {
        "streams": args.streams,
        "period_ms": args.period_ms,
        "bytes": args.bytes,
        "messages": sent,
        "messages_per_s": round(sent / args.duration),
        "received": received,
        "server_cpu_s": round(cpu, 3),
        "server_cpu_us_per_message": round(1e6 * cpu / max(sent, 1), 1),
    }
    print(json.dumps(report, indent=2))
    server.join(30)
    for client in clients:
        client.join(30)


if __name__ == "__main__":
    main()
