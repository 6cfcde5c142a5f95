"""Watching flow runs: cursors, filters, the per-process wake-up hub and the stream
loop behind WatchFlowRuns and WatchFlowRun (server/services/watch.py puts protos on
them). The events themselves are written by the changes (server/repositories/
flow_run_events.py explains the outbox and why no event is skipped)."""
