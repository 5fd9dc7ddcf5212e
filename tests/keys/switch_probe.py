"""A stand-in for one gateway process's hot path: reads the epochs as every request
will (one query), refreshes a ``SwitchBoard`` when the switches epoch moved, and reports
what the board says. Driven over stdin/stdout by ``test_switches.py``:

    python switch_probe.py DATABASE_URL PROVIDER DEPLOYMENT_PROVIDER DEPLOYMENT_MODEL

Each input line asks for one check; each answer is one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys

from tollway.store.db import Database
from tollway.switches import SwitchBoard


async def main(url: str, provider: str, dep_provider: str, dep_model: str) -> None:
    """Answer one check per line of stdin until it closes."""
    db = Database(url)
    board = SwitchBoard(db)
    loop = asyncio.get_running_loop()
    try:
        while await loop.run_in_executor(None, sys.stdin.readline):
            epochs = await db.epoch.current()
            before = board.epoch
            await board.refresh_if_changed(epochs.switches)
            answer = {
                "epochs": list(epochs),
                "reloaded": board.epoch != before,
                "proxy": board.proxy_on(),
                "provider": board.provider_on(provider),
                "deployment": board.deployment_on(dep_provider, dep_model),
                "off": sorted(state.name for state in board.off()),
            }
            print(json.dumps(answer), flush=True)
    finally:
        await db.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
