// The `app` driver. A snapshot records which release runs (a one-line JSON document, also
// carried in the snapshot's tags); a restore puts the snapshot's release back into service
// with the component's strategy. A switch in progress is marked on disk first, so that an agent
// killed half-way finishes it (reload, health check) when the step is retried.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { encodeTags, type ComponentSnapshot } from '../../domain/cross-section';
import { ErrorType } from '../../domain/errors';
import { inlineListing } from '../../snapshots/inline-listing';
import { summarizeChanges } from '../change-list';
import type { Change, FingerprintSummary } from '../core';
import { snapshotLabels, type ComponentDriver, type RestoreResult, type StepContext } from '../driver';
import {
  appDetailsOf,
  appKind,
  type AppComponent,
  type AppFingerprintDetails,
  type AppFollowUpDetails,
  type AppRestoreDetails,
} from './kind';
import type { AppDriftAnswer } from './drift';
import { checkVersion } from './run';
import { strategyFor, type LiveState, type SwitchContext } from './strategies';

const STATE_FILE = 'app-state.json';

export function appFingerprint(strategy: AppComponent['strategy'], state: LiveState): FingerprintSummary {
  const text = JSON.stringify({ strategy, version: state.version ?? null, colour: state.colour ?? null });
  const details: AppFingerprintDetails = {
    kind: 'app',
    strategy,
    ...(state.version !== undefined ? { version: state.version } : {}),
    ...(state.colour !== undefined ? { colour: state.colour } : {}),
    ...(state.identity !== undefined ? { identity: state.identity } : {}),
  };
  // Equal digests mean the same release is in service: the colour it runs on is where, not what
  // (a rollback may bring release 1 back on the other colour), so it is not part of the digest.
  // What the fingerprint command printed is (a command component's deeper identity).
  return {
    digest: createHash('sha256')
      .update(`app\0${state.version ?? ''}${state.identity !== undefined ? `\0${state.identity}` : ''}`)
      .digest('hex'),
    bytes: Buffer.byteLength(text),
    entries: 1,
    details,
  };
}

function versionOf(fingerprint: FingerprintSummary): string | undefined {
  return appDetailsOf<AppFingerprintDetails>(fingerprint)?.version;
}

interface SwitchMarker {
  idempotencyKey: string;
  version: string;
}

function markerFile(ctx: StepContext, component: string): string {
  return path.join(path.dirname(ctx.plansDir), 'app', `${component}.switch.json`);
}

async function readMarker(file: string): Promise<SwitchMarker | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as SwitchMarker;
  } catch {
    return undefined;
  }
}

