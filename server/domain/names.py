"""Random "adjective-noun" run names, like the reference's slugs."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crimson", "daring", "eager",
    "fancy", "gentle", "golden", "happy", "humble", "jolly", "keen", "lively", "lucky", "mellow",
    "merry", "nimble", "noble", "olive", "proud", "quick", "quiet", "rapid", "rustic", "silver",
    "smart", "snappy", "solid", "sturdy", "swift", "tidy", "vivid", "warm", "witty", "zesty",
)
_NOUNS = (
    "otter", "falcon", "badger", "heron", "lynx", "panda", "raven", "walrus", "beetle", "bison",
    "cougar", "dingo", "eagle", "ferret", "gecko", "hare", "ibis", "jackal", "koala", "lemur",
    "marmot", "newt", "ocelot", "puffin", "quail", "robin", "salmon", "tapir", "urchin", "viper",
    "wombat", "yak", "zebra", "alpaca", "crane", "finch", "moose", "orca", "stork", "turtle",
)


def random_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}"
