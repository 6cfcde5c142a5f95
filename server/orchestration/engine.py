"""Runs a policy around the validation of one proposal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from server.orchestration.context import OrchestrationContext
from server.orchestration.policies import GLOBAL_POLICY, Policy
from server.orchestration.rules import GlobalTransform, OrchestrationRule


async def orchestrate(
    context: OrchestrationContext,
    policy: Policy,
    validate: Callable[[], Awaitable[None]],
    global_policy: Policy = GLOBAL_POLICY,
) -> None:
    """Enter the policy's applicable rules in order, then the global bookkeeping (flow
    runs' unless another is given: task runs have their own); let `validate` store the
    outcome; exit everything in reverse. A rule's before-hook error aborts the proposal
    and is re-raised once every rule has exited."""
    from_type, to_type = context.initial_type, context.proposed_type
    stack: list[OrchestrationRule | GlobalTransform] = []
    for step in (*policy, *global_policy):
        if issubclass(step, GlobalTransform):
            stack.append(step(context))
        elif step.applies(from_type, to_type):
            stack.append(step(context, from_type, to_type))
    for step in stack:
        await step.enter()
    await validate()
    for step in reversed(stack):
        await step.exit()
    if context.orchestration_error is not None:
        raise context.orchestration_error