export function createAppDriver(): ComponentDriver<AppComponent> {
  const strategy = (c: AppComponent, req: { environment: string; component: string }) =>
    strategyFor(c, { environment: req.environment, component: req.component });
  const switchContext = (ctx: StepContext, purpose: SwitchContext['purpose']): SwitchContext => ({
    purpose,
    signal: ctx.progress.signal,
    stage: (stage) => ctx.progress.update({ stage }),
  });

  return {
    async snapshot(component, req, ctx): Promise<ComponentSnapshot> {
      const state = await strategy(component, req).state();
      // A safety snapshot records whatever runs, even nothing; any other snapshot names a release.
      if (state.version === undefined && req.origin !== 'safety' && req.origin !== 'dry-run')
        throw ApplicationFailure.nonRetryable(
          `${req.environment}/${req.component}: cannot tell which release runs: ${state.problem ?? 'no answer'}`,
          ErrorType.ComponentUnavailable,
        );
      const fingerprint = appFingerprint(component.strategy, state);
      if (req.unlessAt && req.unlessAt.fingerprint.digest === fingerprint.digest) return req.unlessAt;
      const text = JSON.stringify({ strategy: component.strategy, ...state });
      const labels = { ...snapshotLabels(req, fingerprint), inlineListing: inlineListing(text)! };
      const saved = await ctx.store.restic.backupStdin({
        data: `${text}\n`,
        filename: STATE_FILE,
        host: req.environment,
        tags: encodeTags(labels),
      });
      await ctx.listings.save(saved.snapshotId, text);
      return {
        component: req.component,
        snapshotId: saved.snapshotId,
        listingSnapshotId: saved.snapshotId,
        fingerprint,
      };
    },

    async restore(component, req, ctx): Promise<RestoreResult> {
      const wanted = versionOf(req.fingerprint);
      if (wanted === undefined) {
        if (req.purpose === 'compensation')
          return {
            alreadyAtTarget: false,
            bytesWritten: 0,
            note: 'no release answered before the rollback, so there is none to switch back to; the new one keeps running',
          };
        throw ApplicationFailure.nonRetryable(
          `${req.component}: the target snapshot records no running release, so there is nothing to switch to`,
          ErrorType.CrossSectionIncomplete,
        );
      }
      const version = checkVersion(wanted, `${req.component}: the target release`);
      const app = strategy(component, req);
      const sw = switchContext(ctx, req.purpose);
      const marker = markerFile(ctx, req.component);
      const now = await app.state();
      const pending = await readMarker(marker);
      if (now.version === version) {
        if (pending?.version === version) {
          // The link or upstream was changed, then the agent stopped: finish the switch.
          await app.settle(version, sw);
          await rm(marker, { force: true });
          return { alreadyAtTarget: false, bytesWritten: 0, note: 'finished a switch an agent restart interrupted' };
        }
        // The same version, and (where a fingerprint command says more) the same system.
        if (appFingerprint(component.strategy, now).digest === req.fingerprint.digest)
          return { alreadyAtTarget: true, bytesWritten: 0 };
      }
      await mkdir(path.dirname(marker), { recursive: true });
      await writeFile(
        marker,
        JSON.stringify({ idempotencyKey: req.idempotencyKey ?? req.snapshotId, version } satisfies SwitchMarker),
      );
      try {
        const done = await app.switchTo(version, now, sw);
        const details: AppRestoreDetails = { kind: 'app', strategy: component.strategy, ...done };
        const later = req.purpose === 'rollback' ? app.laterFor?.(now, done) : undefined;
        return { alreadyAtTarget: false, bytesWritten: 0, details, ...(later ? { later } : {}) };
      } finally {
        // A failed switch left traffic where it was (or compensation will move it back); a
        // retry starts over from the state it reads.
        await rm(marker, { force: true });
      }
    },

    async verify(component, req) {
      const app = strategy(component, req);
      const now = await app.state();
      const actual = appFingerprint(component.strategy, now);
      const expected = versionOf(req.expected);
      const differences = [];
      const expectedIdentity = appDetailsOf<AppFingerprintDetails>(req.expected)?.identity;
      if (actual.digest !== req.expected.digest && now.version === expected && now.version !== undefined)
        differences.push({
          op: 'change' as const,
          subject: 'fingerprint',
          detail: `${now.version} runs, but the fingerprint command ${now.identity === undefined ? `gave nothing (${now.problem ?? 'no output'})` : `prints another thing (sha256 ${now.identity.slice(0, 12)}…)`} than at the target snapshot${expectedIdentity ? ` (sha256 ${expectedIdentity.slice(0, 12)}…)` : ''}`,
        });
      else if (actual.digest !== req.expected.digest)
        differences.push({
          op: 'change' as const,
          subject: 'version',
          detail: `${now.version ?? `nothing (${now.problem ?? 'no answer'})`} runs, not ${expected ?? 'nothing'}`,
        });
      else if (expected !== undefined && app.servedProblem) {
        const problem = await app.servedProblem(expected);
        if (problem) differences.push({ op: 'change' as const, subject: 'traffic', detail: problem });
      }
      return { matches: differences.length === 0, actual, differences };
    },

    async assess(component, req, ctx) {
      const current: LiveState = req.safety
        ? (appDetailsOf<AppFingerprintDetails>(req.safety.fingerprint) ?? {})
        : await strategy(component, req).state();
      const target = versionOf(req.target.fingerprint);
      const changes: Change[] = [];
      if (current.version !== target)
        changes.push({
          op: 'change',
          subject: 'version',
          detail: `${current.version ?? 'nothing'} → ${target ?? 'nothing'}${current.colour ? ` (traffic leaves ${current.colour})` : ''}`,
          bytes: 0,
        });
      const summary = await summarizeChanges({ ...req, plansDir: ctx.plansDir }, changes);
      const details: AppFingerprintDetails = {
        kind: 'app',
        strategy: component.strategy,
        ...(target !== undefined ? { version: target } : {}),
      };
      return {
        component: req.component,
        kind: 'app',
        path: appKind.location(component),
        targetSnapshotId: req.target.snapshotId,
        safetySnapshotId: req.safety?.snapshotId ?? '',
        ...summary,
        destructive: false,
        details,
      };
    },

    async stage(component, req) {
      const version = versionOf(req.target.fingerprint);
      if (version === undefined)
        return { readable: false, note: 'the target snapshot records no running release', bytes: 0 };
      const app = strategy(component, req);
      if (!app.available)
        return { readable: true, note: 'the commands decide; nothing to check before approval', bytes: 0 };
      const { ok, note } = await app.available(version);
      return { readable: ok, note, bytes: 0 };
    },

    async followUp(component, req, ctx) {
      const app = strategy(component, req);
      if (!app.followUp) return 'nothing to do';
      return app.followUp(req.details as AppFollowUpDetails, ctx.progress.signal);
    },

    async describe(component, _question, ctx): Promise<AppDriftAnswer> {
      const state = await strategy(component, {
        environment: ctx.environment ?? '',
        component: ctx.component ?? '',
      }).state();
      return {
        kind: 'app',
        strategy: component.strategy,
        ...(state.version !== undefined ? { version: state.version } : {}),
        ...(state.colour !== undefined ? { colour: state.colour } : {}),
        ...(state.identity !== undefined ? { identity: state.identity } : {}),
        ...(state.problem !== undefined ? { problem: state.problem } : {}),
      };
    },
  };
}
