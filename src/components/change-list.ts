// The full list of a component's changes in a plan: written where the agent runs, linked from
// the plan and the report, while the plan itself carries counts and the first differences only.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Change, ComponentPlan } from './core';

export async function summarizeChanges(
  args: { plansDir: string; workflowId: string; component: string; previewPaths: number },
  changes: Change[],
): Promise<
  Pick<ComponentPlan, 'added' | 'changed' | 'removed' | 'bytesToWrite' | 'differences' | 'more' | 'changeListFile'>
> {
  const dir = path.join(args.plansDir, args.workflowId.replace(/[^A-Za-z0-9._-]/g, '_'));
  await mkdir(dir, { recursive: true });
  const changeListFile = path.join(dir, `${args.component}.json`);
  await writeFile(changeListFile, JSON.stringify({ component: args.component, changes }, null, 1));
  const count = (op: Change['op']) => changes.filter((c) => c.op === op).length;
  return {
    added: count('add'),
    changed: count('change'),
    removed: count('remove'),
    bytesToWrite: changes.reduce((sum, c) => sum + c.bytes, 0),
    differences: changes.slice(0, args.previewPaths).map(({ bytes: _bytes, ...difference }) => difference),
    more: Math.max(0, changes.length - args.previewPaths),
    changeListFile,
  };
}
