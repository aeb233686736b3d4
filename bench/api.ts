// npm run bench:api: the people-facing doors under a burst. On the demo that `rewind start`
// writes, with `rewind api` as its own process (beside the worker and the agent):
//   - 200 concurrent deliveries of one Alertmanager alert group to the webhook: p50, p99 and
//     max acknowledgement latency; and the time from the first delivery's arrival to the
//     rollback it starts awaiting approval;
//   - 200 concurrent signed Slack clicks (Approve, each its own click) on that rollback: p50,
//     p99 and max acknowledgement latency (Slack allows 3 s);
//   - beside them, in the same run, 200 concurrent requests to the API's /healthz: the floor the
//     HTTP stack itself sets on this machine.
// REWIND_BENCH_CLIENT=fetch sends the bursts with fetch (undici), as this bench did before
// 2026-11-30: see timed(). REWIND_BENCH_LOGS and REWIND_BENCH_NODE_ARGS: see bench/stack.ts.
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { signedSlackHeaders } from '../src/api/slack-signature';
import { loadManifest } from '../src/manifest/load';
import { openSnapshotStore } from '../src/snapshots/open';
import { writeDemo } from '../src/workers/demo';
import { say, startBenchStack } from './stack';

const BURST = Number(process.env.REWIND_BENCH_BURST ?? 200);
const PORT = Number(process.env.REWIND_BENCH_API_PORT ?? 18787);
const CLIENT = process.env.REWIND_BENCH_CLIENT === 'fetch' ? 'fetch' : 'node:http';
const TOKEN = 'bench-webhook-token';
const SECRET = 'bench-signing-secret';

const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
const ms = (n: number) => `${n.toFixed(0)} ms`;

/**
 * One request on a connection of its own, closed after (as a burst of webhook deliveries or
 * clicks arrives, and no idle connection is left to break when the API stops), timed from before
 * the connection opens until the whole answer has arrived. Sent with node:http rather than
 * fetch: the load generator shares the machine's 2 cores with everything it measures, and
 * fetch (undici) spent about 1.4 ms of CPU per request here, node:http about a third of that.
 */
