"""The PostgreSQL the lab starts natively: binaries found, a throwaway cluster, its seed.

The map: ``binaries`` (which PostgreSQL: ``PG_BIN``, the system's, or the ``pgserver``
wheel's), ``cluster`` (a throwaway cluster: initdb, the postmaster as a child), ``seed``
(the lab's seed data, ``seed.sql``), ``keeper`` (the owner of a ``loadlab db up``
cluster) and ``command`` (``loadlab db up|down|status``). Not the services' database code
(``loadlab.service_db``), nor a run's database (``loadlab.runner.run_database``).
"""

from loadlab.pgcluster.binaries import (
    INSTALL_HINT,
    Binaries,
    PostgresUnavailable,
    find_binaries,
)
from loadlab.pgcluster.cluster import (
    LAB_SETTINGS,
    ClusterError,
    PostgresCluster,
    describe_server,
    sweep_stale_clusters,
)
from loadlab.pgcluster.seed import FORTUNE_ROWS, WORLD_ROWS, seed, seed_sql

__all__ = [
    "FORTUNE_ROWS",
    "INSTALL_HINT",
    "LAB_SETTINGS",
    "WORLD_ROWS",
    "Binaries",
    "ClusterError",
    "PostgresCluster",
    "PostgresUnavailable",
    "describe_server",
    "find_binaries",
    "seed",
    "seed_sql",
    "sweep_stale_clusters",
]
