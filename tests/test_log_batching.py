"""The gateway's log handler: lines logged during one turn of the event loop are written
in one go at the end of it; lines logged off the loop, at once; nothing waits past
``flush`` (``logging.shutdown`` at exit)."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

from tollway.telemetry.logs import JsonFormatter, LoopBatchedHandler


class CountingStream(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def logger_to(stream: CountingStream, name: str) -> tuple[logging.Logger, LoopBatchedHandler]:
    handler = LoopBatchedHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"tollway.test.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler


def lines(stream: CountingStream) -> list[str]:
    return [line for line in stream.getvalue().split("\n") if line]


def test_one_write_per_loop_turn_in_order() -> None:
    stream = CountingStream()
    logger, _ = logger_to(stream, "turn")

    async def serve() -> None:
        for index in range(5):
            logger.info("request", extra={"fields": {"n": index}})
        assert stream.writes == 0  # still this turn
        await asyncio.sleep(0)
        assert stream.writes == 1
        logger.info("request", extra={"fields": {"n": 5}})
        await asyncio.sleep(0)

    asyncio.run(serve())
    assert stream.writes == 2
    assert [line.count('"n":') for line in lines(stream)] == [1] * 6
    assert [f'"n":{n}' in line for n, line in enumerate(lines(stream))] == [True] * 6


def test_off_the_loop_lines_are_written_at_once_after_those_waiting() -> None:
    stream = CountingStream()
    logger, handler = logger_to(stream, "thread")

    async def serve() -> None:
        logger.info("from the loop")
        worker = threading.Thread(target=logger.warning, args=("from a thread",))
        worker.start()
        worker.join()
        # The thread's line went out at once, with the loop's waiting line before it.
        assert ['"msg":"from the loop"' in lines(stream)[0]] == [True]
        assert '"msg":"from a thread"' in lines(stream)[1]

    asyncio.run(serve())
    logger.info("after the loop")  # no loop: at once
    assert '"msg":"after the loop"' in lines(stream)[-1]
    handler.close()


def test_flush_writes_what_waits_when_the_loop_never_turns_again() -> None:
    stream = CountingStream()
    logger, handler = logger_to(stream, "flush")
    loop = asyncio.new_event_loop()
    try:
        # One turn: the line, then the stop; the drain it schedules never runs.
        loop.call_soon(logger.error, "stopping")
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        loop.close()
    assert stream.getvalue() == ""
    handler.flush()
    assert '"msg":"stopping"' in stream.getvalue()
    logger.info("later")  # another loop, or none: written, not stuck behind a dead loop
    assert '"msg":"later"' in stream.getvalue()
