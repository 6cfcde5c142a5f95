"""The orchestration interceptor: wraps exactly SetFlowRunState so that the servicer runs
inside one transaction that holds the run's lock and has applied the policy."""

from __future__ import annotations

import grpc

from server import clock, errors
from server.db.unit_of_work import Database
from server.orchestration.context import OrchestrationContext, SlotSettings, bind_context, unbind_context
from server.orchestration.engine import orchestrate
from server.orchestration.policies import policy_for
from server.services import from_proto

SET_FLOW_RUN_STATE = "/flowrun.v1.FlowRunService/SetFlowRunState"


class OrchestrationInterceptor(grpc.aio.ServerInterceptor):
    """For SetFlowRunState: open a write unit of work, lock and load the run with its
    current state, build the context, run the policy with the servicer as the
    validation step (it stores the outcome and builds the response), write the run's
    bookkeeping back and commit. Any exception rolls the whole transition back. Every
    other method passes through untouched."""

    def __init__(self, database: Database, slots: SlotSettings) -> None:
        self._database = database
        self._slots = slots
        self._wrapped: tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler] | None = None

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method != SET_FLOW_RUN_STATE:
            return handler
        if self._wrapped is None or self._wrapped[0] is not handler:  # built once, not per call
            self._wrapped = (handler, self._orchestrated(handler))
        return self._wrapped[1]

    def _orchestrated(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        servicer = handler.unary_unary
        database = self._database
        slots = self._slots

        async def orchestrated(request, context):
            now = clock.now()
            flow_run_id, proposed, force = from_proto.set_state_request(request, now)
            async with database.unit_of_work(write=True) as uow:
                run = await uow.repos.flow_runs.get_for_orchestration(flow_run_id)
                if run is None:
                    raise errors.flow_run_not_found(flow_run_id)
                orchestration = OrchestrationContext(
                    run=run,
                    initial_state=run.state,
                    proposed_state=proposed,
                    repos=uow.repos,
                    now=now,
                    force=force,
                    slots=slots,
                )
                response = None

                async def validate() -> None:  # the servicer stores the outcome
                    nonlocal response
                    response = await servicer(request, context)

                token = bind_context(orchestration)
                try:
                    await orchestrate(orchestration, policy_for(force), validate)
                finally:
                    unbind_context(token)
                await orchestration.finish()
            return response

        return grpc.unary_unary_rpc_method_handler(
            orchestrated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
