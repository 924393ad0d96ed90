"""Run one command and report its own wall time, CPU and peak RSS as JSON: ``launch.py REPORT -- ARGV...``.

Why a launcher: Linux carries a process's peak RSS across fork + exec, so a child forked from the benchmark
driver (which holds the sandbox, ~80 MB) would report at least the driver's size. This launcher is a small
interpreter (started with -I -S, stdlib only), so what it spawns reports its own peak. CPU is the change in
``getrusage(RUSAGE_CHILDREN)`` around the child: the whole client process tree.
"""

import json
import os
import resource
import sys
import time


def main(argv: list) -> int:
    report, command = argv[0], argv[2:]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = os.waitstatus_to_exitcode(status)
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    with open(report, "w") as out:
        json.dump({"status": code, "wall_s": wall, "cpu_s": user + system, "user_s": user, "sys_s": system,
                   "maxrss_kib": usage.ru_maxrss}, out)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
