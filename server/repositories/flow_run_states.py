"""A flow run's state history: append-only rows, read in timestamp order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from flowrun.server.db.tables import flow_run, flow_run_state
from flowrun.server.domain.filters import PageRequest
from flowrun.server.domain.states import State, StateDetails, StateType, is_persisted_data
from flowrun.server.repositories.base import Repository
from flowrun.server.repositories.paging import fetch_page, state_history_sort_key


def state_from_row(row: Any, prefix: str = "") -> State:
    """From a SQLAlchemy row or a plain mapping (the asyncpg fast path)."""
    get = getattr(row, "_mapping", row)
    return State(
        id=get[f"{prefix}id"],
        type=StateType(get[f"{prefix}type"]),
        name=get[f"{prefix}name"],
        timestamp=get[f"{prefix}timestamp"],
        message=get[f"{prefix}message"],
        data=get[f"{prefix}data"],
        state_details=StateDetails.from_json(get[f"{prefix}state_details"]),
    )


STATE_PREFIX = "current_state_"  # label prefix of the current state's columns in run reads


def state_values(state: State, now: datetime, **owner: str) -> dict[str, Any]:
    """Column values for a new history row of a flow run or task run (`owner` names it:
    flow_run_id= or task_run_id=). Unpersisted result placeholders are not stored."""
    return {
        **owner,
        "id": state.id,
        "created": now,
        "type": state.type.value,
        "timestamp": state.timestamp,
        "name": state.name,
        "message": state.message,
        "state_details": state.state_details.to_json(),
        "data": state.data if is_persisted_data(state.data) else None,
    }


class FlowRunStateRepository(Repository):
    async def get(self, state_id: str) -> State | None:
        row = (await self.connection.execute(select(flow_run_state).where(flow_run_state.c.id == state_id))).first()
        return state_from_row(row) if row else None

    async def list_for_run(self, flow_run_id: str, page: PageRequest, *, secret: str) -> tuple[list[State], str]:
        query = select(flow_run_state).where(flow_run_state.c.flow_run_id == flow_run_id)
        rows, token = await fetch_page(
            self.connection,
            query,
            state_history_sort_key(),
            page,
            secret=secret,
            fingerprint=repr(("flow_run_states", flow_run_id)),
        )
        return [state_from_row(row) for row in rows], token

    async def delete(self, state_id: str) -> bool:
        """Deletes one state. A run whose current state it was keeps its state_type and
        state_name but loses its state pointer, as in the reference."""
        result = await self.connection.execute(
            delete(flow_run_state).where(flow_run_state.c.id == state_id).returning(flow_run_state.c.flow_run_id)
        )
        row = result.first()
        if row is None:
            return False
        await self.connection.execute(
            update(flow_run)
            .where(flow_run.c.id == row.flow_run_id, flow_run.c.state_id == state_id)
            .values(state_id=None)
        )
        return True
