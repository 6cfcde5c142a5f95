"""Orchestration: the SetState interceptor, the orchestration context, rules and policies."""
