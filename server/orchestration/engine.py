"""Runs a policy around the validation of one proposal."""

from __future__ import annotations

import functools

from flowrun.server.domain.states import StateType
from flowrun.server.orchestration.context import OrchestrationContext
from flowrun.server.orchestration.rules import GlobalTransform, Policy


@functools.cache
def _compiled(
    policy: Policy, bookkeeping: Policy, from_type: StateType | None, to_type: StateType | None
) -> tuple[tuple[type, bool], ...]:
    """The steps that apply to one intended transition, worked out once per transition:
    rules declared for it, and every transform."""
    return tuple(
        (step, issubclass(step, GlobalTransform))
        for step in (*policy, *bookkeeping)
        if issubclass(step, GlobalTransform) or step.applies(from_type, to_type)
    )


async def orchestrate(context: OrchestrationContext, policy: Policy, bookkeeping: Policy) -> None:
    """Enter the policy's applicable rules in order, then the bookkeeping transforms;
    store the outcome (context.validate); exit everything in reverse. A rule's
    before-hook error aborts the proposal and is re-raised once every rule has exited."""
    from_type, to_type = context.initial_type, context.proposed_type
    stack = [
        step(context) if is_transform else step(context, from_type, to_type)
        for step, is_transform in _compiled(policy, bookkeeping, from_type, to_type)
    ]
    for step in stack:
        await step.enter()
    await context.validate()
    for step in reversed(stack):
        await step.exit()
    if context.orchestration_error is not None:
        raise context.orchestration_error
