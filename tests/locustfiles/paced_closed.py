"""Locust's usual fixed-rate recipe, a closed model: every user paces itself at
PACED_USER_RPS but waits for each answer, so a stalled server gets fewer requests."""

import os

from locust import FastHttpUser, constant_throughput, task


class PacedUser(FastHttpUser):
    wait_time = constant_throughput(float(os.environ.get("PACED_USER_RPS", "1")))

    @task
    def json(self) -> None:
        self.client.get("/json", name="/json")
