"""Shoppers browsing, quoting shipping and ordering: a plain Locust file, nothing of the
lab in it (``locust -f locustfile.py --host http://127.0.0.1:8000``)."""

import random

from locust import HttpUser, between, task


class Shopper(HttpUser):
    wait_time = between(0.05, 0.2)

    @task(10)
    def view_product(self) -> None:
        self.client.get(f"/products/{random.randint(1, 10_000)}", name="/products/{id}")

    @task(4)
    def view_cart(self) -> None:
        self.client.get(f"/users/{random.randint(1, 5_000)}/cart", name="/users/{id}/cart")

    @task(2)
    def quote_shipping(self) -> None:
        self.client.get(f"/shipping/{random.randint(10_000, 99_999)}/quote",
                        name="/shipping/{zip}/quote")

    @task(2)
    def place_order(self) -> None:
        self.client.post("/orders", json={"product_id": random.randint(1, 10_000),
                                          "quantity": random.randint(1, 3)})

    @task(1)
    def recommendations(self) -> None:
        self.client.get(f"/users/{random.randint(1, 5_000)}/recommendations",
                        name="/users/{id}/recommendations")
