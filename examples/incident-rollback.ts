// An incident bot's rollback through rewind's HTTP API: start (idempotently, keyed by the
// incident), follow the run until it ends, and say where to look. In your own tooling, import
// from the package instead: `import { createRewindClient } from 'rewind';`.
//
//   REWIND_API_URL=http://127.0.0.1:8787 REWIND_API_TOKEN=rwd_… \
//     npx tsx examples/incident-rollback.ts production v1 INC-4711
import { createRewindClient, RewindApiError } from '../src';

async function main(): Promise<void> {
  const [environment, version, incident] = process.argv.slice(2);
  if (!environment || !version || !incident) {
    process.stderr.write('usage: incident-rollback.ts ENVIRONMENT VERSION INCIDENT-ID\n');
    process.exit(2);
  }
  const rewind = createRewindClient({
    url: process.env.REWIND_API_URL ?? 'http://127.0.0.1:8787',
    token: process.env.REWIND_API_TOKEN ?? '',
  });
  // The incident id as the idempotency key: a retried page starts nothing new.
  const run = await rewind.startRollback(
    { environment, target: { kind: 'version', version }, trigger: 'alert', reason: `incident ${incident}` },
    { idempotencyKey: incident },
  );
  process.stdout.write(`${run.existing ? 'following' : 'started'} ${run.workflowId}: ${run.webUi}\n`);
  for await (const status of rewind.watch(run.workflowId, { intervalMs: 2_000 })) {
    process.stdout.write(`${status.phase}: ${status.state}\n`);
    if (status.state === 'awaiting-approval')
      process.stdout.write('  waiting for an approver (Slack, the API or the CLI)\n');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof RewindApiError ? `${err.status} ${err.reason}` : String(err)}\n`);
  process.exit(1);
});
