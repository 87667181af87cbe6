#!/bin/sh
# Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d):
# creates the role Grafana reads the audit trail with. It may SELECT from schema
# usdcop_audit and nothing else: no INSERT, UPDATE, DELETE, DDL, and its sessions are
# read-only. The schema is created here, owned by the stack's owner role, so that the
# default privileges below cover every table and partition the sidecar creates in it later.
#
# Environment: POSTGRES_USER and POSTGRES_DB (the owner and the database, as the image
# knows them), GRAFANA_AUDIT_DB_USER and GRAFANA_AUDIT_DB_PASSWORD (the reader).
set -eu
: "${GRAFANA_AUDIT_DB_USER:?set GRAFANA_AUDIT_DB_USER}"
: "${GRAFANA_AUDIT_DB_PASSWORD:?set GRAFANA_AUDIT_DB_PASSWORD}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v owner="$POSTGRES_USER" -v db="$POSTGRES_DB" \
     -v reader="$GRAFANA_AUDIT_DB_USER" -v password="$GRAFANA_AUDIT_DB_PASSWORD" <<'SQL'
CREATE ROLE :"reader" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
ALTER ROLE :"reader" SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE :"db" TO :"reader";
CREATE SCHEMA IF NOT EXISTS usdcop_audit AUTHORIZATION :"owner";
GRANT USAGE ON SCHEMA usdcop_audit TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA usdcop_audit TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA usdcop_audit
    GRANT SELECT ON TABLES TO :"reader";
REVOKE CREATE ON SCHEMA public FROM :"reader";
SQL
