// The project store's schema, as numbered migrations. Each runs once, in its own transaction,
// in order; the same SQL runs on a PostgreSQL server and on embedded PGlite, so it sticks to
// what both accept. Never edit a migration that has shipped: add the next number.
export interface StoreMigration {
  version: number;
  name: string;
  sql: string;
}

export const STORE_MIGRATIONS: readonly StoreMigration[] = [
  {
    version: 1,
    name: 'drift scans and findings',
    sql: `
      CREATE TABLE drift_scans (
        id text PRIMARY KEY,
        from_env text NOT NULL,
        to_env text NOT NULL,
        workflow_id text NOT NULL,
        trigger text NOT NULL,
        requested_by text,
        -- the component names compared
        components jsonb NOT NULL DEFAULT '[]',
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        -- running, completed, failed
        status text NOT NULL DEFAULT 'running',
        error text,
        manifest_digest text,
        -- findings per severity once completed: {"critical": 1, "warning": 3, "info": 0, "allowed": 2}
        summary jsonb
      );
      CREATE INDEX drift_scans_pair ON drift_scans (from_env, to_env, started_at DESC);

      CREATE TABLE drift_findings (
        scan_id text NOT NULL REFERENCES drift_scans (id) ON DELETE CASCADE,
        -- identifies the same difference across scans of a pair: component, aspect, subject
        key text NOT NULL,
        component text NOT NULL,
        aspect text NOT NULL,
        subject text NOT NULL,
        change text NOT NULL CHECK (change IN ('added', 'removed', 'changed')),
        detail text NOT NULL,
        severity text NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
        -- the severity the component's kind gave, before rules (rules can be re-tested against it)
        kind_severity text,
        allowed boolean NOT NULL DEFAULT false,
        auto_fixable boolean NOT NULL DEFAULT false,
        -- the rule that classified it (its index and name), when one matched
        rule text,
        -- new, persisting, resolved: against the previous completed scan of the same pair
        state text NOT NULL DEFAULT 'new',
        PRIMARY KEY (scan_id, key)
      );

      CREATE TABLE drift_alerts (
        from_env text NOT NULL,
        to_env text NOT NULL,
        scan_id text NOT NULL,
        sent_at timestamptz NOT NULL DEFAULT now(),
        -- alert or resolved
        kind text NOT NULL,
        -- the findings it named, key → severity, so the next scan knows what is new or worse
        findings jsonb NOT NULL,
        PRIMARY KEY (from_env, to_env, scan_id, kind)
      );
    `,
  },
];
