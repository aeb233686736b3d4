// The monitoring configuration in deploy/monitoring, checked with the real tools: promtool (Debian's
// prometheus package) validates Prometheus's config, the alert rules and runs their unit tests;
// amtool (prometheus-alertmanager) validates Alertmanager's config and shows where alerts go. The
// Grafana dashboards and the rules may only query the metrics rewind exports (src/metrics/catalog.ts),
// the environments' application and host metrics listed here, or series the shipped rules record;
// the dashboards' SQL runs against the project store's own schema (embedded PGlite).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { exportedSeriesNames, METRICS, type MetricDefinition } from '../src/metrics/catalog';
import { openProjectStore, type ProjectStore } from '../src/store/project-store';
import { tempDir } from './support/temp';

const MONITORING = path.join(__dirname, '..', 'deploy', 'monitoring');
const PROMETHEUS_DIR = path.join(MONITORING, 'prometheus');
const RULES_DIR = path.join(PROMETHEUS_DIR, 'rules');
const RULE_TESTS_DIR = path.join(PROMETHEUS_DIR, 'tests');
const ALERTMANAGER_CONFIG = path.join(MONITORING, 'alertmanager', 'alertmanager.yml');
const DASHBOARDS_DIR = path.join(MONITORING, 'grafana', 'dashboards');
const DATASOURCES = path.join(MONITORING, 'grafana', 'provisioning', 'datasources', 'rewind.yml');
const RUNBOOK = 'https://github.com/rewind/rewind#monitoring';

const PROMTOOL = '/usr/bin/promtool';
const AMTOOL = '/usr/bin/amtool';
const PACKAGE_OF: Record<string, string> = { [PROMTOOL]: 'prometheus', [AMTOOL]: 'prometheus-alertmanager' };

/**
 * Metrics of the environments' own services that dashboards and rules may use: the application
 * (job "app") and its hosts (node exporter, job "node"). rewind's own come from its catalog.
 */
const APPLICATION_METRICS = [
  'http_requests_total',
  'http_request_duration_seconds_bucket',
  'node_cpu_seconds_total',
  'node_memory_MemAvailable_bytes',
  'node_memory_MemTotal_bytes',
  'node_filesystem_avail_bytes',
  'node_filesystem_size_bytes',
];

const scratch = tempDir('rewind-monitoring-');

// --- the tools ------------------------------------------------------------------------------

function run(tool: string, args: string[], cwd = MONITORING): { code: number | null; output: string; stdout: string } {
  if (!existsSync(tool)) {
    const pkg = PACKAGE_OF[tool];
    throw new Error(
      `${tool} is missing: install Debian's ${pkg} package (apt-get install --no-install-recommends ${pkg}); .ci/run installs it`,
    );
  }
  const result = spawnSync(tool, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  if (result.error) throw result.error;
  return { code: result.status, output: `${result.stdout}${result.stderr}`, stdout: result.stdout };
}

const ymlIn = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yml'))
    .sort()
    .map((f) => path.join(dir, f));

// --- the rules ------------------------------------------------------------------------------

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; interval?: string; rules: Rule[] }[];
}
interface AlertRule extends Rule {
  alert: string;
  file: string;
}

function readYaml<T>(file: string): T {
  return parse(readFileSync(file, 'utf8')) as T;
}

const ruleFiles = ymlIn(RULES_DIR);
const allRules = ruleFiles.flatMap((file) =>
  readYaml<RuleFile>(file).groups.flatMap((g) => g.rules.map((r) => ({ ...r, file: path.basename(file) }))),
);
const alertRules = allRules.filter((r): r is AlertRule => typeof r.alert === 'string');
const alertNames = [...new Set(alertRules.map((r) => r.alert))].sort();
const recordedNames = [...new Set(allRules.flatMap((r) => (r.record ? [r.record] : [])))];

/** Seconds of a Prometheus duration (1d2h30m, 90s). */
function seconds(duration: string | undefined): number {
  if (!duration) return 0;
  const units: Record<string, number> = { y: 31_536_000, w: 604_800, d: 86_400, h: 3_600, m: 60, s: 1, ms: 0.001 };
  let total = 0;
  for (const m of duration.matchAll(/(\d+)(ms|[ywdhms])/g)) total += Number(m[1]) * units[m[2]!]!;
  return total;
}

// --- metric names in PromQL -----------------------------------------------------------------

/** Words of PromQL that are not metric names: aggregations, modifiers, operators, literals. */
const PROMQL_WORDS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'and',
  'or',
  'unless',
  'atan2',
  'inf',
  'nan',
  'start',
  'end',
]);

