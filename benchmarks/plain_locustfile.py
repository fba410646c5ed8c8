"""The baseline for bench_locust.py: a plain FastHttpUser, no checks, no lab listeners."""

from locust import FastHttpUser, task


class PlainUser(FastHttpUser):
    @task
    def json(self) -> None:
        self.client.get("/json")
