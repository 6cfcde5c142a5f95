"""flowrun server: gRPC servicers, orchestration and storage."""
