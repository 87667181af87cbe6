"""usdcop-exporter: observability sidecar and library for the USD/COP trading stack."""

__version__ = "0.1.0"
