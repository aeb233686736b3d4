// `rewind drift scan --wait` while an agent does not answer: the scan waits for it (a scan needs
// both sides), and the CLI says what it waits for instead of hanging silently; once the agent
// runs, the scan finishes and the CLI prints its summary.
import { createTestEnv, runCli, type TestEnv } from './support/harness';

let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv({
    // The regression agent is a process of its own, started only when the test says.
    externalAgents: ['regression'],
    environments: {
      production: { config: { format: 'config' }, models: { format: 'pickle' } },
      regression: { config: { format: 'config' }, models: { format: 'pickle' } },
    },
  });
});

afterAll(() => env?.teardown());

test('drift scan --wait says what it waits for while an agent does not answer, and finishes once it does', async () => {
  const cliEnv = { REWIND_MANIFEST: env.manifestFile, DATABASE_URL: await env.projectStoreUrl() };
  let agentStarted = false;
  let attach: Promise<{ code: number | null; stdout: string; stderr: string }> | undefined;
  const run = await runCli(['drift', 'scan', '--components', 'config', '--wait'], {
    env: cliEnv,
    timeoutMs: 120_000,
    onStderr: (text) => {
      // While the scan waits: a deploy hook's full scan attaches to it, and is told what it covers.
      if (!attach && text.includes('comparing config'))
        attach = runCli(['drift', 'scan', '--trigger', 'deploy'], { env: cliEnv, timeoutMs: 60_000 });
      if (!agentStarted && text.includes('still waiting after')) {
        agentStarted = true;
        env.spawnAgent('regression');
      }
    },
  });
  if (!attach) throw new Error(`the scan never compared config: ${JSON.stringify(run)}`);
  const attached = await attach;
  expect(attached.code).toBe(0);
  expect(attached.stderr).toBe(
    'note: it compares only config; it runs as a manual scan; scan again when it ends for all components\n' +
      'warning: no agent serves regression right now; the run will wait until `rewind agent --env regression` starts\n',
  );
  // Both name the scan by the id its report is found by.
  const scanId = /^started scan (\d{8}-\d{6}-[0-9a-f]{6}) \(production → regression\) …\n/m.exec(run.stderr)?.[1];
  // The agent that is down is named when the scan starts, and again when it has waited a while.
  expect(run.stderr).toMatch(
    /^warning: no agent serves regression right now; the run will wait until `rewind agent --env regression` starts\n/,
  );
  expect(scanId).toBeDefined();
  expect(attached.stdout).toBe(
    `attached to the running scan ${scanId} (production → regression); when it ends: rewind drift report ${scanId}\n`,
  );

  expect(agentStarted).toBe(true);
  expect(run.stderr).toMatch(/scan \d{8}-\d{6}-[0-9a-f]{6}: comparing; comparing config \(0 rounds\)\n/);
  expect(run.stderr).toMatch(
    /still waiting after \d+ s: a scan waits for both agents to answer; no agent polls for `rewind agent --env regression`: start it\n/,
  );
  expect(run.code).toBe(0);
  expect(run.stdout).toMatch(new RegExp(`^drift scan ${scanId} \\(production → regression\\): completed\n`));
});

test('drift scan of a pair drift.pairs does not name says so, and scans it; the configured pair says nothing', async () => {
  const cliEnv = { REWIND_MANIFEST: env.manifestFile, DATABASE_URL: await env.projectStoreUrl() };
  const reversed = await runCli(
    ['drift', 'scan', '--from', 'regression', '--to', 'production', '--components', 'config', '--wait'],
    { env: cliEnv, timeoutMs: 120_000 },
  );
  expect(reversed.code).toBe(0);
  expect(reversed.stderr).toContain(
    'note: regression → production is not a pair in drift.pairs (production → regression): it is scanned with the default thresholds',
  );
  expect(reversed.stdout).toContain('(regression → production): completed');
  const configured = await runCli(['drift', 'scan', '--components', 'config', '--wait'], {
    env: cliEnv,
    timeoutMs: 120_000,
  });
  expect(configured.code).toBe(0);
  expect(configured.stderr).not.toContain('is not a pair in drift.pairs');
});
