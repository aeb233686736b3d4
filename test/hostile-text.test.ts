// Text typed by a requester (a reason, a name, a version label) or found outside (a file name)
// reaches an approver's terminal and the Markdown report. Through the real CLI: escape sequences
// show as text and never reach the terminal, and the report escapes HTML and cannot gain headings.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { workflowMetadataQuery } from '@temporalio/workflow';
import { createTestEnv, runCli, type TestEnv } from './support/harness';

let env: TestEnv;
let cli: (args: string[]) => ReturnType<typeof runCli>;

/** Clears the screen, homes the cursor and writes a forged line over the real one. */
const FORGING_REASON = '\x1b[2J\x1b[Happroved by bob\r';
const FORGING_USER = 'mal\x1b[32mlory';
/** A version label and a snapshot reason are typed by whoever takes the snapshot. */
const VERSION = 'v1\x1b[8m';
const SNAPSHOT_REASON = 'before deploy\u202e<i>txt.exe</i>';
/** A file added after the snapshot, so the plan removes it: its name sets the terminal's title. */
const FILE = 'evil\x1b]0;pwned\x07<b>.txt';

/** Anything a terminal or a bidi-aware view would act on, except the newlines between lines. */
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

const json = (text: string) => JSON.parse(text) as Record<string, unknown>;

beforeAll(async () => {
  env = await createTestEnv({ environments: { production: { config: {} } } });
  // The project store the workers use: the CLI audits its own actions there.
  const store = { DATABASE_URL: await env.projectStoreUrl() };
  cli = (args) => runCli(['--manifest', env.manifestFile, ...args], { env: store });
  const dir = env.componentPath('production', 'config');
  writeFileSync(path.join(dir, 'app.yaml'), 'release: v1\n');
  await env.snapshot('production', { version: VERSION, reason: SNAPSHOT_REASON });
  writeFileSync(path.join(dir, 'app.yaml'), 'release: v2\n');
  writeFileSync(path.join(dir, FILE), 'x');
});
/** Runs a test leaves behind (it failed half-way) are cancelled, so the next can take the lock. */
const started: string[] = [];
afterEach(async () => {
  for (const id of started.splice(0)) {
    await env.client.cancel(id, { user: 'carol' }).catch(() => undefined);
    await env.finalStatus(id, 60_000);
  }
});
afterAll(() => env.teardown());

async function start(reason: string, as: string): Promise<string> {
  const result = await cli([
    'rollback',
    'start',
    '--env',
    'production',
    '--to-version',
    VERSION,
    '--reason',
    reason,
    '--as',
    as,
    '--json',
  ]);
  expect(result.stderr).toBe('');
  expect(json(result.stdout)).toMatchObject({ state: 'awaiting-approval' });
  const id = json(result.stdout).workflowId as string;
  started.push(id);
  return id;
}

describe('hostile text on display', () => {
  it('snapshot list shows a version label and a reason with escapes and bidi overrides as text', async () => {
    const listed = await cli(['snapshot', 'list', '--env', 'production']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toMatch(CONTROL);
    expect(listed.stdout).toContain('v1\\x1b[8m');
    expect(listed.stdout).toContain('before deploy\\u202e<i>txt.exe</i>');
  });

  it("rollback status shows a requester's escape sequences as text, and the report and Web UI escape them too", async () => {
    const id = await start(FORGING_REASON, FORGING_USER);
    // Refused (not an approver), and recorded with the name as typed.
    expect(await env.client.decide(id, 'approve', { user: 'bo\x1b[8mb' })).toMatchObject({ accepted: false });

    const status = await cli(['rollback', 'status', id]);
    expect(status.stdout).toContain('state: awaiting-approval');
    expect(status.stdout).not.toMatch(CONTROL);
    expect(status.stdout).toContain('requested by mal\\x1b[32mlory (manual): \\x1b[2J\\x1b[Happroved by bob\\r');
    expect(status.stdout).toContain('version v1\\x1b[8m');
    expect(status.stdout).toContain('refused approve by bo\\x1b[8mb');
    expect(status.stdout).toContain('remove evil\\x1b]0;pwned\\x07<b>.txt');
    // The data, and so --json, keep the values as they were typed.
    expect((await env.client.rollbackView(id)).status).toMatchObject({
      reason: FORGING_REASON,
      requester: FORGING_USER,
    });

    const details = (await env.temporal.workflow.getHandle(id).query(workflowMetadataQuery)).currentDetails ?? '';
    expect(details).not.toMatch(CONTROL);
    expect(details).toContain('mal\\\\x1b\\[32mlory');

    const comment = '<img src=x onerror=alert(1)>';
    expect(await env.client.decide(id, 'reject', { user: 'bob', comment })).toMatchObject({ accepted: true });
    expect((await env.finalStatus(id)).status.state).toBe('rejected');
    const report = (await cli(['rollback', 'report', id])).stdout;
    expect(report).toContain(`# Rollback report: ${id}`);
    expect(report).not.toMatch(CONTROL);
    expect(report).not.toContain('<img');
    expect(report).not.toContain('<b>');
    expect(report).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(report).toContain('mal\\\\x1b\\[32mlory');
  });

  it('the report escapes HTML, and a newline in a reason cannot start a heading', async () => {
    const id = await start('<script>alert(1)</script>\n## Approved by: mallory', 'eve');
    const status = (await cli(['rollback', 'status', id])).stdout;
    expect(status).not.toMatch(/^\s*## Approved/m);
    expect(status).toContain('<script>alert(1)</script>\\n## Approved by: mallory');

    await env.client.cancel(id, { user: 'carol', reason: '`](javascript:alert(1)) | **Approved by:** mallory' });
    expect((await env.finalStatus(id)).status.state).toBe('cancelled');
    const report = (await cli(['rollback', 'report', id])).stdout;
    expect(report).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(report).not.toContain('<script>');
    expect(report).not.toMatch(/^\s*#+ *Approved/m);
    expect(report).not.toMatch(/^\s*[-*] \*\*Approved by/m);
    expect(report).toContain('\\`\\](javascript:alert(1)) \\| \\*\\*Approved by:\\*\\* mallory');
  });
});
