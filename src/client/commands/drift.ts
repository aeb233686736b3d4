// `rewind drift scan|list|report|rules test`: compare two environments and read what scans found.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { DRIFT_TRIGGERS, type DriftScanRequest, type DriftScanSummary } from '../../domain/drift-scan';
import { terminalSafe } from '../../domain/display-text';
import { unknownEnvironment } from '../../drift/pairs';
import { driftPairs } from '../../drift/rules';
import type { StoreQueries } from '../../store/project-store';
import { RequestError, type RewindClient } from '../client';
import type { RewindApiClient } from '../api-client';
import { asRequestError } from '../api-door';
import { action, apiOf, currentUser, list, manifestOf, print, rewindClient, withStore } from './command-context';
import { warnWithoutAgent } from './rollback';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError('must be a number from 1 to 1000');
  return n;
}

function summaryLine(s: DriftScanSummary): string {
  const { critical, warning, info } = s.counts;
  const head = `drift scan ${s.scanId} (${s.from} → ${s.to}): ${s.status}`;
  if (s.status === 'failed') return `${head}: ${terminalSafe(s.error ?? 'unknown error')}`;
  const alert = s.alert.sent === 'none' ? `no alert (${s.alert.reason})` : `${s.alert.sent} sent (${s.alert.reason})`;
  return [
    head,
    `  ${critical} critical, ${warning} warning, ${info} info; ${s.allowed} allowed; ${s.new} new, ${s.resolved} resolved`,
    ...(s.unreadable?.length
      ? [
          `  not compared: ${s.unreadable.join(', ')} (could not be read; each is an unreadable finding, its earlier findings stand)`,
        ]
      : []),
    `  ${alert}`,
    `  details: rewind drift report ${s.scanId}`,
  ].join('\n');
}

/** Exit codes of `drift scan --wait`: 1 failed or a component not compared, 3 critical drift. */
function scanExitCode(s: DriftScanSummary): number {
  if (s.status === 'failed') return 1;
  if (s.counts.critical > 0) return 3;
  return s.unreadable?.length ? 1 : 0;
}

/** How long a scan the API started may take to begin (its row in the project store) before --wait gives up. */
const API_SCAN_BEGIN_MS = 60_000;

/**
 * `drift scan` through the HTTP API (`--api`, REWIND_API_URL): the actor is the token's
 * principal, and `--wait` follows the scan's report until it ends (the API serves no progress).
 */
async function scanThroughApi(
  api: RewindApiClient,
  opts: { from?: string; to?: string; components?: string[]; trigger: string; wait?: boolean },
  cmd: Command,
): Promise<void> {
  const started = await api
    .startDriftScan({
      ...(opts.from ? { from: opts.from } : {}),
      ...(opts.to ? { to: opts.to } : {}),
      ...(opts.components ? { components: opts.components } : {}),
      trigger: opts.trigger as DriftScanRequest['trigger'],
    })
    .catch((err: unknown) => {
      throw asRequestError(err);
    });
  const how = `${started.attached ? 'attached to the running scan' : 'started scan'} ${started.scanId ?? started.workflowId} (${started.from} → ${started.to}) through the API`;
  if (!opts.wait) {
    print(cmd, started, () => `${how}; when it ends: rewind drift report ${started.scanId ?? '…'}`);
    return;
  }
  if (!started.scanId)
    throw new RequestError(
      `${how}, but no worker has named its scan yet (is \`rewind worker\` running?); rewind drift list shows it once it runs`,
    );
  const quiet = cmd.optsWithGlobals<{ json?: boolean }>().json;
  if (!quiet) process.stderr.write(`${how} …\n`);
  const begun = Date.now();
  for (;;) {
    const report = await api.driftReport(started.scanId).catch((err: unknown) => {
      // Not begun yet: its row appears when the control worker takes it.
      if ((err as { status?: number }).status === 404 && Date.now() - begun < API_SCAN_BEGIN_MS) return undefined;
      throw asRequestError(err);
    });
    if (report && report.scan.status !== 'running') {
      const { scan, findings, alert } = report;
      const unreadable = findings
        .filter((f) => f.aspect === 'unreadable' && f.subject === f.component)
        .map((f) => f.component);
      const summary: DriftScanSummary = {
        scanId: scan.id,
        from: scan.from,
        to: scan.to,
        status: scan.status === 'failed' ? 'failed' : 'completed',
        counts: scan.summary?.counts ?? { critical: 0, warning: 0, info: 0 },
        allowed: scan.summary?.allowed ?? 0,
        new: scan.summary?.new ?? 0,
        resolved: scan.summary?.resolved ?? 0,
        alert: alert ?? { sent: 'none', reason: 'none was sent for this scan' },
        ...(scan.error ? { error: scan.error } : {}),
        ...(unreadable.length ? { unreadable } : {}),
      };
      print(cmd, { ...started, ...summary }, () => summaryLine(summary));
      process.exitCode = scanExitCode(summary);
      return;
    }
    await sleep(1000);
  }
}

