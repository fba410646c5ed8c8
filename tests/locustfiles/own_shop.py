"""A user's own locustfile: its own user class and task names, no lab base class, no lab
import. The lab's plugin is loaded beside it (``-f own_shop.py,loadlab_plugin.py``)."""

from locust import FastHttpUser, between, task


class Shopper(FastHttpUser):
    wait_time = between(0.0, 0.01)

    @task(3)
    def browse_catalogue(self) -> None:
        self.client.get("/json", name="browse catalogue")

    @task
    def place_order(self) -> None:
        order = {"name": "order", "quantity": 3, "price": 9.5}
        self.client.post("/echo", json=order, name="place order")
