#!/bin/sh
# Runs inside temporalio/admin-tools (see docker-compose.yml).
#   schema:    creates the Temporal databases on PostgreSQL and brings their schemas up to date
#   namespace: creates the namespace and registers rewind's search attributes
set -eu

case "${1:-}" in
schema)
  for db in temporal temporal_visibility; do
    dir=temporal
    [ "$db" = temporal_visibility ] && dir=visibility
    tool="temporal-sql-tool --plugin postgres12 --ep $POSTGRES_SEEDS -u $POSTGRES_USER -p $DB_PORT --pw $POSTGRES_PWD --db $db"
    $tool create || true # exists on a second run
    $tool setup-schema -v 0.0 || true
    $tool update-schema -d "/etc/temporal/schema/postgresql/v12/$dir/versioned"
  done
  ;;
namespace)
  until temporal operator cluster health --address "$TEMPORAL_ADDRESS"; do sleep 2; done
  temporal operator namespace describe -n "$NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 ||
    temporal operator namespace create -n "$NAMESPACE" --retention 30d --address "$TEMPORAL_ADDRESS"
  # The same attributes the control worker registers at start (src/domain/search-attributes.ts).
  for name in RewindEnvironment RewindPhase RewindState RewindTrigger RewindTarget; do
    temporal operator search-attribute create -n "$NAMESPACE" --name "$name" --type Keyword --address "$TEMPORAL_ADDRESS" || true
  done
  temporal operator search-attribute create -n "$NAMESPACE" --name RewindDryRun --type Bool --address "$TEMPORAL_ADDRESS" || true
  ;;
*)
  echo "usage: temporal-setup.sh schema|namespace" >&2
  exit 2
  ;;
esac
