"""Reads the graph of one flow run (reference: read_flow_run_graph)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, func, select

from server import errors
from server.db.tables import flow, flow_run, flow_run_state, task_run
from server.domain.graphs import Graph, GraphNode, GraphState
from server.domain.states import StateType
from server.repositories.base import Repository


class GraphRepository(Repository):
    async def read(self, flow_run_id: str, since: datetime | None, max_nodes: int) -> Graph:
        run = (
            await self.connection.execute(
                select(flow_run.c.start_time, flow_run.c.expected_start_time, flow_run.c.end_time).where(
                    flow_run.c.id == flow_run_id
                )
            )
        ).first()
        if run is None:
            raise errors.flow_run_not_found(flow_run_id)
        nodes = await self._nodes(flow_run_id, since, max_nodes)
        states = [
            GraphState(id=row.id, timestamp=row.timestamp, type=StateType(row.type), name=row.name)
            for row in await self.connection.execute(
                select(flow_run_state.c.id, flow_run_state.c.timestamp, flow_run_state.c.type, flow_run_state.c.name)
                .where(flow_run_state.c.flow_run_id == flow_run_id)
                .order_by(flow_run_state.c.timestamp, flow_run_state.c.id)
            )
        ]
        return Graph(
            start_time=run.start_time or run.expected_start_time,
            end_time=run.end_time,
            root_node_ids=[node.id for node in nodes if not node.parent_ids],
            nodes=nodes,
            states=states,
        )

    async def _nodes(self, flow_run_id: str, since: datetime | None, max_nodes: int) -> list[GraphNode]:
        subflow = flow_run.alias("subflow")
        subflow_flow = flow.alias("subflow_flow")
        start_time = func.coalesce(
            subflow.c.start_time, subflow.c.expected_start_time, task_run.c.start_time, task_run.c.expected_start_time
        )
        end_time = func.coalesce(
            subflow.c.end_time,
            task_run.c.end_time,
            case((task_run.c.state_type == StateType.COMPLETED.value, task_run.c.expected_start_time), else_=None),
        )
        query = (
            select(
                task_run.c.id.label("task_run_id"),
                task_run.c.name.label("task_name"),
                task_run.c.state_type.label("task_state_type"),
                task_run.c.task_inputs,
                subflow.c.id.label("subflow_id"),
                subflow.c.name.label("subflow_name"),
                subflow.c.state_type.label("subflow_state_type"),
                subflow_flow.c.name.label("subflow_flow_name"),
                start_time.label("start_time"),
                end_time.label("end_time"),
            )
            .select_from(
                task_run.outerjoin(subflow, subflow.c.parent_task_run_id == task_run.c.id).outerjoin(
                    subflow_flow, subflow_flow.c.id == subflow.c.flow_id
                )
            )
            .where(and_(task_run.c.flow_run_id == flow_run_id, start_time.is_not(None)))
            .order_by(start_time, end_time, task_run.c.id)
            .limit(max_nodes + 1)
        )
        rows = list(await self.connection.execute(query))
        if len(rows) > max_nodes:
            raise errors.TooLarge(
                f"The graph of flow run {flow_run_id} has more than {max_nodes} nodes.", metadata={"flow_run_id": flow_run_id}
            )
        nodes: dict[str, GraphNode] = {}
        inputs: dict[str, dict] = {}
        for row in rows:
            if row.subflow_id:
                node = GraphNode(
                    kind="flow-run",
                    id=row.subflow_id,
                    label=f"{row.subflow_flow_name} / {row.subflow_name}",
                    state_type=StateType(row.subflow_state_type) if row.subflow_state_type else None,
                    start_time=row.start_time,
                    end_time=row.end_time,
                )
            else:
                node = GraphNode(
                    kind="task-run",
                    id=row.task_run_id,
                    label=row.task_name,
                    state_type=StateType(row.task_state_type) if row.task_state_type else None,
                    start_time=row.start_time,
                    end_time=row.end_time,
                )
            nodes[node.id] = node
            inputs[node.id] = row.task_inputs or {}
        for node_id, node_inputs in inputs.items():
            node = nodes[node_id]
            for key, items in node_inputs.items():
                for item in items:
                    upstream = str(item.get("id") or "")
                    if upstream not in nodes:
                        continue
                    if key == "__parents__":
                        if upstream not in node.encapsulating_ids:
                            node.encapsulating_ids.append(upstream)
                    elif upstream not in node.parent_ids:
                        node.parent_ids.append(upstream)
                        nodes[upstream].child_ids.append(node_id)
        kept = [node for node in nodes.values() if since is None or node.end_time is None or node.end_time >= since]
        return kept
