// End to end through real Temporal, real restic and real files: the rollback's main promise.
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { copyTree, createTestEnv, readTree, writePickle, type TestEnv } from './support/harness';

let env: TestEnv;
let config: string;
let models: string;

beforeAll(async () => {
  env = await createTestEnv();
  config = env.componentPath('production', 'config');
  models = env.componentPath('production', 'models');
});
afterAll(() => env.teardown());

function writeV1(): void {
  writeFileSync(path.join(config, 'app.yaml'), 'release: v1\nreplicas: 3\n');
  writeFileSync(path.join(config, 'database.json'), '{"host":"db","password":"s3cret"}\n');
  chmodSync(path.join(config, 'database.json'), 0o600);
  mkdirSync(path.join(config, 'empty.d'));
  mkdirSync(path.join(config, 'conf.d'));
  writeFileSync(path.join(config, 'conf.d', 'limits.ini'), '[limits]\nmax=10\n');
  symlinkSync('app.yaml', path.join(config, 'current.yaml'));
  writeFileSync(path.join(config, 'run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(path.join(config, 'run.sh'), 0o755);
  writePickle(path.join(models, 'classifier.pkl'), { model: 'classifier', weights: [0.1, 0.2] });
  writePickle(path.join(models, 'scaler.pkl'), { model: 'scaler', mean: 0.5 });
}

/** Modify, add, delete, change a mode, retarget a link and change a pickle. */
function changeToV2(): void {
  writeFileSync(path.join(config, 'app.yaml'), 'release: v2\nreplicas: 5\n');
  writeFileSync(path.join(config, 'new-feature.yaml'), 'enabled: true\n');
  rmSync(path.join(config, 'conf.d'), { recursive: true });
  rmSync(path.join(config, 'empty.d'), { recursive: true });
  chmodSync(path.join(config, 'run.sh'), 0o644);
  unlinkSync(path.join(config, 'current.yaml'));
  symlinkSync('new-feature.yaml', path.join(config, 'current.yaml'));
  writePickle(path.join(models, 'classifier.pkl'), { model: 'classifier', weights: [0.9, 0.8, 0.7] });
  rmSync(path.join(models, 'scaler.pkl'));
}

describe('rollback of files components', () => {
  it('returns config and pickle files byte-identical to v1, with modes, links and empty directories', async () => {
    writeV1();
    const v1Copy = path.join(env.dir, 'v1-copy');
    copyTree(path.join(env.dir, 'envs', 'production'), v1Copy);
    const v1 = await env.snapshot('production', { version: 'v1', reason: 'before deploy, v1' });
    changeToV2();
    const before = readTree(path.join(env.dir, 'envs', 'production'));
    await env.snapshot('production', { version: 'v2' });

    const id = await env.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'v1' },
      requester: 'alice',
    });
    const awaiting = await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    const plan = awaiting.status.plan!;
    const configPlan = plan.components.find((c) => c.component === 'config')!;
    expect(configPlan).toMatchObject({ added: 3, changed: 3, removed: 1, details: { kind: 'files', modeChanged: 1 } });
    expect(configPlan.differences).toEqual(
      expect.arrayContaining([
        { op: 'change', subject: 'app.yaml' },
        { op: 'remove', subject: 'new-feature.yaml' },
        { op: 'change', subject: 'run.sh', detail: 'mode only' },
        { op: 'add', subject: 'empty.d' },
      ]),
    );
    expect(plan.components.find((c) => c.component === 'models')).toMatchObject({ added: 1, changed: 1, removed: 0 });
    expect(plan.order).toEqual([['config'], ['models']]);
    // Nothing changed before approval.
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(before);

    const approved = await env.client.decide(id, 'approve', { user: 'bob' });
    expect(approved.accepted).toBe(true);
    const { status, execution } = await env.finalStatus(id);

    expect(execution).toBe('COMPLETED');
    expect(status.state).toBe('completed');
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(readTree(v1Copy));
    expect(status.steps.config).toMatchObject({ state: 'done', verify: 'passed' });
    expect(status.steps.models).toMatchObject({ state: 'done', verify: 'passed' });
    expect(Date.parse(status.steps.models!.startedAt!)).toBeGreaterThanOrEqual(
      Date.parse(status.steps.config!.endedAt!),
    );
    for (const phase of ['decide', 'prepare', 'approval', 'execute', 'verify', 'complete'] as const) {
      expect(status.phases[phase]?.durationMs).toBeGreaterThanOrEqual(0);
    }
    expect(status.targetCrossSection?.crossSectionId).toBe(v1.crossSectionId);

    // The safety cross-section exists in the repository and holds the pre-rollback state.
    const sections = await env.store.crossSections('production');
    const safety = sections.find((s) => s.id === status.plan!.safetyCrossSectionId)!;
    expect(safety).toMatchObject({ origin: 'safety', complete: true, workflowId: id });
    const restoredAt = path.join(env.dir, 'safety-restore');
    await env.store.restic.restore({ snapshotId: safety.components.config!.snapshotId, target: restoredAt });
    expect(readTree(restoredAt)).toEqual(
      Object.fromEntries(
        Object.entries(before)
          .filter(([p]) => p.startsWith('config/'))
          .map(([p, e]) => [p.slice('config/'.length), e]),
      ),
    );

    // The report is written and says what happened; the secret never appears in it.
    expect(existsSync(status.reportFile!)).toBe(true);
    expect(status.report).toContain('| config | 3 | 3 (1 mode only) | 1 |');
    expect(status.report).toContain('Approved by:** bob');
    expect(status.report).not.toContain('s3cret');
  });

  it('rolls back only the named components', async () => {
    const v3 = await env.snapshot('production', { version: 'v3' });
    writeFileSync(path.join(config, 'app.yaml'), 'release: v4\n');
    writePickle(path.join(models, 'classifier.pkl'), { model: 'classifier', weights: [4] });
    const modelsBefore = readTree(models);

    const id = await env.startRollback({
      environment: 'production',
      target: { kind: 'cross-section', id: v3.crossSectionId },
      components: ['config'],
    });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'carol' });
    const { status } = await env.finalStatus(id);

    expect(status.state).toBe('completed');
    expect(Object.keys(status.steps)).toEqual(['config']);
    expect(readTree(models)).toEqual(modelsBefore);
    expect(readTree(config)['app.yaml']?.content).toBe(Buffer.from('release: v1\nreplicas: 3\n').toString('base64'));
  });

  it('returns the plan on a dry run and changes nothing', async () => {
    writeFileSync(path.join(config, 'app.yaml'), 'release: dry\n');
    const before = readTree(path.join(env.dir, 'envs', 'production'));
    const id = await env.startRollback({
      environment: 'production',
      target: { kind: 'version', version: 'v1' },
      dryRun: true,
    });
    const { status } = await env.finalStatus(id);

    expect(status).toMatchObject({ state: 'completed', dryRun: true, phase: 'complete' });
    expect(status.phases.execute).toBeUndefined();
    expect(status.plan!.components.find((c) => c.component === 'config')!.differences).toContainEqual({
      op: 'change',
      subject: 'app.yaml',
    });
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(before);
    // The snapshot it took for its plan is not kept: nothing needs it once the dry run has ended.
    const kept = (await env.store.crossSections('production')).filter((s) => s.workflowId === id);
    expect(kept).toEqual([]);
  });

  it('fails clearly when no cross-section has the version, and changes nothing', async () => {
    const before = readTree(path.join(env.dir, 'envs', 'production'));
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version: 'v404' } });
    const { status, execution } = await env.finalStatus(id);
    expect(execution).toBe('FAILED');
    expect(status.state).toBe('failed');
    expect(status.cause).toMatch(/no cross-section of production matches version v404; recent: xs-/);
    expect(readTree(path.join(env.dir, 'envs', 'production'))).toEqual(before);
  });
});

