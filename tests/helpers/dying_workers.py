"""Stand-ins for server.workers._worker_main that die at once, for supervisor tests. A
module of their own that imports nothing, so each spawned interpreter starts quickly."""

import os


def serve_then_die(settings, index, channel) -> None:
    channel.send(0)  # "serving"
    os._exit(3)  # a crash: no clean interpreter exit


def die_before_serving(settings, index, channel) -> None:
    os._exit(4)
