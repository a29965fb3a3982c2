"""The local Ray that a run starts keeps its idle workers for a while."""

import math
import os
import time

from pipelines.ray_runtime import IDLE_WORKER_KEEP_MS


def test_a_worker_left_idle_for_seconds_beside_busy_actors_serves_the_next_task(ray_local):
    ray = ray_local

    @ray.remote
    class Holder:  # actors that hold the CPUs, as the decoder and ASR actors and running visual tasks do
        def pid(self):
            return os.getpid()

    @ray.remote(num_cpus=0.1)
    def pid():
        return os.getpid()

    # the holders take all the free CPUs but the task's tenth
    each = math.floor((ray.available_resources()["CPU"] - 0.1) / 2 * 1e4) / 1e4
    holders = [Holder.options(num_cpus=each).remote() for _ in range(2)]
    try:
        ray.get([h.pid.remote() for h in holders])
        before = set(ray.get([pid.remote() for _ in range(2)]))
        # Ray's default (1 s) ends idle workers beyond one per free CPU; a visual task arriving after such a pause
        # would then pay for a new worker process
        time.sleep(2.5)
        assert IDLE_WORKER_KEEP_MS > 2500
        assert ray.get(pid.remote()) in before
    finally:
        for h in holders:
            ray.kill(h)
