"""Reads the graph of one flow run (reference: read_flow_run_graph, the v2 graph).

Nodes are the run's task runs, except that a task run standing for a subflow run is
replaced by the subflow run. Edges come from task_inputs entries that carry an id and
name a node of the graph: "__parents__" entries are encapsulating edges, all others
parent/child edges. Edges are found among all nodes, before the `since` cut; `since`
apply to the nodes returned, as in the reference.

Bounded work: every query has a LIMIT. The node limit applies to the nodes returned and,
separately, to the nodes cut by `since` (whose inputs and start times are read for edges);
the state limit to the run's states. Past a limit the read stops at limit + 1 rows and the
graph is refused (TooLarge: FAILED_PRECONDITION) rather than served in part. The nodes are
read without their inputs; the inputs (up to the write budget each) are read after, a
batch at a time (server/repositories/batched_reads.py), and each edge found is counted
towards the response limit by the caller (`count_edge`), which stops the read once the
edges alone pass it: one call holds about the response limit, not every node's inputs.

Differences from the reference, on purpose: edge lists are de-duplicated and ordered by
the other node's start time (then id) on both databases; nodes with equal start and end
times are ordered by id. flowrun has no artifact table, so nodes and graph carry no
artifacts."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import aclosing
from datetime import datetime
from typing import Any

from sqlalchemy import Text, case, cast, func, or_, select

from flowrun.server import errors
from flowrun.server.db.tables import flow, flow_run, flow_run_state, task_run
from flowrun.server.db.types import Timestamp
from flowrun.server.domain.graphs import Graph, GraphNode, GraphState
from flowrun.server.domain.states import StateType
from flowrun.server.domain.task_runs import PARENTS_KEY
from flowrun.server.repositories import batched_reads
from flowrun.server.repositories.base import Repository

_subflow = flow_run.alias("subflow")
_subflow_flow = flow.alias("subflow_flow")
_FROM = task_run.outerjoin(_subflow, _subflow.c.parent_task_run_id == task_run.c.id).outerjoin(
    _subflow_flow, _subflow_flow.c.id == _subflow.c.flow_id
)
_NODE_ID = func.coalesce(_subflow.c.id, task_run.c.id)
_START_TIME = func.coalesce(
    _subflow.c.start_time,
    _subflow.c.expected_start_time,
    task_run.c.start_time,
    task_run.c.expected_start_time,
    type_=Timestamp(),
)
_END_TIME = func.coalesce(
    _subflow.c.end_time,
    task_run.c.end_time,
    case((task_run.c.state_type == StateType.COMPLETED.value, task_run.c.expected_start_time), else_=None),
    type_=Timestamp(),
)


class GraphRepository(Repository):
    async def read(
        self,
        flow_run_id: str,
        since: datetime | None,
        max_nodes: int,
        max_states: int,
        *,
        count_edge: Callable[[str, str], None],
    ) -> Graph:
        run = (
            await self.connection.execute(
                select(flow_run.c.start_time, flow_run.c.expected_start_time, flow_run.c.end_time).where(
                    flow_run.c.id == flow_run_id
                )
            )
        ).first()
        if run is None:
            raise errors.flow_run_not_found(flow_run_id)
        nodes = await self._nodes(flow_run_id, since, max_nodes, count_edge)
        state_rows = list(
            await self.connection.execute(
                select(flow_run_state.c.id, flow_run_state.c.timestamp, flow_run_state.c.type, flow_run_state.c.name)
                .where(flow_run_state.c.flow_run_id == flow_run_id)
                .order_by(flow_run_state.c.timestamp, flow_run_state.c.id)
                .limit(max_states + 1)
            )
        )
        if len(state_rows) > max_states:
            raise _too_large(flow_run_id, f"more than {max_states} states")
        states = [
            GraphState(id=row.id, timestamp=row.timestamp, type=StateType(row.type), name=row.name)
            for row in state_rows
        ]
        return Graph(
            start_time=run.start_time or run.expected_start_time,
            end_time=run.end_time,
            root_node_ids=[node.id for node in nodes if not node.parent_ids],
            nodes=nodes,
            states=states,
        )

    async def _nodes(
        self, flow_run_id: str, since: datetime | None, max_nodes: int, count_edge: Callable[[str, str], None]
    ) -> list[GraphNode]:
        of_run = [task_run.c.flow_run_id == flow_run_id, _START_TIME.is_not(None)]
        kept_query = (
            select(
                _NODE_ID.label("id"),
                task_run.c.id.label("task_run_id"),
                _subflow.c.id.label("subflow_id"),
                task_run.c.name.label("task_name"),
                _subflow.c.name.label("subflow_name"),
                _subflow_flow.c.name.label("subflow_flow_name"),
                func.coalesce(_subflow.c.state_type, task_run.c.state_type).label("state_type"),
                _START_TIME.label("start_time"),
                _END_TIME.label("end_time"),
            )
            .select_from(_FROM)
            .where(*of_run)
            .order_by(_START_TIME, case((_END_TIME.is_(None), 1), else_=0), _END_TIME, _NODE_ID)
            .limit(max_nodes + 1)
        )
        if since is not None:
            kept_query = kept_query.where(or_(_END_TIME.is_(None), _END_TIME >= since))
        rows = list(await self.connection.execute(kept_query))
        if len(rows) > max_nodes:
            raise _too_large(flow_run_id, f"more than {max_nodes} nodes")
        nodes = {row.id: _node(row) for row in rows}
        # A node's id is its subflow's when it has one: which node a task run's inputs
        # belong to is taken from these statements, not read again (a subflow created in
        # between, another snapshot under READ COMMITTED, would change it).
        nodes_of_task_run: dict[str, list[str]] = {}
        for row in rows:
            nodes_of_task_run.setdefault(row.task_run_id, []).append(row.id)

        # Every node's start time, for edges; nodes cut by `since` count too.
        start_times = {node.id: node.start_time for node in nodes.values()}
        if since is not None:
            cut_query = (
                select(_NODE_ID.label("id"), task_run.c.id.label("task_run_id"), _START_TIME.label("start_time"))
                .select_from(_FROM)
                .where(*of_run, _END_TIME < since)
                .limit(max_nodes + 1)
            )
            cut_rows = list(await self.connection.execute(cut_query))
            if len(cut_rows) > max_nodes:
                raise _too_large(flow_run_id, f"more than {max_nodes} nodes that ended before `since`")
            for cut in cut_rows:
                start_times[cut.id] = cut.start_time
                nodes_of_task_run.setdefault(cut.task_run_id, []).append(cut.id)

        edges = _Edges(nodes, start_times, count_edge)
        # The inputs of the nodes read above (kept and cut, at most 2 x max_nodes), a batch
        # at a time: the edges are counted as they are found, and the read stops once they
        # pass the limit. Task inputs never change; a task run newer than the statements
        # above (another snapshot under READ COMMITTED) is skipped.
        inputs_query = (
            select(task_run.c.id.label("task_run_id"), cast(task_run.c.task_inputs, Text).label("task_inputs_json"))
            .select_from(_FROM)
            .where(*of_run)
            .limit(2 * max_nodes + 2)
        )
        async with aclosing(batched_reads.rows_in_batches(self.connection, inputs_query)) as batches:
            async for batch in batches:
                for inputs_row in batch:  # decoded one at a time: a batch is held as text
                    # Taken once: a task run with k subflows comes back k times (the join),
                    # and adding its inputs to its k nodes each time would cost k² on the
                    # event loop. None: a task run newer than the statements above.
                    node_ids = nodes_of_task_run.pop(inputs_row.task_run_id, ())
                    if node_ids:
                        node_inputs = json.loads(inputs_row.task_inputs_json) or {}
                        for node_id in node_ids:
                            edges.add_inputs(node_id, node_inputs)
        if nodes_of_task_run:  # a node's task run was deleted, or cut by the LIMIT, in between
            raise errors.Conflict("The flow run's task runs changed while its graph was read; retry")
        return edges.sorted_into_nodes()


class _Edges:
    """The edges of a graph's nodes, found in their task runs' inputs one node at a time
    (every input naming a node of the graph, kept or cut by `since`), de-duplicated;
    `count_edge` is told of each id as it joins a kept node's list, and raises to stop."""

    def __init__(
        self, nodes: dict[str, GraphNode], start_times: dict[str, datetime], count_edge: Callable[[str, str], None]
    ) -> None:
        self._nodes = nodes
        self._start_times = start_times
        self._count_edge = count_edge
        self._lists: dict[str, dict[str, set[str]]] = {
            name: {node_id: set() for node_id in nodes} for name in ("parent_ids", "child_ids", "encapsulating_ids")
        }

    def add_inputs(self, node_id: str, node_inputs: dict[str, Any]) -> None:
        if node_id not in self._start_times:
            return  # a task run newer than the statements that read the nodes
        for key, items in node_inputs.items():
            for item in items:
                upstream = str(item.get("id") or "")
                if upstream not in self._start_times:
                    continue
                if key == PARENTS_KEY:
                    self._add("encapsulating_ids", node_id, upstream)
                    continue
                self._add("parent_ids", node_id, upstream)
                self._add("child_ids", upstream, node_id)

    def _add(self, list_name: str, node_id: str, other: str) -> None:
        ids = self._lists[list_name].get(node_id)  # None: not a kept node
        if ids is None or other in ids:
            return
        self._count_edge(list_name, other)
        ids.add(other)

    def sorted_into_nodes(self) -> list[GraphNode]:
        """The nodes with their edge lists, each ordered by the other node's start time
        (then id)."""

        def by_start_time(ids: set[str]) -> list[str]:
            return sorted(ids, key=lambda other: (self._start_times[other], other))

        for node in self._nodes.values():
            node.parent_ids = by_start_time(self._lists["parent_ids"][node.id])
            node.child_ids = by_start_time(self._lists["child_ids"][node.id])
            node.encapsulating_ids = by_start_time(self._lists["encapsulating_ids"][node.id])
        return list(self._nodes.values())


def _too_large(flow_run_id: str, what: str) -> errors.TooLarge:
    return errors.TooLarge(f"The graph of flow run {flow_run_id} has {what}.", metadata={"flow_run_id": flow_run_id})


def _node(row: Any) -> GraphNode:
    state_type = StateType(row.state_type) if row.state_type else None
    if row.subflow_id:
        return GraphNode(
            kind="flow-run",
            id=row.id,
            label=f"{row.subflow_flow_name} / {row.subflow_name}",
            state_type=state_type,
            start_time=row.start_time,
            end_time=row.end_time,
        )
    return GraphNode(
        kind="task-run",
        id=row.id,
        label=row.task_name,
        state_type=state_type,
        start_time=row.start_time,
        end_time=row.end_time,
    )