/**
 * The metric names a PromQL expression (with Grafana variables) selects. Strings, comments, label
 * matchers (`{…}`), ranges and subqueries (`[…]`), Grafana variables, offsets and the label lists
 * of by/without/on/ignoring/group_left/group_right are removed first; of the words left, functions
 * (a word before `(`), PromQL keywords and number parts (1e3) are not names. A `{__name__="x"}`
 * selector names x; a `__name__` regular expression cannot be checked and is reported as such.
 */
function metricNamesIn(expr: string): string[] {
  const names = new Set<string>();
  let s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, (literal) => literal.replace(/[^"'`]/g, ''));
  s = s.replace(/#[^\n]*/g, ' ');
  // __name__ matchers: read from the original text, as the strings are emptied above.
  for (const m of expr.matchAll(/__name__\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g))
    names.add(m[1] === '=' ? m[2]! : `__name__${m[1]}"${m[2]}"`);
  s = s.replace(/\{[^}]*\}/g, '{}');
  s = s.replace(/\[[^\]]*\]/g, '[]');
  s = s.replace(/\$\{[^}]*\}|\$\w+/g, ' ');
  s = s.replace(/\boffset\s+-?[\w.]+/g, ' ');
  s = s.replace(/@\s*[\d.]+/g, ' ');
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1 ');
  for (const m of s.matchAll(/(?<![\w.:])[a-zA-Z_:][\w:]*/g)) {
    const word = m[0];
    const after = s.slice(m.index + word.length);
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    if (/^\s*\(/.test(after)) continue; // a function call
    names.add(word);
  }
  return [...names].sort();
}

const KNOWN_SERIES = new Set([...exportedSeriesNames(), ...APPLICATION_METRICS, ...recordedNames]);

/** Names in `expr` that no process exports and no shipped rule records. */
function unknownNamesIn(expr: string): string[] {
  return metricNamesIn(expr).filter((name) => !KNOWN_SERIES.has(name));
}

// --- dashboards -----------------------------------------------------------------------------

interface DataSourceRef {
  type?: string;
  uid?: string;
}
interface Target {
  refId: string;
  datasource?: DataSourceRef;
  expr?: string;
  rawSql?: string;
  format?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: DataSourceRef;
  targets?: Target[];
  panels?: Panel[];
  gridPos?: { x: number; y: number; w: number; h: number };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  templating: { list: { name: string; type: string; query?: string; multi?: boolean; includeAll?: boolean }[] };
  panels: Panel[];
}

const dashboardFiles = readdirSync(DASHBOARDS_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

function readDashboard(file: string): Dashboard {
  return JSON.parse(readFileSync(file, 'utf8')) as Dashboard;
}

function panelsOf(dashboard: Dashboard): Panel[] {
  const out: Panel[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      out.push(p);
      if (p.panels) walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

interface QueryOf {
  panel: Panel;
  target: Target;
  datasource: DataSourceRef;
}
function queriesOf(dashboard: Dashboard): QueryOf[] {
  return panelsOf(dashboard).flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ panel, target, datasource: target.datasource ?? panel.datasource ?? {} })),
  );
}

interface DataSourcesFile {
  datasources: { name: string; uid: string; type: string; secureJsonData?: Record<string, string> }[];
}
const provisioned = readYaml<DataSourcesFile>(DATASOURCES).datasources;
const PROMETHEUS_UID = provisioned.find((d) => d.type === 'prometheus')!.uid;
const POSTGRES_UID = provisioned.find((d) => d.type === 'grafana-postgresql-datasource')!.uid;

/** Problems of a dashboard file: unknown metric names, queries without a provisioned source. */
function dashboardProblems(file: string): string[] {
  const dashboard = readDashboard(file);
  const problems: string[] = [];
  for (const { panel, target, datasource } of queriesOf(dashboard)) {
    const where = `${path.basename(file)}: panel "${panel.title}" query ${target.refId}`;
    if (datasource.uid === PROMETHEUS_UID) {
      if (!target.expr) problems.push(`${where}: no expr`);
      else for (const name of unknownNamesIn(target.expr)) problems.push(`${where}: unknown metric ${name}`);
    } else if (datasource.uid === POSTGRES_UID) {
      if (!target.rawSql) problems.push(`${where}: no rawSql`);
    } else {
      problems.push(`${where}: data source ${JSON.stringify(datasource)} is not provisioned`);
    }
  }
  return problems;
}

/** A Grafana SQL query as Grafana would send it: macros and $environment (all values) expanded. */
function interpolateSql(query: string, from: Date, to: Date): string {
  const sql = query
    .replace(/\$__timeFilter\(([^)]+)\)/g, (_m, column: string) => {
      return `${column.trim()} BETWEEN '${from.toISOString()}' AND '${to.toISOString()}'`;
    })
    .replace(/\$environment\b/g, "'production','regression'");
  const left = /\$(__\w+|\{?\w+)/.exec(sql);
  if (left) throw new Error(`the test does not expand ${left[0]} in: ${query}`);
  return sql;
}

