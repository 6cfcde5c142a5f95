"""The database's share of each read of the read benchmark: the statement the repository
sends for it (captured by tests/helpers/plans.py, so it is the server's own SQL), run with
EXPLAIN (ANALYZE, BUFFERS) on the benchmark's database. Beside the RPC latencies this
separates what the SQL costs from what decoding and converting the rows costs."""

from __future__ import annotations

import dataclasses
import statistics

import benchlib  # noqa: F401  (puts the repository on sys.path)

from flowrun.server.config import Settings
from flowrun.server.db.engine import create_engine
from flowrun.server.db.unit_of_work import Database
from flowrun.server.services import filters_from_proto
from flowrun.server.shared_secrets import resolve_page_token_secret
from tests.helpers.plans import Plan, plan_of

RUNS_PER_READ = 5  # EXPLAIN ANALYZE runs per read; the median is reported


async def explain_reads(database_url: str, queries: list) -> dict[str, dict]:
    """For each ReadQuery (bench/lifecycle.py): median execution time in ms, the indexes
    its plan reads, and whether it scans flow_run sequentially."""
    settings = Settings(database_url=database_url)
    database = Database(create_engine(settings))
    try:
        secret = (await resolve_page_token_secret(database, settings)).resolved_page_token_secret
        return {query.name: await _explain(database, query, secret) for query in queries}
    finally:
        await database.dispose()


async def _explain(database: Database, query, secret: str) -> dict:
    filters = filters_from_proto.list_filters(query.request)
    if query.rpc == "CountFlowRuns":

        def read(repos):
            return repos.flow_runs.count(filters)
    else:
        sort = filters_from_proto.flow_run_sort(query.request.sort)
        page = filters_from_proto.page_request(query.request)
        for _ in range(query.page - 1):  # the later page's token, as the clients found it
            async with database.unit_of_work(write=False) as uow:
                _, token = await uow.repos.flow_runs.list_page(filters, sort, page, secret=secret)
            page = dataclasses.replace(page, page_token=token)

        def read(repos):
            return repos.flow_runs.list_page(filters, sort, page, secret=secret)

    plans: list[Plan] = [await plan_of(database, read, analyze=True) for _ in range(RUNS_PER_READ)]
    return {
        "sql_ms": round(statistics.median(plan.execution_ms() for plan in plans), 2),
        "indexes": sorted(plans[-1].indexes()),
        "seq_scan_flow_run": "flow_run" in plans[-1].seq_scans(),
    }