describe('what a restore touches', () => {
  let env: TestEnv;
  let dir: string;
  beforeAll(async () => {
    env = await createTestEnv({ environments: { production: { data: {} } } });
    dir = env.componentPath('production', 'data');
  });
  afterAll(() => env.teardown());

  const rollbackTo = async (version: string) => {
    const id = await env.startRollback({ environment: 'production', target: { kind: 'version', version } });
    await env.waitFor(id, (s) => s.state === 'awaiting-approval');
    await env.client.decide(id, 'approve', { user: 'bob' });
    return (await env.finalStatus(id)).status;
  };
  const ctimes = () => Object.fromEntries(readdirSync(dir).map((f) => [f, lstatSync(path.join(dir, f)).ctimeMs]));

  it('writes only the changed file and leaves the others untouched, down to their ctime', async () => {
    for (let i = 0; i < 10; i++) writeFileSync(path.join(dir, `f${i}.bin`), Buffer.alloc(256 * 1024, i));
    await env.snapshot('production', { version: 'base' });
    writeFileSync(path.join(dir, 'f3.bin'), Buffer.alloc(256 * 1024, 99));
    const before = ctimes();

    const status = await rollbackTo('base');
    expect(status.state).toBe('completed');
    expect(status.steps.data!.outcome).toMatchObject({
      bytesWritten: 256 * 1024,
      details: { kind: 'files', method: 'targeted' },
    });
    const after = ctimes();
    for (const f of Object.keys(before)) {
      if (f === 'f3.bin') expect(after[f]).not.toBe(before[f]);
      else expect(after[f]).toBe(before[f]);
    }
    expect(readTree(dir)['f3.bin']?.content).toBe(Buffer.alloc(256 * 1024, 3).toString('base64'));
  });

  it('restores a file whose content changed behind an unchanged size and mtime', async () => {
    // restic's own if-changed check compares size and mtime only; rewind compares content.
    const file = path.join(dir, 'f5.bin');
    const { mtime } = lstatSync(file);
    writeFileSync(file, Buffer.alloc(256 * 1024, 77));
    utimesSync(file, mtime, mtime);
    const status = await rollbackTo('base');
    expect(status.steps.data!.outcome!.details).toMatchObject({ method: 'targeted' });
    expect(readTree(dir)['f5.bin']?.content).toBe(Buffer.alloc(256 * 1024, 5).toString('base64'));
  });

  it('rolls back a component whose directory was deleted, or emptied', async () => {
    const expected = readTree(dir);
    rmSync(dir, { recursive: true });
    let status = await rollbackTo('base');
    expect(status.state).toBe('completed');
    expect(readTree(dir)).toEqual(expected);

    for (const f of readdirSync(dir)) rmSync(path.join(dir, f));
    status = await rollbackTo('base');
    expect(status.state).toBe('completed');
    expect(readTree(dir)).toEqual(expected);
  });

  it('rolls back to a cross-section in which the component was empty', async () => {
    const keep = readTree(dir);
    const aside = path.join(env.dir, 'aside');
    copyTree(dir, aside);
    for (const f of readdirSync(dir)) rmSync(path.join(dir, f));
    await env.snapshot('production', { version: 'empty' });
    copyTree(aside, dir);
    expect(readTree(dir)).toEqual(keep);
    const status = await rollbackTo('empty');
    expect(status.state).toBe('completed');
    expect(readdirSync(dir)).toEqual([]);
    expect((await rollbackTo('base')).state).toBe('completed');
    expect(readTree(dir)).toEqual(keep);
  });

  it('falls back to a whole-tree restore for names restic would read as patterns, and says why', async () => {
    writeFileSync(path.join(dir, 'report [final] $HOME*.txt'), 'v1');
    const expected = (await env.snapshot('production', { version: 'odd-names' }), readTree(dir));
    writeFileSync(path.join(dir, 'report [final] $HOME*.txt'), 'v2, longer');
    rmSync(path.join(dir, 'f1.bin'));
    const status = await rollbackTo('odd-names');
    expect(status.state).toBe('completed');
    expect(status.steps.data!.outcome).toMatchObject({
      details: { method: 'whole-tree' },
      note: 'path "report [final] $HOME*.txt" holds restic pattern syntax',
    });
    expect(readTree(dir)).toEqual(expected);
  });
});
