"""The demo's supervisor (``console.demo.supervise``) with cheap children, for the stop tests.

``python -m tests.support.demo_supervisor STATE_DIR STOP_TIMEOUT``: starts three children the
way the demo starts its own, each writing its pid (and a grandchild's) to ``STATE_DIR/pids``:
one that takes a while to exit after TERM (then writes ``pids.graceful``), one that ignores
TERM, and one that leaves a grandchild behind in its process group when it exits.
Prints ``ready`` once all are up.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from console.demo import Demo, supervise

# Each child appends "<pid>\n" to the pids file; the last line of the file marks readiness.
_SLOW = """
import os, signal, sys, time
def term(*_):
    time.sleep(1.5)  # a graceful shutdown that takes a moment (gunicorn finishing requests)
    open(sys.argv[1] + ".graceful", "w").close()
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
open(sys.argv[1], "a").write(f"{os.getpid()}\\n")
while True:
    time.sleep(0.1)
"""
_STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "a").write(f"{os.getpid()}\\n")
while True:
    time.sleep(0.1)
"""
_LEAVES_GRANDCHILD = """
import os, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
open(sys.argv[1], "a").write(f"{grandchild.pid}\\n{os.getpid()}\\n")
while True:
    time.sleep(0.1)
"""


def main() -> None:
    state, stop_timeout = Path(sys.argv[1]), float(sys.argv[2])
    (state / "logs").mkdir(parents=True, exist_ok=True)
    pids = state / "pids"
    demo = Demo(state=state, port=0, idp_port=0, card_api_port=0, simulate=False, rate=1.0,
                stop_timeout=stop_timeout)

    def work() -> None:
        env = dict(os.environ)
        for name, code in (("slow", _SLOW), ("stubborn", _STUBBORN),
                           ("grandparent", _LEAVES_GRANDCHILD)):
            demo.start(name, [sys.executable, "-c", code, str(pids)], env)
        while not pids.exists() or len(pids.read_text().split()) < 4:
            time.sleep(0.05)
        print("ready", flush=True)
        while True:
            demo.check_children()
            time.sleep(0.1)

    supervise(demo, work)


if __name__ == "__main__":
    main()
