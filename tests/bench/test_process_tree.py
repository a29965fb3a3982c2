"""The benches' process-tree meter: it counts what the command and the processes it starts spend, and leaves alone
what the measuring process had started before (a multiprocessing resource tracker), neither counting nor
killing it.

``run_tree`` makes its caller a child subreaper for good, so the measuring runs in a process of its own: in
pytest's process it would adopt (and never reap) other tests' orphans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"

MEASURE = """
import json, subprocess, sys
sys.path.insert(0, sys.argv[1])
from process_tree import run_tree

spin = "import time\\nend = time.process_time() + 0.6\\nwhile time.process_time() < end: pass\\ntime.sleep(1)\\n"
# a grandchild that burns 0.6 CPU-s and runs on past the command's exit (as Ray's daemons do)
parent = f"import subprocess, sys\\nsubprocess.Popen([sys.executable, '-c', {spin!r}])\\n"
mine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # started before: not its tree
try:
    usage = run_tree([sys.executable, "-c", parent], linger_s=10)
    print(json.dumps({"rc": usage.returncode, "cpu_s": usage.cpu_s, "wall_s": usage.wall_s,
                      "mine_alive": mine.poll() is None}))
finally:
    mine.kill()
    mine.wait()
"""


def test_run_tree_counts_the_commands_children_and_spares_the_callers_own():
    done = subprocess.run([sys.executable, "-c", MEASURE, str(BENCH)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    usage = json.loads(done.stdout.strip().splitlines()[-1])
    assert usage["rc"] == 0
    assert usage["cpu_s"] >= 0.5, usage  # the orphaned grandchild was followed to its end
    assert usage["mine_alive"], usage  # the caller's own child was neither waited for nor killed
    assert usage["wall_s"] < 30, usage