// ==============================================================================================

describe('Prometheus', () => {
  test('promtool check config accepts prometheus.yml and the rule files it names', () => {
    const { code, output } = run(PROMTOOL, ['check', 'config', 'prometheus/prometheus.yml']);
    expect(output).toContain('SUCCESS');
    expect(code).toBe(0);
  });

  test('promtool check rules (with its lint) accepts every rule file', () => {
    const { code, output } = run(PROMTOOL, ['check', 'rules', ...ruleFiles]);
    expect(output).not.toContain('FAILED');
    expect(code).toBe(0);
  });

  test('promtool test rules: every unit test passes', () => {
    const tests = ymlIn(RULE_TESTS_DIR);
    const { code, output } = run(PROMTOOL, ['test', 'rules', ...tests]);
    expect(output.match(/SUCCESS/g)).toHaveLength(tests.length);
    expect(output).not.toContain('FAILED');
    expect(code).toBe(0);
  });

  test('promtool check rules rejects a broken rule file, and test rules a wrong expectation', () => {
    const broken = path.join(scratch, 'broken.rules.yml');
    writeFileSync(
      broken,
      [
        'groups:',
        '  - name: broken',
        '    rules:',
        '      - alert: Broken',
        '        expr: sum(rate(http_requests_total[5m]) > 0',
        '        for: 5m',
      ].join('\n'),
    );
    const rules = run(PROMTOOL, ['check', 'rules', broken]);
    expect(rules.code).not.toBe(0);
    expect(rules.output).toContain('"Broken": could not parse expression');

    // A unit test expecting an alert that the data does not raise fails.
    mkdirSync(path.join(scratch, 'rules'), { recursive: true });
    copyFileSync(path.join(RULES_DIR, 'rewind.rules.yml'), path.join(scratch, 'rules', 'rewind.rules.yml'));
    const wrong = path.join(scratch, 'wrong.test.yml');
    writeFileSync(
      wrong,
      [
        'rule_files: [rules/rewind.rules.yml]',
        'evaluation_interval: 1m',
        'tests:',
        '  - interval: 1m',
        '    input_series:',
        `      - series: 'up{job="rewind-worker", instance="127.0.0.1:9471"}'`,
        '        values: "1x10"',
        '    alert_rule_test:',
        '      - eval_time: 5m',
        '        alertname: RewindProcessDown',
        '        exp_alerts: [{ exp_labels: { severity: critical, team: platform, job: rewind-worker } }]',
      ].join('\n'),
    );
    const tested = run(PROMTOOL, ['test', 'rules', wrong], scratch);
    expect(tested.code).not.toBe(0);
    expect(tested.output).toContain('FAILED');
  });

  interface PrometheusConfig {
    rule_files: string[];
    alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
    scrape_configs: {
      job_name: string;
      scrape_interval?: string;
      static_configs: { targets: string[]; labels?: Record<string, string> }[];
      relabel_configs?: { target_label?: string; replacement?: string }[];
    }[];
  }
  const config = readYaml<PrometheusConfig>(path.join(PROMETHEUS_DIR, 'prometheus.yml'));

  test('prometheus.yml: every rule file, by relative path; alerts to Alertmanager on 127.0.0.1:9093', () => {
    expect(config.rule_files.every((f) => !path.isAbsolute(f))).toBe(true);
    expect(config.rule_files.map((f) => path.join(PROMETHEUS_DIR, f)).sort()).toEqual(ruleFiles);
    expect(config.alerting.alertmanagers.flatMap((a) => a.static_configs.flatMap((s) => s.targets))).toEqual([
      '127.0.0.1:9093',
    ]);
  });

  test('prometheus.yml: the job labels the rules and dashboards select', () => {
    const jobs = config.scrape_configs.map(
      (c) => c.relabel_configs?.find((r) => r.target_label === 'job')?.replacement ?? c.job_name,
    );
    expect([...new Set(jobs)].sort()).toEqual(['app', 'node', 'rewind-agent', 'rewind-api', 'rewind-worker']);
  });

  test('prometheus.yml: rewind scraped where it listens, each environment at its interval (10 s, 30 s)', () => {
    const targetsOf = (job: string) =>
      config.scrape_configs.find((c) => c.job_name === job)?.static_configs.flatMap((s) => s.targets);
    expect(targetsOf('rewind-api')).toEqual(['127.0.0.1:8787']);
    expect(targetsOf('rewind-worker')).toEqual(['127.0.0.1:9471']);
    expect(targetsOf('rewind-agent-production')).toEqual(['127.0.0.1:9472']);
    expect(targetsOf('rewind-agent-regression')).toEqual(['127.0.0.1:9473']);

    const intervals: Record<string, Set<string>> = {};
    for (const job of config.scrape_configs) {
      for (const sc of job.static_configs) {
        const environment = sc.labels?.environment;
        if (environment) (intervals[environment] ??= new Set()).add(job.scrape_interval ?? 'global');
      }
    }
    expect(intervals).toEqual({ production: new Set(['10s']), regression: new Set(['30s']) });
  });
});

