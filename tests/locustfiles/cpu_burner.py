"""A user that only burns the Locust process's CPU: drives the lab's 90% CPU warning."""

import time

from locust import User, constant, task


class CpuBurner(User):
    wait_time = constant(0)

    @task
    def spin(self) -> None:
        deadline = time.perf_counter() + 0.05
        while time.perf_counter() < deadline:
            pass
