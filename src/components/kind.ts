// A component kind's pure half: its manifest schema fragment, what it needs from a rollback
// request, and its presenter. Workflow code, the CLI and the report reach a kind only through
// this interface (registry.ts); the kind's I/O half is its driver (driver.ts, drivers.ts).
import type { z } from 'zod';
import type { ComponentPlan, FingerprintSummary, KindDetails, RestoreOutcome } from './core';

/** Every component's manifest entry has these; the kind adds its own keys. */
export interface ComponentBase {
  kind: string;
  dependsOn: string[];
  description?: string | undefined;
}

/** What a rollback asks of one component, as far as its kind cares. */
export interface StepRequest {
  /** The request's `--strategy`, when given. */
  strategy?: string;
  /** The request's moment, for a `--to-time` rollback. */
  time?: string;
  /** When the target cross-section was taken. */
  crossSectionTime: string;
}

/** How a step brings the component back; travels with the step to the driver. */
export interface StepOptions {
  strategy?: string;
  /** The moment to recover to (point-in-time recovery). */
  targetTime?: string;
}

export interface LocalFolder {
  key: string;
  dir: string;
  written: boolean;
}

export interface KindPresenter {
  /** What a snapshot holds, one line: "3 files, 1 dir, 0 links, 2 KiB". */
  contents(fingerprint: FingerprintSummary): string;
  /** Extra counts for a plan's line, e.g. " mode 2"; empty when none. */
  planCounts(plan: ComponentPlan): string;
  /** What a restore step did, one line. */
  outcome(outcome: RestoreOutcome): string;
}

export interface ComponentKind<C extends ComponentBase = ComponentBase> {
  name: C['kind'];
  /** The manifest entry's schema (a zod object with `kind: z.literal(name)`). */
  schema: z.ZodType<C>;
  /**
   * The agent can plan a rollback from the component as it is now, without its safety
   * snapshot: the safety snapshot is then taken while the approval waits, not before it.
   */
  plansFromLiveState: boolean;
  /** Ways this kind can bring a component back (`--strategy`); empty when it has one way. */
  strategies: readonly string[];
  /**
   * The aspects of the differences its drift comparison reports (`content`, `schema` …), which
   * drift rules may name: a rule naming another would silently match nothing.
   */
  driftAspects: readonly string[];
  /** Where the component lives, for plans and reports, with any secret hidden. */
  location(component: C): string;
  /** The entry with its relative paths resolved against the manifest's folder. */
  resolvePaths(component: C, resolve: (p: string) => string): C;
  /**
   * Folders on the agent's host that must exist, by manifest key; `written` ones are restored
   * into, so they must be directories themselves, not symbolic links to one.
   */
  localFolders(component: C): LocalFolder[];
  /** Why this component cannot honour the request (e.g. a strategy it is not set up for). */
  refuse(component: C, request: { strategy?: string; time?: string }): string | undefined;
  /** How a step returns this component to the target. */
  stepOptions(component: C, request: StepRequest): StepOptions;
  /**
   * The fingerprint details of a snapshot taken before kinds tagged their details (flat tags
   * `fpstats`, `tables`, `migration`), when the tags are this kind's.
   */
  legacyDetails(tags: ReadonlyMap<string, string>): KindDetails | undefined;
  present: KindPresenter;
}
