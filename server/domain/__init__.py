"""Domain objects: plain dataclasses shared by servicers, orchestration and repositories.
They know neither gRPC nor SQL."""
