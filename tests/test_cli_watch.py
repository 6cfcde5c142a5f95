"""`flowrun run watch`: events as JSON lines (with the cursor to continue from) or as
one line each; --run ends when the run finishes."""

from __future__ import annotations

import asyncio
import json

from flowrun.client import FlowrunClient, cli
from flowrun.server.app import build_app
from flowrun.v1 import filters_pb2, state_pb2
from tests.conftest import settings_for


async def test_run_watch_prints_events_and_continues_from_a_cursor(database_url, unique, capsys):
    app = await build_app(settings_for(database_url, watch_heartbeat_seconds=0.2))
    await app.start()
    target = f"127.0.0.1:{app.port}"

    async def flowrun(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, ["--target", target, *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    try:
        async with FlowrunClient(target) as client:
            flow, _ = await client.create_flow(f"cli-watch-{unique}")
            only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow.id]))
            async for message in client.watch_flow_runs(flow_run_filter=only_flow, progress=True):
                start = message.progress.cursor  # a cursor from before the changes below
                break
            run, _ = await client.create_flow_run(flow.id, tags=["cli"])
            await client.set_flow_run_state(run.id, state_pb2.STATE_TYPE_RUNNING)
            await client.set_flow_run_state(run.id, state_pb2.STATE_TYPE_COMPLETED)

        code, out, err = await flowrun("run", "watch", "--flow", flow.name, "--cursor", start, "--count", "3")
        assert (code, err) == (0, ""), err
        lines = out.strip().split("\n")
        events = [json.loads(line)["event"] for line in lines[:3]]
        assert [e["kind"] for e in events] == [
            "FLOW_RUN_EVENT_KIND_CREATED",
            "FLOW_RUN_EVENT_KIND_STATE_CHANGED",
            "FLOW_RUN_EVENT_KIND_STATE_CHANGED",
        ]
        summary = json.loads("\n".join(lines[3:]))
        assert summary == {"events": 3, "cursor": events[-1]["cursor"]}

        code, out, err = await flowrun(
            "run", "watch", "--flow", flow.id, "--state", "completed", "--cursor", start, "--count", "1"
        )
        assert code == 0 and json.loads(out.split("\n")[0])["event"]["state"]["type"] == "STATE_TYPE_COMPLETED"

        code, out, err = await flowrun("-o", "table", "run", "watch", "--run", run.id, "--cursor", start)
        assert code == 0, err  # ends by itself: the run is COMPLETED
        assert out.count(run.id) == 3 and "RUNNING -> Completed" in out and "CREATED" in out

        code, out, err = await flowrun("run", "watch", "--cursor", "not-a-cursor")
        assert code != 0 and "INVALID_WATCH_CURSOR" in err
    finally:
        await app.stop(grace=0)
