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
  {
    version: 2,
    name: 'audit log',
    // Who did what to rewind, through which door, having seen what: src/audit/audit-log.ts
    // writes and checks it. The trigger is for mistakes and ordinary roles; a superuser can get
    // past it, which is why every row is also hash-chained with a key the database never sees.
    sql: `
      CREATE TABLE audit_log (
        seq bigint PRIMARY KEY CHECK (seq > 0),
        -- UTC with milliseconds, kept as the very text that was hashed, so verifying reads back
        -- what was signed whatever the session's time zone or the driver's date parsing; its
        -- fixed width makes text order time order
        at text NOT NULL CHECK (at ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$'),
        actor text NOT NULL,
        -- cli, api, slack, alertmanager, workflow, schedule: checked by the code, so a new door
        -- needs no migration
        door text NOT NULL,
        action text NOT NULL,
        outcome text NOT NULL CHECK (outcome IN ('accepted', 'refused', 'recorded')),
        run_id text,
        environment text,
        reason text,
        evidence jsonb,
        detail jsonb,
        -- hex HMAC-SHA256 of the previous row (a fixed value before the first), and of this row
        prev_hash text NOT NULL,
        hash text NOT NULL
      );
      CREATE INDEX audit_log_run ON audit_log (run_id, seq) WHERE run_id IS NOT NULL;
      CREATE INDEX audit_log_actor ON audit_log (actor, seq);
      CREATE INDEX audit_log_at ON audit_log (at);

      CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
          USING HINT = 'audit rows are evidence and are never changed or removed; rewind audit verify checks them';
      END
      $$;
      -- Per statement, so a TRUNCATE is refused too, and a DELETE that matches nothing still says so.
      CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
    `,
  },
  {
    version: 3,
    name: 'slack messages of rollbacks',
    sql: `
      -- The one message each rollback has in Slack, so that later events update it.
      CREATE TABLE slack_messages (
        run_id text PRIMARY KEY,
        channel text NOT NULL,
        ts text NOT NULL,
        posted_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 4,
    name: 'alert groups of triggered rollbacks',
    sql: `
      -- The last rollback each alert group started, for the trigger rules' cooldown.
      CREATE INDEX audit_log_alert_group ON audit_log ((detail->>'group'), seq)
        WHERE door = 'alertmanager' AND action = 'rollback.start';
    `,
  },
  {
    version: 5,
    name: 'rollback history',
    sql: `
      -- Every rollback that was announced (dry runs are not): recorded when it starts, completed
      -- when it ends, so metrics and rewind stats count what happened, across restarts.
      -- ended_seq numbers the endings in the order they were recorded, so a metrics process
      -- reads only the runs that ended since it last looked.
      CREATE SEQUENCE rollback_runs_ended_seq;
      CREATE TABLE rollback_runs (
        run_id text PRIMARY KEY,
        environment text NOT NULL,
        trigger text NOT NULL,
        trigger_rule text,
        requester text NOT NULL,
        target text NOT NULL,
        state text NOT NULL,
        started_at timestamptz NOT NULL,
        ended_at timestamptz,
        duration_seconds double precision,
        approval_wait_seconds double precision,
        phase_seconds jsonb NOT NULL DEFAULT '{}'::jsonb,
        -- when the run came to the approval gate (metrics: how long the oldest waits)
        awaiting_approval_since timestamptz,
        ended_seq bigint UNIQUE,
        cause text
      );
      CREATE INDEX rollback_runs_started_at ON rollback_runs (started_at);
    `,
  },
  {
    version: 6,
    name: 'repository checks',
    sql: `
      -- Every restic check of a repository: metrics read the last one that passed, alerts the age.
      CREATE TABLE repository_checks (
        id bigserial PRIMARY KEY,
        repository text NOT NULL,
        started_at timestamptz NOT NULL,
        finished_at timestamptz NOT NULL,
        ok boolean NOT NULL,
        -- the part of the data read (restic check --read-data-subset), or null: structure only
        read_data text,
        message text
      );
      CREATE INDEX repository_checks_repository ON repository_checks (repository, finished_at DESC);
    `,
  },
  {
    version: 7,
    name: 'drills',
    sql: `
      -- Every rollback drill: what it rolled back and forward, how long the rollback took against
      -- the goal, and whether it passed (rewind drill list, the metrics).
      CREATE TABLE drills (
        id text PRIMARY KEY,
        environment text NOT NULL,
        scope text NOT NULL,
        components jsonb NOT NULL,
        from_version text NOT NULL,
        to_version text NOT NULL,
        started_at timestamptz NOT NULL,
        finished_at timestamptz NOT NULL,
        outcome text NOT NULL,
        reason text,
        rollback_run_id text NOT NULL,
        rollback_seconds double precision NOT NULL,
        forward_seconds double precision,
        mttr_goal_seconds double precision NOT NULL,
        met_goal boolean NOT NULL
      );
      CREATE INDEX drills_environment ON drills (environment, finished_at DESC);
    `,
  },
  {
    version: 8,
    name: 'findings that kept a scan from looking further',
    sql: `
      -- A finding that kept the scan from looking inside something (a config file that does not
      -- parse, a directory on one side only): the earlier findings of its component whose
      -- subject starts with unseen_prefix (and of unseen_aspect, when set) were not seen, so the
      -- scan does not call them resolved.
      ALTER TABLE drift_findings ADD COLUMN unseen_prefix text;
      ALTER TABLE drift_findings ADD COLUMN unseen_aspect text;
    `,
  },
  {
    version: 9,
    name: 'components a scan could not read',
    sql: `
      -- The scans that could not read a component (its one unreadable finding hides all of it)
      -- are passed over when the latest scan of that component is looked for.
      CREATE INDEX drift_findings_unreadable ON drift_findings (scan_id, component)
        WHERE aspect = 'unreadable' AND unseen_prefix = '';
    `,
  },
  {
    version: 10,
    name: 'why an alert was sent',
    sql: `
      -- The decision's reason, so that a scan finished again (a local activity runs at least
      -- once) reports the alert it sent instead of deciding anew against that very alert.
      ALTER TABLE drift_alerts ADD COLUMN reason text;
    `,
  },
  {
    version: 11,
    name: 'the latest completed scan of a pair',
    sql: `
      -- Each scan looks for the latest completed scan of each component (what it found last, the
      -- alert state): newest first, it stops at the first that compared the component. Without
      -- it, every scan the pair ever had is read and sorted (20 ms at 10,000 scans, growing;
      -- npm run bench:store).
      CREATE INDEX drift_scans_latest ON drift_scans (from_env, to_env, finished_at DESC)
        WHERE status = 'completed';
    `,
  },
];