function timed(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ ms: number; status: number }> {
  const started = process.hrtime.bigint();
  if (CLIENT === 'fetch')
    return fetch(url, { ...options, headers: { connection: 'close', ...options.headers } }).then(async (response) => {
      await response.arrayBuffer();
      return { ms: Number(process.hrtime.bigint() - started) / 1e6, status: response.status };
    });
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      {
        method: options.method ?? 'GET',
        agent: false,
        headers: {
          connection: 'close',
          ...options.headers,
          ...(options.body !== undefined ? { 'content-length': String(Buffer.byteLength(options.body)) } : {}),
        },
      },
      (response) => {
        response.resume();
        response.on('end', () =>
          resolve({ ms: Number(process.hrtime.bigint() - started) / 1e6, status: response.statusCode ?? 0 }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(options.body);
  });
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'rewind-bench-api-'));
  const manifestFile = path.join(work, 'rewind.yaml');
  await writeDemo(manifestFile);
  // The demo, with an API on a port of the bench's own, one approver known to Slack, and a trigger.
  const demo = parse(readFileSync(manifestFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(
    manifestFile,
    stringify({
      ...demo,
      api: { listen: `127.0.0.1:${PORT}`, principals: { bob: { roles: ['approver'], slackUserId: 'UBOB0001' } } },
      // Clicks are verified with the signing secret; no channel: nothing is posted.
      slack: { channels: {} },
      triggers: {
        auth: { bearerTokenEnv: 'BENCH_AM_TOKEN' },
        rules: [{ name: 'bench', match: { alertname: 'BenchAlert' }, environment: 'production' }],
      },
    }),
  );
  const { manifest } = loadManifest(manifestFile, { checkPaths: 'all' });
  const configDir = (manifest.environments.production!.components.config as { path: string }).path;
  const appFile = path.join(configDir, 'app.yaml');
  const store = openSnapshotStore(manifest);
  await store.restic.ensureInitialized();
  const stack = await startBenchStack({
    manifest,
    manifestFile,
    env: { BENCH_AM_TOKEN: TOKEN, SLACK_SIGNING_SECRET: SECRET, SLACK_BOT_TOKEN: 'xoxb-bench' },
    store,
  });
  const base = `http://127.0.0.1:${PORT}`;
  try {
    stack.launch(['worker']);
    stack.launch(['agent', '--env', 'production']);
    stack.launch(['api']);
    say('two releases of production (v1, then v2 deployed) …');
    for (const version of ['v1', 'v2']) {
      writeFileSync(appFile, `release: ${version}\n`);
      await stack.client.snapshotResult(
        (await stack.client.startSnapshot({ environment: 'production', version, requester: 'bench' })).workflowId,
      );
    }
    for (let i = 0; i < 100; i++) {
      const up = await fetch(`${base}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (up) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    // The floor: the same burst on an endpoint that does nothing.
    const floor = await Promise.all(Array.from({ length: BURST }, () => timed(`${base}/healthz`)));

    const alert = JSON.stringify({
      version: '4',
      groupKey: '{}:{alertname="BenchAlert"}',
      status: 'firing',
      commonLabels: { alertname: 'BenchAlert' },
      commonAnnotations: { summary: 'bench' },
      alerts: [
        { status: 'firing', labels: { alertname: 'BenchAlert' }, annotations: {}, startsAt: new Date().toISOString() },
      ],
    });
    const arrival = Date.now();
    const webhook = await Promise.all(
      Array.from({ length: BURST }, () =>
        timed(`${base}/v1/webhooks/alertmanager`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
          body: alert,
        }),
      ),
    );
    if (webhook.some((w) => w.status !== 200)) throw new Error('a webhook delivery was not acknowledged with 200');
    const runs = await stack.client.listRollbacks('production', 10);
    if (runs.length !== 1) throw new Error(`${runs.length} rollbacks started, expected 1`);
    const id = runs[0]!.workflowId;
    const waiting = await stack.client.waitForRollback(id, (s) => s.state === 'awaiting-approval', {
      intervalMs: 50,
    });
    if (waiting.status.state !== 'awaiting-approval') throw new Error(`${id} is ${waiting.status.state}`);
    const toApproval = Date.now() - arrival;

    const clicks = await Promise.all(
      Array.from({ length: BURST }, (_, i) => {
        const body = new URLSearchParams({
          payload: JSON.stringify({
            type: 'block_actions',
            user: { id: 'UBOB0001' },
            actions: [
              { action_id: 'rewind_approve', value: id, action_ts: `1800000000.${String(i).padStart(6, '0')}` },
            ],
          }),
        }).toString();
        return timed(`${base}/v1/slack/interactions`, {
          method: 'POST',
          headers: signedSlackHeaders(SECRET, body),
          body,
        });
      }),
    );
    if (clicks.some((c) => c.status !== 200)) throw new Error('a Slack click was not acknowledged with 200');
    const final = await stack.client.waitForRollback(id, () => false, { intervalMs: 100 });
    const approvals = final.status.approvals.map((a) => a.user);

    const row = (what: string, xs: { ms: number }[]) => {
      const t = xs.map((x) => x.ms);
      return `| ${what} | ${ms(percentile(t, 50))} | ${ms(percentile(t, 99))} | ${ms(Math.max(...t))} |`;
    };
    process.stdout.write(
      [
        `bench:api — ${BURST} concurrent requests per burst (${CLIENT}, a connection each), rewind api as its own process`,
        '',
        '| burst | p50 | p99 | max |',
        '| --- | --- | --- | --- |',
        row('GET /healthz (the floor)', floor),
        row('POST /v1/webhooks/alertmanager, one alert group', webhook),
        row('POST /v1/slack/interactions, signed Approve clicks', clicks),
        '',
        `alert arrival → rollback awaiting approval: ${ms(toApproval)}`,
        `rollbacks started by the burst: ${runs.length}; approvals counted from ${BURST} clicks: ${approvals.length} (${approvals.join(', ')}); final state ${final.status.state}`,
        '',
      ].join('\n'),
    );
  } finally {
    await stack.stop();
    rmSync(work, { recursive: true, force: true });
  }
  // The client's retry timers may outlive the closed connection: the figures are printed.
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:api failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
