"""A TCP proxy on 127.0.0.1 that delays every chunk, each way, by a latency plus a uniform jitter, as a real network
path does: a chunk never overtakes an earlier one (TCP keeps order), so a jittered chunk also holds back those
behind it. It runs its own asyncio loop in a daemon thread; the browser tests put it between the page and daphne."""

from __future__ import annotations

import asyncio
import random
import threading

# Chunks in flight per direction of a connection: past this the proxy stops reading (the sender sees backpressure).
MAX_CHUNKS_IN_FLIGHT = 512
CHUNK_BYTES = 65536


class LatencyProxy:
    def __init__(self, upstream_port: int, *, delay_ms: float, jitter_ms: float = 0.0, seed: int = 13):
        if delay_ms < 0 or not 0 <= jitter_ms <= delay_ms:
            raise ValueError("need 0 <= jitter_ms <= delay_ms")
        self.upstream_port = upstream_port
        self.delay = delay_ms / 1000
        self.jitter = jitter_ms / 1000
        self.rng = random.Random(seed)
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="latency-proxy", daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop
        ).result(timeout=5)
        self.port = self.server.sockets[0].getsockname()[1]
        self.tasks: set[asyncio.Task] = set()

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()

    def _one_way(self) -> float:
        return self.delay + self.rng.uniform(-self.jitter, self.jitter)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            self.tasks.discard(task)
            return
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass  # close(): the proxy goes away with its connections
        finally:
            for w in (writer, up_writer):
                w.close()
            self.tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue(MAX_CHUNKS_IN_FLIGHT)

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        delivering = asyncio.ensure_future(deliver())
        last_due = 0.0
        try:
            while not delivering.done() and (data := await reader.read(CHUNK_BYTES)):
                last_due = max(last_due, loop.time() + self._one_way())
                put = asyncio.ensure_future(queue.put((last_due, data)))
                await asyncio.wait([put, delivering], return_when=asyncio.FIRST_COMPLETED)
                if not put.done():
                    put.cancel()  # the other side went away: nothing more can be delivered
            if not delivering.done():
                await queue.put((0.0, None))
            await delivering
        except OSError:
            pass  # a side reset the connection: the other is closed by _serve
        finally:
            delivering.cancel()
