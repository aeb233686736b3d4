// Config applied by Ansible instead of restored from a snapshot (a files component with an
// `ansible` section): plan runs `ansible-playbook --check --diff` with the target release and
// shows its output for approval; execute runs the playbook; compensation runs it with the
// release the component was at before the rollback. The release is read from the repository:
// the cross-section of the snapshot being returned to, or the newest versioned cross-section
// whose snapshot of this component equals it.
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../../domain/errors';
import { parseDuration } from '../../manifest/duration';
import { describeExit, outputTail, runShell, shellQuote } from '../../platform/shell';
import type { SnapshotStore } from '../../snapshots/store';
import type { FingerprintSummary } from '../core';
import type { FilesComponent } from './kind';

/** The longest playbook output a plan carries (the workflow history holds it). */
const PREVIEW_MAX_CHARS = 16 * 1024;

export type AnsibleSection = NonNullable<FilesComponent['ansible']>;

/** What rewind tells every playbook besides the release: where the files are, and for which environment. */
export interface PlaybookContext {
  path: string;
  environment: string;
}

/** The ansible-playbook command line for `release`, with --check --diff for a plan. */
export function playbookCommand(a: AnsibleSection, release: string, check: boolean, where: PlaybookContext): string {
  const vars = JSON.stringify({
    rewind_path: where.path,
    rewind_environment: where.environment,
    ...a.extraVars,
    [a.variable]: release,
  });
  return [
    ...a.command.map(shellQuote),
    ...(a.inventory ? ['-i', shellQuote(a.inventory)] : ['-i', 'localhost,', '-c', 'local']),
    '-e',
    shellQuote(vars),
    ...(check ? ['--check', '--diff'] : ['--diff']),
    shellQuote(a.playbook),
  ].join(' ');
}

/** The release of the snapshot a step returns to: its cross-section's, else an equal versioned one's. */
export async function releaseOf(
  store: SnapshotStore,
  req: { environment: string; component: string; snapshotId: string; fingerprint: FingerprintSummary },
): Promise<string | undefined> {
  const sections = await store.crossSections(req.environment);
  const own = sections.find((s) => s.components[req.component]?.snapshotId === req.snapshotId);
  if (own?.version !== undefined) return own.version;
  return sections.find(
    (s) =>
      s.version !== undefined &&
      s.origin !== 'safety' &&
      s.origin !== 'dry-run' &&
      s.components[req.component]?.fingerprint.digest === req.fingerprint.digest,
  )?.version;
}

export interface PlaybookRun {
  command: string;
  ok: boolean;
  output: string;
  problem?: string;
}

export async function runPlaybook(
  a: AnsibleSection,
  release: string,
  opts: { check: boolean; where: PlaybookContext; signal?: AbortSignal | undefined },
): Promise<PlaybookRun> {
  const command = playbookCommand(a, release, opts.check, opts.where);
  const timeoutMs = parseDuration(a.timeout);
  const result = await runShell(command, {
    values: { version: release },
    timeoutMs,
    signal: opts.signal,
    ...(a.cwd ? { cwd: a.cwd } : {}),
  });
  const output = `${result.stdout}${result.stderr ? `\n${result.stderr}` : ''}`.trim();
  const bounded =
    output.length > PREVIEW_MAX_CHARS
      ? `… (${output.length - PREVIEW_MAX_CHARS} characters left out)\n${output.slice(-PREVIEW_MAX_CHARS)}`
      : output;
  if (result.code === 0) return { command, ok: true, output: bounded };
  return {
    command,
    ok: false,
    output: bounded,
    problem: `ansible-playbook${opts.check ? ' --check' : ''} ${describeExit(result, timeoutMs)}${outputTail(result)}`,
  };
}

/** The failure of a step whose playbook failed: a retry would run the same playbook again. */
export function playbookFailure(run: PlaybookRun): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`${run.problem} (${run.command})`, ErrorType.ComponentUnavailable);
}