/**
 * Waits up to 3 s for the control worker to take a scan it was just asked for. False when no
 * worker did; throws the scan's failure (a refusal) when it failed at once.
 */
async function takenByWorkers(client: RewindClient, workflowId: string): Promise<boolean> {
  const handle = client.client.workflow.getHandle(workflowId);
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    const described = await handle.describe().catch(() => undefined);
    if (described && described.status.name !== 'RUNNING') {
      await client.driftScanResult(workflowId); // throws the failure, if it failed
      return true;
    }
    const status = await client.client.connection
      .withDeadline(Math.min(deadline, Date.now() + 1000), () => client.driftScanStatus(workflowId))
      .catch(() => undefined);
    if (status && status.state !== 'starting' && status.state !== 'failed') return true;
    await sleep(100);
  }
  return false;
}

/** Seconds between looks at a running scan while --wait waits for it. */
const PROGRESS_EVERY_MS = 5_000;
/** After this long, the progress line says what can keep a scan waiting. */
const SLOW_AFTER_MS = 30_000;

/**
 * Waits for a scan, printing to stderr which components are still being compared whenever that
 * changes, and once, after a while, that a scan waits for every agent to answer.
 */
async function withProgress(
  client: RewindClient,
  started: { workflowId: string; from: string; to: string },
  result: Promise<DriftScanSummary>,
): Promise<DriftScanSummary> {
  const since = Date.now();
  let last = '';
  let hinted = false;
  let done = false;
  void result.finally(() => (done = true)).catch(() => undefined);
  while (!done) {
    const tick = new Promise((resolve) => setTimeout(resolve, PROGRESS_EVERY_MS).unref());
    await Promise.race([result.catch(() => undefined), tick]);
    if (done) break;
    const status = await client.driftScanStatus(started.workflowId).catch(() => undefined);
    if (!status) continue;
    const open = Object.entries(status.components)
      .filter(([, c]) => c.state === 'comparing')
      .map(([name, c]) => `${name} (${c.rounds} rounds)`);
    const line = `scan ${status.scanId}: ${status.state}${open.length ? `; comparing ${open.join(', ')}` : ''}`;
    if (line !== last) process.stderr.write(`${terminalSafe(line)}\n`);
    last = line;
    if (!hinted && Date.now() - since > SLOW_AFTER_MS) {
      hinted = true;
      const missing = (
        await Promise.all([...new Set([started.from, started.to])].map((e) => client.agentsMissing(e)))
      ).flat();
      const waited = `still waiting after ${Math.round((Date.now() - since) / 1000)} s: a scan waits for both agents to answer; `;
      process.stderr.write(
        missing.length > 0
          ? `${waited}no agent polls for ${missing.map((m) => `\`${m}\``).join(', ')}: start ${missing.length > 1 ? 'them' : 'it'}\n`
          : `${waited}check that \`rewind agent --env ${started.from}\` and \`rewind agent --env ${started.to}\` run (each polls its own task queue; the Temporal Web UI lists a queue's pollers)\n`,
      );
    }
  }
  return result;
}

/** Why no single scan is `id`: none matches, or several do (named, newest first). */
async function noScan(store: StoreQueries, id: string): Promise<RequestError> {
  const { scanIdsLike } = await import('../../drift/report');
  const like = await scanIdsLike(store, id);
  const shown = terminalSafe(id);
  if (like.length > 1)
    return new RequestError(
      `"${shown}" matches ${like.length === 5 ? 'at least 5' : like.length} scans (${like.join(', ')}): give more of the id`,
    );
  return new RequestError(`no drift scan "${shown}" (rewind drift list shows them; \`latest\` is the newest)`);
}

/** An environment a filter names must be one of the manifest's, as `drift scan` checks. */
function checkEnvironment(cmd: Command, env: string | undefined, flag: string): void {
  const problem = env === undefined ? undefined : unknownEnvironment(manifestOf(cmd).manifest, env);
  if (problem) throw new RequestError(`${flag}: ${terminalSafe(problem)}`);
}

