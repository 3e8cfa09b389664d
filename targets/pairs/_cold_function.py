"""The function process of the cold_start pair: one "instance" of a serverless function.

Run by targets/pairs/cold_start.py with the server's own interpreter, as a script (not as a
module of the package, which would import pairbench first): `python -I _cold_function.py MODE`.
The database DSN comes in the environment (PAIRBENCH_FUNCTION_DSN), not on the command line
where `ps` would show its password.

It speaks JSON lines on stdin/stdout and listens on no port. At start it prints one line,
`{"import_s": .., "connect_s": ..}`, the time its start-up spent importing and connecting; then,
for each invocation line `{"invocation": N}`, one reply line with the body and what that
invocation spent importing and connecting (non-zero only for the first invocation of a lazy
process). It exits when stdin closes, so it never outlives the server that spawned it even if
that server is killed without a chance to end it.

MODE `eager`: the handler module as usually written, every import at the top and the database
connection opened at start, before the first invocation can be answered. MODE `lazy`: the
trimmed cold path: only what an invocation needs is imported, where it is needed, and the
connection is opened on first use.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

DSN_ENV = "PAIRBENCH_FUNCTION_DSN"
# What the handler module imports at its top: a validation library and a numeric one for its
# other routes (reports, exports), and the database driver. An invocation of this route needs
# only the driver.
EAGER_MODULES = ("pydantic", "numpy", "psycopg")
# One statement per invocation: ten rows derived from the invocation's number.
QUERY = "SELECT n, md5(n::text) FROM generate_series(%s::int, %s::int + 9) AS n ORDER BY n"


class Function:
    """The process's state: its connection, once opened, and what opening it cost."""

    def __init__(self) -> None:
        self.conn: Any = None

    def imports(self, modules: tuple[str, ...]) -> float:
        started = time.perf_counter()
        for name in modules:
            __import__(name)
        return time.perf_counter() - started

    def connect(self) -> float:
        started = time.perf_counter()
        import psycopg

        self.conn = psycopg.connect(os.environ[DSN_ENV], autocommit=True)
        return time.perf_counter() - started

    def invoke(self, invocation: int) -> dict[str, Any]:
        """Answer one invocation: opening what is not open yet (the lazy path), then the query."""
        import_s = connect_s = 0.0
        if self.conn is None:
            import_s = self.imports(("psycopg",))
            connect_s = self.connect()
        rows = self.conn.execute(QUERY, (invocation, invocation)).fetchall()
        body = {"invocation": invocation, "rows": [{"n": n, "digest": d} for n, d in rows]}
        return {"body": body, "import_s": import_s, "connect_s": connect_s}


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in ("eager", "lazy"):
        print(f"usage: _cold_function.py eager|lazy (not {mode!r})", file=sys.stderr)
        return 2
    function = Function()
    ready = {"import_s": 0.0, "connect_s": 0.0}
    if mode == "eager":
        ready["import_s"] = function.imports(EAGER_MODULES)
        ready["connect_s"] = function.connect()
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        invocation = int(json.loads(line)["invocation"])
        print(json.dumps(function.invoke(invocation)), flush=True)
    if function.conn is not None:
        function.conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
