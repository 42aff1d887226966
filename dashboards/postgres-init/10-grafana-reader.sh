#!/bin/sh
# Creates the read-only role Grafana's data source logs in as. The official postgres image runs this once,
# when it initialises an empty data directory (docker-compose.yml mounts this folder at
# /docker-entrypoint-initdb.d). Tables the migrations create later, as $POSTGRES_USER, are readable by the
# role through default privileges; it can never write.
set -eu
: "${GRAFANA_DB_USER:?set GRAFANA_DB_USER}" "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v reader="$GRAFANA_DB_USER" -v password="$GRAFANA_DB_PASSWORD" -v owner="$POSTGRES_USER" \
  -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"reader" LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE :"db" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
SQL
