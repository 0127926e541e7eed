"""Serve a service's API with uvicorn, as `uvicorn --factory` does, waking once a second when
idle instead of ten times (issue 19: an idle `make run` costs next to nothing).

    python -m shared.serve services.registry.app:create_app --host 127.0.0.1 --port 8101

uvicorn's server loop ticks every 0.1 s to refresh its Date header (once a second) and to
notice a stop signal; here it ticks every second: the Date header is refreshed as often, and a
stop is noticed within a second.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn

TICK = 1.0  # seconds between two looks at the stop flag and the Date header


class QuietServer(uvicorn.Server):
    async def main_loop(self) -> None:
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864_000  # every tick is a whole second: on_tick's % 10
            await asyncio.sleep(TICK)
            should_exit = await self.on_tick(counter)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.serve", description=__doc__)
    parser.add_argument("app", help="module:factory, e.g. services.registry.app:create_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    config = uvicorn.Config(args.app, factory=True, host=args.host, port=args.port)
    QuietServer(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
