"""Users that think 50 ms after each answer (a closed model): 50 of them can ask for at most
50 / (50 ms + the response time), a little under 1,000 req/s, however fast the server."""

from locust import FastHttpUser, constant, task


class ThinkingUser(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def json(self) -> None:
        self.client.get("/json", name="/json")
