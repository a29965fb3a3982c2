"""The benches' process-tree meter: it counts what the command and the processes it starts spend, and leaves alone
what the measuring process had started before (a multiprocessing resource tracker), neither counting nor
killing it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from process_tree import run_tree  # noqa: E402

SPIN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


def test_run_tree_counts_the_commands_children_and_spares_the_callers_own():
    # a grandchild that burns 0.6 CPU-s and then runs on past the command's exit (as Ray's daemons do)
    parent = ("import subprocess, sys\n"
              f"subprocess.Popen([sys.executable, '-c', {SPIN.format(s=0.6) + 'time.sleep(1)'!r}])\n")
    mine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # started before: not its tree
    try:
        usage = run_tree([sys.executable, "-c", parent], linger_s=10)
        assert usage.returncode == 0
        assert usage.cpu_s >= 0.5, usage.cpu_by_role  # the orphaned grandchild was followed to its end
        assert mine.poll() is None  # the caller's own child was neither waited for nor killed
        assert usage.wall_s < 30
    finally:
        mine.kill()
        mine.wait()
