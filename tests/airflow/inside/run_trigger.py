"""Run by Airflow's Python: a trigger's run() as the triggerer would run it, each event printed
as one JSON line and its log lines on the same stream; ends after ``events`` events."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from airflow.sdk.module_loading import import_string


async def main(classpath: str, kwargs: str, events: int) -> None:
    trigger = import_string(classpath)(**json.loads(kwargs))
    seen = 0
    async for event in trigger.run():
        print(json.dumps({"event": event.payload}), flush=True)
        seen += 1
        if seen == events:
            return


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s", force=True)
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
