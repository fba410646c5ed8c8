#!/bin/sh
# Start Prometheus with SCRAPE_INTERVAL put into prometheus.yml (Prometheus itself does
# not read the environment). Works on the official image (busybox) and the Debian one.
set -eu
interval="${SCRAPE_INTERVAL:-5s}"
config_dir="${PROMETHEUS_CONFIG_DIR:-/etc/prometheus}"
data_dir="${PROMETHEUS_DATA_DIR:-/prometheus}"
case "$interval" in
    *[!0-9a-z]* | "" | [!0-9]*)
        echo "prometheus: SCRAPE_INTERVAL=$interval is not a duration like 5s or 500ms" >&2
        # Stay up, unhealthy, instead of exiting into a restart loop.
        trap 'exit 2' TERM INT
        while :; do sleep 3600 & wait $!; done ;;
esac
rendered="$data_dir/prometheus.yml"
prefix="${DNS_SD_PREFIX:-}"
case "$prefix" in
    *[!a-z0-9.-]*)
        echo "prometheus: DNS_SD_PREFIX=$prefix is not a DNS name prefix like tasks." >&2
        trap 'exit 2' TERM INT
        while :; do sleep 3600 & wait $!; done ;;
esac
# In a swarm (DNS_SD_PREFIX=tasks.) each service name becomes tasks.NAME: every task.
sed -e "s/[0-9a-z]* # SCRAPE_INTERVAL/$interval/" \
    -e "/# DNS_SD_PREFIX/ s/\([[,]\) */\1 $prefix/g" \
    "$config_dir/prometheus.yml" >"$rendered"
# Rule files are found relative to the config file.
ln -sfn "$config_dir/rules" "$data_dir/rules"
exec prometheus --config.file="$rendered" "$@"
