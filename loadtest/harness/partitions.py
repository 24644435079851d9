"""A partition between one flashgate process and one dependency, on one machine.

`python partitions.py CONTROL_PORT LINKS_JSON` runs TCP relays: every link names one role
and one dependency ("worker-1/postgres") and has one or more listeners, each relaying to one
upstream port. The role is configured to reach its dependency through its link's listeners
(cluster.py), every other process reaches it directly, so cutting a link partitions that
one pair and nothing else.

A cut link behaves as a network that drops packets, not as a refused port: bytes already in
flight are held, open connections neither move nor close, and a new connection is accepted
but reaches nothing; when the link heals everything held moves on, as TCP would retransmit
it. Whether the role notices (a timeout, a heartbeat) is its own business, which is what the
chaos suite tests.

The control port takes one line per connection: `cut NAME`, `heal NAME`, `heal all` or
`status`; it answers one line (`ok`, or the cut links as JSON).
"""

import asyncio
import json
import sys

HOST = "127.0.0.1"


class Link:
    def __init__(self):
        self.open = asyncio.Event()
        self.open.set()


async def pump(reader, writer, link):
    try:
        while True:
            await link.open.wait()
            data = await reader.read(65536)
            if not data:
                break
            await link.open.wait()  # read just before the cut: held until the heal
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def relay(link, upstream_port, client_reader, client_writer):
    await link.open.wait()  # a connection opened during the cut reaches nothing until it heals
    try:
        up_reader, up_writer = await asyncio.open_connection(HOST, upstream_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pump(client_reader, up_writer, link), pump(up_reader, client_writer, link))


async def control(links, reader, writer):
    words = (await reader.readline()).decode().split()
    answer = "ok"
    if words[:1] == ["cut"] and len(words) == 2 and words[1] in links:
        links[words[1]].open.clear()
    elif words[:1] == ["heal"] and len(words) == 2 and (words[1] in links or words[1] == "all"):
        for name, link in links.items():
            if words[1] in (name, "all"):
                link.open.set()
    elif words == ["status"]:
        answer = json.dumps(sorted(n for n, l in links.items() if not l.open.is_set()))
    else:
        answer = f"error: {' '.join(words)}"
    writer.write((answer + "\n").encode())
    await writer.drain()
    writer.close()


async def main(control_port, spec):
    links = {}
    servers = []
    for name, pairs in spec.items():
        link = links[name] = Link()
        for listen, upstream in pairs:
            async def serve(r, w, link=link, upstream=upstream):
                await relay(link, upstream, r, w)
            servers.append(await asyncio.start_server(serve, HOST, listen))
    servers.append(await asyncio.start_server(lambda r, w: control(links, r, w), HOST, control_port))
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), json.loads(sys.argv[2])))