describe('alert rules', () => {
  test('the alerts on rewind itself exist', () => {
    expect(alertNames).toEqual(
      expect.arrayContaining([
        'RewindProcessDown',
        'RewindDriftScanStale',
        'RewindRepositoryCheckStale',
        'RewindRollbackAwaitingApproval',
        'RewindCriticalDrift',
        'RewindRollbacksFailing',
      ]),
    );
  });

  test.each(alertRules.map((r) => [`${r.alert} ${JSON.stringify(r.labels)}`, r] as const))(
    '%s: severity, team, summary, description and runbook',
    (_name, rule) => {
      expect(['critical', 'warning', 'info']).toContain(rule.labels?.severity);
      expect(['app', 'platform']).toContain(rule.labels?.team);
      expect(rule.annotations?.summary).toEqual(expect.any(String));
      expect(rule.annotations?.description).toEqual(expect.any(String));
      expect(rule.annotations?.runbook).toBe(RUNBOOK);
      if (rule.file === 'applications.rules.yml') {
        // The environments' alerts name their environment, and select only it.
        expect(['production', 'regression']).toContain(rule.labels?.environment);
        expect(rule.expr).toContain(`environment="${rule.labels?.environment}"`);
      }
    },
  );

  test('production is stricter: an alert of both environments fires sooner in production', () => {
    const forOf = (alert: string, severity: string, environment: string) =>
      alertRules.find(
        (r) => r.alert === alert && r.labels?.severity === severity && r.labels.environment === environment,
      )?.for;
    let compared = 0;
    const looser: string[] = [];
    for (const rule of alertRules.filter((r) => r.labels?.environment === 'regression')) {
      const production = forOf(rule.alert, rule.labels!.severity!, 'production');
      if (production === undefined) continue;
      compared += 1;
      if (!(seconds(production) < seconds(rule.for)))
        looser.push(
          `${rule.alert} (${rule.labels!.severity}): production for ${production}, regression for ${rule.for}`,
        );
    }
    expect(looser).toEqual([]);
    expect(compared).toBeGreaterThan(5);
  });

  test('every rule queries only metrics rewind exports, the application metrics, or recorded series', () => {
    const problems = allRules.flatMap((r) =>
      unknownNamesIn(r.expr).map((name) => `${r.file}: ${r.alert ?? r.record}: ${name}`),
    );
    expect(problems).toEqual([]);
  });

  interface RuleTestFile {
    rule_files: string[];
    tests: {
      alert_rule_test?: {
        eval_time: string;
        alertname: string;
        exp_alerts?: { exp_labels?: Record<string, string> }[];
      }[];
    }[];
  }
  const testFiles = ymlIn(RULE_TESTS_DIR).map((file) => ({ file, ...readYaml<RuleTestFile>(file) }));
  const cases = testFiles.flatMap((t) => t.tests.flatMap((g) => g.alert_rule_test ?? []));

  test('the unit tests cover every rule file', () => {
    const covered = new Set(testFiles.flatMap((t) => t.rule_files.map((f) => path.resolve(path.dirname(t.file), f))));
    expect([...covered].sort()).toEqual(ruleFiles);
  });

  test.each(alertNames)('%s has a unit test where it fires and one where it does not', (alertname) => {
    const mine = cases.filter((c) => c.alertname === alertname);
    expect(mine.some((c) => (c.exp_alerts ?? []).length > 0)).toBe(true);
    expect(mine.some((c) => (c.exp_alerts ?? []).length === 0)).toBe(true);
  });

  test('every alert rule (each environment and severity of a name) fires in some unit test', () => {
    const fired = cases.flatMap((c) => (c.exp_alerts ?? []).map((a) => ({ alertname: c.alertname, ...a.exp_labels })));
    const untested = alertRules.filter(
      (rule) =>
        !fired.some(
          (labels) =>
            labels.alertname === rule.alert &&
            Object.entries(rule.labels ?? {}).every(([k, v]) => (labels as Record<string, string>)[k] === v),
        ),
    );
    expect(untested.map((r) => `${r.alert} ${JSON.stringify(r.labels)}`)).toEqual([]);
  });
});