export function registerDriftCommands(program: Command): void {
  const drift = program
    .command('drift')
    .description('compare environments (production against regression) and read what scans found');

  drift
    .command('scan')
    .description("compare two environments now (default: the manifest's first drift pair, production → regression)")
    .option('--from <env>', 'environment compared from (the reference)')
    .option('--to <env>', 'environment compared to')
    .option('--components <list>', 'only these components (comma-separated)', list)
    .addOption(
      new Option('--trigger <kind>', 'why the scan runs, for the record').choices(DRIFT_TRIGGERS).default('manual'),
    )
    .option('--wait', 'wait for the scan to finish and print its summary (exit code 3 when it found critical drift)')
    .option('--as <user>', 'who asks (default: $REWIND_USER or your login)')
    .action(
      action(
        async (
          opts: { from?: string; to?: string; components?: string[]; trigger: string; wait?: boolean; as?: string },
          cmd: Command,
        ) => {
          const api = await apiOf(cmd);
          if (api) return scanThroughApi(api, opts, cmd);
          const client = await rewindClient(cmd);
          const started = await client.startDriftScan({
            ...(opts.from ? { from: opts.from } : {}),
            ...(opts.to ? { to: opts.to } : {}),
            ...(opts.components ? { components: opts.components } : {}),
            trigger: opts.trigger,
            requestedBy: currentUser(opts.as),
          });
          const how = `${started.attached ? 'attached to the running scan' : 'started scan'} ${started.scanId ?? started.workflowId}`;
          if (started.attached) {
            // The running scan may compare less than asked, or record another trigger: say so.
            const covers = started.running?.components;
            const missing = covers ? (opts.components ?? null) : [];
            const left = missing === null ? ['all components'] : missing.filter((c) => !covers!.includes(c));
            const notes = [
              covers && left.length ? `it compares only ${covers.join(', ')}` : '',
              started.running?.trigger && started.running.trigger !== opts.trigger
                ? `it runs as a ${started.running.trigger} scan`
                : '',
            ].filter(Boolean);
            if (notes.length && !cmd.optsWithGlobals<{ json?: boolean }>().json)
              process.stderr.write(
                `note: ${notes.join('; ')}${covers && left.length ? `; scan again when it ends for ${left.join(', ')}` : ''}\n`,
              );
          }
          // A pair drift.pairs does not name is scanned, but with the default thresholds, and
          // its findings say nothing of the configured pair's: say so.
          const configured = driftPairs(client.manifest.drift, Object.keys(client.manifest.environments));
          if (
            !configured.some((p) => p.from === started.from && p.to === started.to) &&
            !cmd.optsWithGlobals<{ json?: boolean }>().json
          )
            process.stderr.write(
              `note: ${started.from} → ${started.to} is not a pair in drift.pairs (${configured.map((p) => `${p.from} → ${p.to}`).join(', ') || 'none'}): it is scanned with the default thresholds, and its findings and alerts are its own\n`,
            );
          // A scan the workers refuse (they run another manifest) fails at once: say so now,
          // not after naming a scan that will never have a report.
          const taken = started.attached ? true : await takenByWorkers(client, started.workflowId);
          // A scan asks both environments' agents (and their hosts'); one that is down stalls it.
          for (const environment of new Set([started.from, started.to])) await warnWithoutAgent(client, environment);
          if (!opts.wait) {
            print(
              cmd,
              started,
              () =>
                `${how} (${started.from} → ${started.to}); ` +
                (taken
                  ? `when it ends: rewind drift report ${started.scanId ?? '…'}`
                  : `no worker has taken it yet (is \`rewind worker\` running?); add --wait to wait for it`),
            );
            return;
          }
          const quiet = cmd.optsWithGlobals<{ json?: boolean }>().json;
          if (!quiet) process.stderr.write(`${how} (${started.from} → ${started.to}) …\n`);
          const result = client.driftScanResult(started.workflowId);
          const summary = quiet ? await result : await withProgress(client, started, result);
          print(cmd, { ...started, ...summary }, () => summaryLine(summary));
          process.exitCode = scanExitCode(summary);
        },
      ),
    );

  drift
    .command('list')
    .description('list drift scans, newest first')
    .option('--from <env>', 'only scans from this environment')
    .option('--to <env>', 'only scans to this environment')
    .option('--limit <n>', 'how many', positiveInt, 20)
    .action(
      action(async (opts: { from?: string; to?: string; limit: number }, cmd: Command) => {
        checkEnvironment(cmd, opts.from, '--from');
        checkEnvironment(cmd, opts.to, '--to');
        const { listScans, renderScanList } = await import('../../drift/report');
        const scans = await withStore(cmd, (store) =>
          listScans(store, {
            limit: opts.limit,
            ...(opts.from ? { from: opts.from } : {}),
            ...(opts.to ? { to: opts.to } : {}),
          }),
        );
        print(cmd, scans, () => renderScanList(scans));
      }),
    );

  drift
    .command('report <scan>')
    .description("one scan's findings (a scan id, a unique prefix of one, its last six characters, or `latest`)")
    .addOption(new Option('--format <format>', 'markdown or json').choices(['markdown', 'json']).default('markdown'))
    .action(
      action(async (id: string, opts: { format: string }, cmd: Command) => {
        const json = cmd.optsWithGlobals<{ json?: boolean }>().json;
        if (json && opts.format === 'markdown' && cmd.getOptionValueSource('format') === 'cli')
          throw new RequestError('--json and --format markdown ask for two formats: give one');
        if (id.trim() === '')
          throw new RequestError('give a scan id (see rewind drift list), a prefix of one, or latest');
        const { findScan, renderScanMarkdown, scanFindings } = await import('../../drift/report');
        const api = await apiOf(cmd);
        const { scan, findings } = api
          ? await api.driftReport(id).catch((err: unknown) => {
              throw asRequestError(err);
            })
          : await withStore(cmd, async (store) => {
              const scan = await findScan(store, id);
              if (!scan) throw await noScan(store, id);
              return { scan, findings: await scanFindings(store, scan.id) };
            });
        const asJson = opts.format === 'json' || json;
        process.stdout.write(
          asJson ? `${JSON.stringify({ scan, findings }, null, 2)}\n` : `${renderScanMarkdown(scan, findings)}\n`,
        );
      }),
    );

  const rules = drift.command('rules').description("try the manifest's drift rules");
  rules
    .command('test <scan>')
    .description(
      "classify a stored scan's findings with the manifest's current rules, to tune them without waiting an hour",
    )
    .action(
      action(async (id: string, _opts: unknown, cmd: Command) => {
        const { manifest } = manifestOf(cmd);
        const { findScan, scanFindings, testRules } = await import('../../drift/report');
        const { scan, findings } = await withStore(cmd, async (store) => {
          const scan = await findScan(store, id);
          if (!scan) throw await noScan(store, id);
          return { scan, findings: await scanFindings(store, scan.id) };
        });
        const result = testRules(manifest, scan, findings);
        print(
          cmd,
          {
            scan: scan.id,
            counts: result.counts,
            allowed: result.allowed,
            wouldAlert: result.wouldAlert,
            findings: result.rows.map((r) => ({
              component: r.finding.component,
              subject: r.finding.subject,
              aspect: r.finding.aspect,
              stored: { severity: r.finding.severity, allowed: r.finding.allowed, rule: r.finding.rule },
              now: r.now,
              changed: r.changed,
            })),
          },
          () => {
            const lines = result.rows.map((r) => {
              const now = r.now.allowed ? 'allowed' : r.now.severity;
              const before = r.finding.allowed ? 'allowed' : r.finding.severity;
              const by = r.now.rule
                ? ` by rule ${r.now.rule}`
                : r.finding.kindSeverity
                  ? ` (the ${r.finding.kindSeverity} the kind gives it)`
                  : ' (default)';
              const fix = r.now.autoFixable ? ', auto-fixable' : '';
              return `${r.changed ? '*' : ' '} ${now.padEnd(8)} ${terminalSafe(r.finding.component)} ${terminalSafe(r.finding.subject)}${by}${fix}${r.changed ? ` (was ${before})` : ''}`;
            });
            const { critical, warning, info } = result.counts;
            lines.push(
              '',
              `with these rules: ${critical} critical, ${warning} warning, ${info} info, ${result.allowed} allowed; ` +
                `${result.wouldAlert ? 'would alert' : 'would not alert'} (thresholds critical ${result.thresholds.critical}, warning ${result.thresholds.warning}, info ${result.thresholds.info}; 0 = never)`,
            );
            if (result.rows.some((r) => r.changed)) lines.push('* = classified differently than when the scan ran');
            return lines.join('\n');
          },
        );
      }),
    );
}
