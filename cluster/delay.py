#!/usr/bin/env python3
"""TCP relays that add a fixed one-way delay in both directions, for peer links on one machine
where `tc netem` is not available (the kernel lacks `sch_netem`).

    python3 cluster/delay.py --delay-ms 50 17000:7000 17001:7001   # listen:target on 127.0.0.1

Each relay accepts on 127.0.0.1:LISTEN and connects to 127.0.0.1:TARGET; every byte is held for
the delay before it is passed on, in order, in each direction, so a round trip through a relay
takes twice the delay. Bytes are never dropped or reordered. `--loss P` models what packet loss
does to a TCP stream: with probability P a chunk read is held for a retransmission timeout more
(max(200 ms, the round trip) + 50 ms, Linux's floor and about its estimate), and everything after
it on that direction waits behind it, as TCP's in-order delivery makes it.

`Relays` is importable: `Relays([(listen, target), ...], delay_ms).start()` runs them on a
background thread until `stop()`. `--host` listens and connects on another address than
127.0.0.1 (`cluster/netns.py` runs a relay in each node's namespace, in front of its peer port,
when the kernel has no netem), and `--by-source IP=MS,...` gives connections from those addresses
their own delay (the region pair's), in both directions. The benchmark `bench/cluster-overshoot.py` points every node's
advertised peer address at a relay in front of it, so every link between two nodes carries the
delay each way.
"""
import argparse
import asyncio
import random
import threading
import time


async def _pump(reader, writer, delay, loss=0.0, rng=None):
    queue = asyncio.Queue()
    rto = max(0.2, 2 * delay) + 0.05
    last_due = 0.0

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            due = time.monotonic() + delay
            if loss and rng.random() < loss:
                due += rto
            # In order: nothing overtakes a chunk that is being retransmitted.
            last_due = max(last_due, due)
            queue.put_nowait((last_due, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((0, None))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


class Relays:
    def __init__(self, pairs, delay_ms, host="127.0.0.1", loss=0.0, seed=1, by_source=None):
        self.pairs = pairs
        self.delay = delay_ms / 1000.0
        # Client address -> one-way delay in seconds (others get `delay`).
        self.by_source = {ip: ms / 1000.0 for ip, ms in (by_source or {}).items()}
        self.loss = loss
        self.rng = random.Random(seed)
        self.host = host
        self.loop = None
        self.thread = None

    async def _serve(self, target):
        async def handle(client_reader, client_writer):
            peer = client_writer.get_extra_info("peername")
            delay = self.by_source.get(peer[0] if peer else None, self.delay)
            try:
                up_reader, up_writer = await asyncio.open_connection(self.host, target)
            except OSError:
                client_writer.close()
                return
            await asyncio.gather(_pump(client_reader, up_writer, delay, self.loss, self.rng),
                                 _pump(up_reader, client_writer, delay, self.loss, self.rng),
                                 return_exceptions=True)
        return handle

    def start(self):
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            for listen, target in self.pairs:
                handler = self.loop.run_until_complete(self._serve(target))
                self.loop.run_until_complete(asyncio.start_server(handler, self.host, listen, reuse_address=True))
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        return self

    def stop(self):
        if self.loop:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--loss", type=float, default=0.0, help="chance (0 to 1) that a chunk waits a retransmission timeout")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen and connect on")
    parser.add_argument("--by-source", default="", help="IP=MS,...: the one-way delay of connections from these addresses")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("pairs", nargs="+", help="LISTEN:TARGET ports on the host")
    args = parser.parse_args()
    pairs = [tuple(int(p) for p in pair.split(":")) for pair in args.pairs]
    by_source = {ip: float(ms) for ip, ms in (x.split("=") for x in args.by_source.split(",") if x)}
    Relays(pairs, args.delay_ms, host=args.host, loss=args.loss, seed=args.seed, by_source=by_source).start()
    print(f"relaying {len(pairs)} link(s) with {args.delay_ms} ms each way; Ctrl-C stops")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