describe('Alertmanager', () => {
  test('amtool check-config accepts alertmanager.yml and its templates', () => {
    const { code, output } = run(AMTOOL, ['check-config', ALERTMANAGER_CONFIG]);
    expect(output).toContain('SUCCESS');
    expect(output).not.toContain('FAILED');
    expect(code).toBe(0);
  });

  test('amtool check-config rejects a route to a receiver that does not exist', () => {
    const broken = path.join(scratch, 'alertmanager-broken.yml');
    writeFileSync(
      broken,
      readFileSync(ALERTMANAGER_CONFIG, 'utf8')
        .replace('receiver: slack-info', 'receiver: slack-nowhere')
        .replace(/^templates:\n(?: {2}- .*\n)+/m, ''),
    );
    const { code, output } = run(AMTOOL, ['check-config', broken]);
    expect(output).toContain('slack-nowhere');
    expect(code).not.toBe(0);
  });

  // Where alerts go (amtool walks the routing tree; time intervals are checked below).
  const ROUTES: [string, Record<string, string>, string][] = [
    [
      'production critical (application) → rewind and PagerDuty',
      { alertname: 'AppHighErrorRatio', environment: 'production', severity: 'critical', team: 'app' },
      'rewind,pagerduty-app',
    ],
    [
      'production critical (platform) → PagerDuty',
      { alertname: 'NodeDown', environment: 'production', severity: 'critical', team: 'platform' },
      'pagerduty-platform',
    ],
    [
      'production warning → the team channel (and on call out of hours)',
      { alertname: 'AppHighLatencyP95', environment: 'production', severity: 'warning', team: 'app' },
      'slack-oncall,slack-app',
    ],
    [
      'production warning (platform) → the platform channel (and on call out of hours)',
      { alertname: 'NodeHighMemory', environment: 'production', severity: 'warning', team: 'platform' },
      'slack-oncall,slack-platform',
    ],
    [
      'regression warning → Slack',
      { alertname: 'AppHighErrorRatio', environment: 'regression', severity: 'warning', team: 'app' },
      'slack-regression',
    ],
    [
      'regression critical (application) → rewind and Slack, no paging',
      { alertname: 'AppHighErrorRatio', environment: 'regression', severity: 'critical', team: 'app' },
      'rewind,slack-regression',
    ],
    [
      'information → the info channel',
      { alertname: 'AppTrafficAnomaly', environment: 'regression', severity: 'info', team: 'app' },
      'slack-info',
    ],
    [
      'rewind process down (no environment) → PagerDuty',
      { alertname: 'RewindProcessDown', job: 'rewind-worker', severity: 'critical', team: 'platform' },
      'pagerduty-platform',
    ],
    [
      'critical drift (a warning, no environment) → the platform channel',
      { alertname: 'RewindCriticalDrift', from: 'production', to: 'regression', severity: 'warning', team: 'platform' },
      'slack-platform',
    ],
  ];
  test.each(ROUTES)('routes: %s', (_name, labels, receivers) => {
    const args = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
    const { code, stdout } = run(AMTOOL, [
      'config',
      'routes',
      'test',
      `--config.file=${ALERTMANAGER_CONFIG}`,
      `--verify.receivers=${receivers}`,
      ...args,
    ]);
    expect(stdout.trim()).toBe(receivers);
    expect(code).toBe(0);
  });

  interface Route {
    receiver?: string;
    matchers?: string[];
    active_time_intervals?: string[];
    routes?: Route[];
  }
  interface AlertmanagerConfig {
    route: Route;
    time_intervals: {
      name: string;
      time_intervals: { weekdays?: string[]; times?: { start_time: string; end_time: string }[]; location?: string }[];
    }[];
    inhibit_rules: { source_matchers: string[]; target_matchers: string[]; equal: string[] }[];
    receivers: { name: string; webhook_configs?: Record<string, unknown>[] }[];
  }
  const am = readYaml<AlertmanagerConfig>(ALERTMANAGER_CONFIG);

  test('business hours are Mon–Fri 09:00–18:00 in Asia/Tokyo; every regression route is active only then', () => {
    expect(am.time_intervals.find((t) => t.name === 'business-hours')?.time_intervals).toEqual([
      { weekdays: ['monday:friday'], times: [{ start_time: '09:00', end_time: '18:00' }], location: 'Asia/Tokyo' },
    ]);
    expect(am.time_intervals.map((t) => t.name)).toContain('on-call-hours');
    const regression: Route[] = [];
    const walk = (route: Route, inRegression: boolean) => {
      const here = inRegression || (route.matchers ?? []).includes('environment="regression"');
      if (here) regression.push(route);
      for (const child of route.routes ?? []) walk(child, here);
    };
    walk(am.route, false);
    expect(regression.length).toBeGreaterThanOrEqual(2);
    for (const route of regression) expect(route.active_time_intervals).toEqual(['business-hours']);
  });

  test('inhibition: critical mutes warning of the same alert and environment; a worker down mutes its stale drift-scan alert', () => {
    expect(am.inhibit_rules).toEqual(
      expect.arrayContaining([
        {
          source_matchers: ['severity="critical"'],
          target_matchers: ['severity=~"warning|info"'],
          equal: ['alertname', 'environment'],
        },
        expect.objectContaining({
          source_matchers: ['alertname="RewindProcessDown"', 'job="rewind-worker"'],
          target_matchers: ['alertname="RewindDriftScanStale"'],
        }),
      ]),
    );
  });

  test("rewind's webhook: its URL, firing notifications only, a bearer token from a file", () => {
    expect(am.receivers.find((r) => r.name === 'rewind')?.webhook_configs).toEqual([
      {
        url: 'http://127.0.0.1:8787/v1/webhooks/alertmanager',
        send_resolved: false,
        max_alerts: 0,
        http_config: {
          authorization: { type: 'Bearer', credentials_file: '/etc/alertmanager/secrets/rewind-webhook-token' },
        },
      },
    ]);
  });

  test('secrets only from files: no inline secret anywhere in the config', () => {
    const inline = ['api_url', 'routing_key', 'service_key', 'credentials', 'password', 'bearer_token', 'api_key'];
    const found: string[] = [];
    const files: string[] = [];
    const walk = (value: unknown, at: string) => {
      if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${at}[${i}]`));
      else if (value && typeof value === 'object')
        for (const [k, v] of Object.entries(value)) {
          if (inline.includes(k)) found.push(`${at}.${k}`);
          if (k.endsWith('_file') && k !== 'credentials_file' && k !== 'api_url_file' && k !== 'routing_key_file')
            found.push(`${at}.${k} (unexpected)`);
          if (k.endsWith('_file')) files.push(k);
          walk(v, `${at}.${k}`);
        }
    };
    walk(am, 'config');
    expect(found).toEqual([]);
    expect(new Set(files)).toEqual(new Set(['credentials_file', 'api_url_file', 'routing_key_file']));
  });
});

describe('Grafana', () => {
  test('the metric-name extractor finds names, and only names', () => {
    expect(metricNamesIn('rewind_rollbacks_totl{environment="production"}')).toEqual(['rewind_rollbacks_totl']);
    expect(unknownNamesIn('sum(increase(rewind_rollbacks_totl{environment=~"$environment"}[$__range]))')).toEqual([
      'rewind_rollbacks_totl',
    ]);
    expect(unknownNamesIn('sum(increase(rewind_rollbacks_total{environment=~"$environment"}[$__range]))')).toEqual([]);
    expect(
      metricNamesIn(
        'histogram_quantile(0.95, sum by (le, tool) (rate(rewind_tool_duration_seconds_bucket{job="rewind-agent", outcome!="error"}[$__rate_interval])))',
      ),
    ).toEqual(['rewind_tool_duration_seconds_bucket']);
    expect(
      metricNamesIn(
        'time() - max by (from, to) (rewind_drift_scan_last_success_timestamp_seconds{from=~"$environment"} or rewind_x{to="a"}) > 2 * 3600',
      ),
    ).toEqual(['rewind_drift_scan_last_success_timestamp_seconds', 'rewind_x']);
    expect(
      metricNamesIn('a / on (environment) group_left (team) b offset 1h unless ignoring (x) c @ 1700000000'),
    ).toEqual(['a', 'b', 'c']);
    expect(metricNamesIn('sum(rate(x_total[5m])) by (job) > bool 1e3 and absent(up{job="node"})')).toEqual([
      'up',
      'x_total',
    ]);
    expect(metricNamesIn('count_values("version", build_info) # a comment naming not_a_metric')).toEqual([
      'build_info',
    ]);
    expect(
      metricNamesIn('label_replace(up, "dst", "$1", "instance", "(.*):.*") * on() group_right() vector(1)'),
    ).toEqual(['up']);
    expect(metricNamesIn('avg_over_time(rewind:drift_scan_age:seconds[1h:5m]) > Inf')).toEqual([
      'rewind:drift_scan_age:seconds',
    ]);
    expect(metricNamesIn('{__name__="rewind_snapshots", tier="daily"} + {__name__=~"rewind_.*"}')).toEqual([
      '__name__=~"rewind_.*"',
      'rewind_snapshots',
    ]);
  });

  test('the dashboards: rollbacks, drift, and production vs regression', () => {
    const titles = dashboardFiles.map((f) => readDashboard(path.join(DASHBOARDS_DIR, f)).uid);
    expect(titles.sort()).toEqual(['rewind-drift', 'rewind-environments', 'rewind-rollbacks']);
  });

  test.each(dashboardFiles)('%s: uid, title, schema, the environment variable, panel ids and layout', (file) => {
    const dashboard = readDashboard(path.join(DASHBOARDS_DIR, file));
    expect(dashboard.uid).toMatch(/^rewind-[a-z-]+$/);
    expect(dashboard.title).toMatch(/^rewind \/ /);
    expect(dashboard.schemaVersion).toBe(39);
    expect(dashboard.templating.list.find((v) => v.name === 'environment')).toMatchObject({
      type: 'custom',
      query: 'production,regression',
      multi: true,
      includeAll: true,
    });
    const ids = panelsOf(dashboard).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    // Every panel placed, none over another.
    const boxes = panelsOf(dashboard).map((p) => ({ title: p.title, ...p.gridPos! }));
    const overlaps = boxes.flatMap((a, i) =>
      boxes
        .slice(i + 1)
        .filter((b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h)
        .map((b) => `${a.title} / ${b.title}`),
    );
    expect(overlaps).toEqual([]);
  });

  test.each(dashboardFiles)('%s: every query uses a provisioned data source and known metrics', (file) => {
    expect(queriesOf(readDashboard(path.join(DASHBOARDS_DIR, file))).length).toBeGreaterThan(5);
    expect(dashboardProblems(path.join(DASHBOARDS_DIR, file))).toEqual([]);
  });

  test('every metric rewind exports is on a dashboard or in an alert rule', () => {
    const used = new Set([
      ...allRules.flatMap((r) => metricNamesIn(r.expr)),
      ...dashboardFiles.flatMap((f) =>
        queriesOf(readDashboard(path.join(DASHBOARDS_DIR, f))).flatMap((q) => metricNamesIn(q.target.expr ?? '')),
      ),
    ]);
    const series = (m: MetricDefinition) =>
      m.kind === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name];
    const unused = (Object.values(METRICS) as MetricDefinition[])
      .filter((m) => !series(m).some((name) => used.has(name)))
      .map((m) => m.name);
    expect(unused).toEqual([]);
  });

  test('a dashboard with a misspelled metric is reported', () => {
    const copy = path.join(scratch, 'misspelled.json');
    writeFileSync(
      copy,
      readFileSync(path.join(DASHBOARDS_DIR, 'rewind-rollbacks.json'), 'utf8').replaceAll(
        'rewind_rollbacks_total{',
        'rewind_rollbacks_totl{',
      ),
    );
    const problems = dashboardProblems(copy);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.every((p) => p.endsWith('unknown metric rewind_rollbacks_totl'))).toBe(true);
  });

  test('production vs regression: the same queries for each environment, side by side', () => {
    const dashboard = readDashboard(path.join(DASHBOARDS_DIR, 'rewind-environments.json'));
    const repeated = panelsOf(dashboard).filter((p) => (p as Panel & { repeat?: string }).repeat === 'environment');
    expect(repeated.length).toBeGreaterThanOrEqual(6);
    for (const panel of repeated) {
      // Full width, which Grafana splits into one column per environment.
      expect(panel).toMatchObject({ repeatDirection: 'h', maxPerRow: 2, gridPos: { x: 0, w: 24 } });
      for (const t of panel.targets ?? []) expect(t.expr).toContain('"$environment"');
    }
  });

  test('the data sources: Prometheus, and the project store with its password from the environment', () => {
    expect(provisioned.map((d) => [d.type, d.uid])).toEqual([
      ['prometheus', 'rewind-prometheus'],
      ['grafana-postgresql-datasource', 'rewind-store'],
    ]);
    expect(provisioned[1]!.secureJsonData?.password).toMatch(/^\$\{?[A-Z_]+\}?$/);
  });

  describe('the SQL of the drift panels, on the project store schema', () => {
    let store: ProjectStore;
    const range = { from: new Date(Date.now() - 7 * 86_400_000), to: new Date(Date.now() + 3_600_000) };
    const sqlQueries = dashboardFiles.flatMap((f) =>
      queriesOf(readDashboard(path.join(DASHBOARDS_DIR, f)))
        .filter((q) => q.datasource.uid === POSTGRES_UID)
        .map((q) => [q.panel.title, q.target.rawSql!, q.target.format] as const),
    );

    beforeAll(async () => {
      store = await openProjectStore({ dataDir: scratch });
      // Three scans of production → regression: two days ago (a critical finding, a warning, an
      // allowed one), an hour ago (the warning persists), and a failed one half an hour ago.
      await store.query(`
        INSERT INTO drift_scans (id, from_env, to_env, workflow_id, trigger, started_at, finished_at, status, error, summary)
        VALUES
          ('scan-1', 'production', 'regression', 'drift-1', 'schedule', now() - interval '2 days',
           now() - interval '2 days' + interval '90 seconds', 'completed', NULL,
           '{"critical": 1, "warning": 1, "info": 0, "allowed": 1}'),
          ('scan-2', 'production', 'regression', 'drift-2', 'schedule', now() - interval '1 hour',
           now() - interval '1 hour' + interval '60 seconds', 'completed', NULL,
           '{"critical": 0, "warning": 1, "info": 0, "allowed": 0}'),
          ('scan-3', 'production', 'regression', 'drift-3', 'deploy', now() - interval '30 minutes',
           now() - interval '29 minutes', 'failed', 'repository locked', NULL);
        INSERT INTO drift_findings (scan_id, key, component, aspect, subject, change, detail, severity, allowed, state)
        VALUES
          ('scan-1', 'config/content/app.yaml', 'config', 'content', 'app.yaml', 'changed', 'timeout: 30 → 10', 'critical', false, 'new'),
          ('scan-1', 'models/content/scaler.pkl', 'models', 'content', 'scaler.pkl', 'changed', 'sha256 differs', 'warning', false, 'new'),
          ('scan-1', 'config/content/log.ini', 'config', 'content', 'log.ini', 'changed', 'level', 'info', true, 'new'),
          ('scan-2', 'models/content/scaler.pkl', 'models', 'content', 'scaler.pkl', 'changed', 'sha256 differs', 'warning', false, 'persisting');
      `);
    });
    afterAll(async () => {
      await store?.close();
    });

    test('there are SQL panels: scans, findings, history', () => {
      expect(sqlQueries.map(([title]) => title)).toEqual([
        'Findings per completed scan (project store)',
        'Drift scans',
        'Findings of the latest completed scan of each pair',
        'Most persistent differences (time range)',
      ]);
    });

    test('findings per completed scan: time, metric, value (allowed ones not counted)', async () => {
      const [, query, format] = sqlQueries.find(([t]) => t.startsWith('Findings per completed scan'))!;
      expect(format).toBe('time_series');
      const rows = await store.query<{ time: Date; metric: string; value: string | number }>(
        interpolateSql(query, range.from, range.to),
      );
      expect(rows.map((r) => [r.metric, Number(r.value)])).toEqual([
        ['critical', 1],
        ['warning', 1],
        ['warning', 1],
      ]);
      expect(rows.every((r) => r.time instanceof Date)).toBe(true);
    });

    test('drift scans: newest first, with findings per severity from the summary', async () => {
      const [, query] = sqlQueries.find(([t]) => t === 'Drift scans')!;
      const rows = await store.query<Record<string, unknown>>(interpolateSql(query, range.from, range.to));
      expect(rows.map((r) => [r.scan, r.status, r.critical, r.warning, r.allowed, r.error])).toEqual([
        ['scan-3', 'failed', 0, 0, 0, 'repository locked'],
        ['scan-2', 'completed', 0, 1, 0, null],
        ['scan-1', 'completed', 1, 1, 1, null],
      ]);
      expect(Object.keys(rows[0]!)).toEqual([
        'started',
        'took',
        'pair',
        'trigger',
        'status',
        'critical',
        'warning',
        'info',
        'allowed',
        'error',
        'scan',
      ]);
      expect(rows[0]!.pair).toBe('production → regression');
      expect(Number(rows[2]!.took)).toBe(90);
    });

    test('latest findings: only those of the newest completed scan', async () => {
      const [, query] = sqlQueries.find(([t]) => t.startsWith('Findings of the latest'))!;
      const rows = await store.query<Record<string, unknown>>(interpolateSql(query, range.from, range.to));
      expect(rows.map((r) => [r.component, r.subject, r.severity, r.state])).toEqual([
        ['models', 'scaler.pkl', 'warning', 'persisting'],
      ]);
    });

    test('most persistent differences: counted across scans', async () => {
      const [, query] = sqlQueries.find(([t]) => t.startsWith('Most persistent'))!;
      const rows = await store.query<Record<string, unknown>>(interpolateSql(query, range.from, range.to));
      expect(rows.map((r) => [r.subject, Number(r.scans), r['ever critical']])).toEqual([
        ['scaler.pkl', 2, false],
        ['app.yaml', 1, true],
      ]);
    });

    test('a query naming a column the schema lacks fails', async () => {
      const [, query] = sqlQueries.find(([t]) => t === 'Drift scans')!;
      const wrong = interpolateSql(
        query.replace('s.finished_at - s.started_at', 's.ended_at - s.started_at'),
        range.from,
        range.to,
      );
      await expect(store.query(wrong)).rejects.toThrow(/ended_at/);
    });
  });
});
