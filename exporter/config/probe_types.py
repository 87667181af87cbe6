"""The probe types a service may name: the one list that the configuration checks types
against and that the prober table (exporter.health.probes.PROBERS) is keyed by, in order."""

PROBE_TYPES = ("http", "tcp", "redis", "postgres", "python", "websocket", "dns", "icmp", "grpc",
               "tls", "push")
