"""What the tests share and are not tests themselves: the real CLI as a subprocess
(``runner_cli``), real services (``services``), Locust (``locust_process``), Prometheus
(``prometheus_server``) and a compose project (``compose_project``) as processes, the
metrics scraped (``metrics_scrape``), the contract's checks (``contract_check``), the
fuzzer's hooks (``schemathesis_hooks``), the system tools a test needs (``system_tools``)
and the one loop that waits for an event (``polling``)."""
