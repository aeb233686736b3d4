// Golden histories of each workflow, recorded by `npm run record-histories`, are replayed
// against today's workflow code: a change to a workflow's commands that is not behind
// `patched()` makes this fail.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { TEST_PASSWORD } from './support/harness';

const dir = path.join(__dirname, 'histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

describe('replay of recorded histories', () => {
  it('has a history for each workflow and outcome, in every generation', () => {
    const outcomes = ['rollback-cancelled-during-execute', 'rollback-compensated', 'rollback-completed', 'rollback-rejected', 'snapshot-completed'];
    // v1: plans made by the control worker; v2: by the agents (patch plan-components-on-agent).
    for (const generation of ['v1', 'v2']) for (const outcome of outcomes) expect(files).toContain(`${outcome}.${generation}.json`);
    expect(files).toContain('rollback-postgres-undo.v2.json');
  });

  it.each(files)('replays %s without non-determinism', async (file) => {
    const text = readFileSync(path.join(dir, file), 'utf8');
    const history = historyFromJSON(JSON.parse(text));
    await expect(
      Worker.runReplayHistory({ workflowsPath: require.resolve('../src/workflows') }, history, file.replace(/\.json$/, '')),
    ).resolves.toBeUndefined();
    // Workflow payloads never carry the repository password.
    expect(text).not.toContain(TEST_PASSWORD);
    expect(text).not.toContain(Buffer.from(TEST_PASSWORD).toString('base64'));
  });
});
