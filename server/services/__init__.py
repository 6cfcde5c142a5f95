"""Async gRPC servicers: proto in, proto out; thin; no SQL."""
