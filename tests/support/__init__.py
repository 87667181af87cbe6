"""Helpers the tests share: free ports, tools, the machine's Redis and Postgres."""
