"""One member of the process group: the targets app under uvicorn on two inherited sockets.

`python -m pairbench.targets.groupmember --shared-fd N --private-fd M [uvicorn options]`.
The harness (harness/group.py) binds one listening socket that every member shares, and one
private socket per member, and hands both to each member (subprocess `pass_fds`). Serving one
socket from N processes is what `uvicorn --workers N` does (its supervisor binds the socket and
each worker accepts from it: the kernel hands each new connection to one of them); the private
socket lets a client reach one member alone (docs/architecture.md, "The process group").
"""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn

APP = "pairbench.targets.app:create_app"
# The group's private ports, comma-separated, in member order, and this member's index in them:
# /metrics reads its siblings through them (targets/groupmetrics.py).
GROUP_PORTS_ENV = "PAIRBENCH_GROUP_PORTS"
GROUP_INDEX_ENV = "PAIRBENCH_GROUP_INDEX"


def parse(argv: list[str]) -> argparse.Namespace:
    """The two descriptors and the uvicorn options the harness's server runs with
    (harness/server.py, UVICORN_ARGS)."""
    parser = argparse.ArgumentParser(prog="pairbench.targets.groupmember")
    parser.add_argument("--shared-fd", type=int, required=True)
    parser.add_argument("--private-fd", type=int, required=True)
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto")
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Serve the app on both sockets until SIGTERM (uvicorn's graceful shutdown)."""
    args = parse(sys.argv[1:] if argv is None else argv)
    sockets = [socket.socket(fileno=args.shared_fd), socket.socket(fileno=args.private_fd)]
    config = uvicorn.Config(
        APP,
        factory=True,
        loop=args.loop,
        http=args.http,
        access_log=args.access_log,
        log_level=args.log_level,
    )
    uvicorn.Server(config).run(sockets=sockets)


if __name__ == "__main__":
    main()
