// The component kinds rewind knows, by name. Code outside src/components reaches a kind only
// through these functions, never by testing its name. Pure: workflow code imports it.
// Adding a kind: its folder under src/components/<kind>/, one line in KINDS below, and its
// driver in drivers.ts (the type checker names that line if it is missing).
import { z } from 'zod';
import { SCAN_DRIFT_ASPECTS } from '../domain/drift-scan';
import type { FingerprintSummary } from './core';
import { appKind } from './app/kind';
import { filesKind } from './files/kind';
import type { ComponentKind, KindPresenter, LocalFolder, StepOptions, StepRequest } from './kind';
import { postgresKind } from './postgres/kind';

const KINDS = [filesKind, postgresKind, appKind] as const;

// Generic, so that the mapped type keeps the tuple's shape.
type SchemasOf<T extends readonly { schema: unknown }[]> = { -readonly [I in keyof T]: T[I]['schema'] };
type SchemaTuple = SchemasOf<typeof KINDS>;

/** A manifest component entry of any registered kind. */
export const componentSchema = z.discriminatedUnion('kind', KINDS.map((k) => k.schema) as unknown as SchemaTuple);
export type Component = z.output<typeof componentSchema>;
export type KindName = Component['kind'];
/** The component entry of one kind. */
export type ComponentOf<K extends KindName> = Extract<Component, { kind: K }>;

export const KIND_NAMES: readonly KindName[] = KINDS.map((k) => k.name);

/** Every strategy some kind offers (`--strategy`). */
export const ALL_STRATEGIES = [...new Set(KINDS.flatMap((k) => [...k.strategies]))] as [string, ...string[]];

/** Every aspect a drift finding can have (the rules' `aspect`): the kinds' and the scan's own. */
export const DRIFT_ASPECTS: readonly string[] = [
  ...new Set([...SCAN_DRIFT_ASPECTS, ...KINDS.flatMap((k) => [...k.driftAspects])]),
].sort();

function kindOf(name: string): ComponentKind<Component> | undefined {
  return KINDS.find((k) => k.name === name);
}

function kindOfComponent(component: Component): ComponentKind<Component> {
  return kindOf(component.kind)!;
}

/** Where a component lives, for plans and reports, with any secret hidden. */
export function componentLocation(component: Component): string {
  return kindOfComponent(component).location(component);
}

export function resolveComponentPaths(component: Component, resolve: (p: string) => string): Component {
  return kindOfComponent(component).resolvePaths(component, resolve);
}

export function componentFolders(component: Component): LocalFolder[] {
  return kindOfComponent(component).localFolders(component);
}

export function strategiesOf(component: Component): readonly string[] {
  return kindOfComponent(component).strategies;
}

export function refusalOf(component: Component, request: { strategy?: string; time?: string }): string | undefined {
  return kindOfComponent(component).refuse(component, request);
}

export function stepOptionsOf(component: Component, request: StepRequest): StepOptions {
  return kindOfComponent(component).stepOptions(component, request);
}

/** Whether the agent plans this kind from the live component, without waiting for its safety snapshot. */
export function plansFromLiveState(kind: string): boolean {
  return kindOf(kind)?.plansFromLiveState ?? false;
}

/** Which kinds offer a strategy, for messages: "postgres". */
export function kindsWithStrategy(strategy: string): string[] {
  return KINDS.filter((k) => (k.strategies as readonly string[]).includes(strategy)).map((k) => k.name);
}

const NO_PRESENTER: KindPresenter = {
  contents: (f) => `${f.bytes} bytes`,
  planCounts: () => '',
  outcome: (o) => (o.note ? `restored: ${o.note}` : 'restored'),
};

/** How a kind's values read, by kind name; a generic fallback for a kind this build lacks. */
export function presenterOf(kind: string): KindPresenter {
  return kindOf(kind)?.present ?? NO_PRESENTER;
}

/** What a snapshot holds, in its kind's words. */
export function describeContents(fingerprint: FingerprintSummary): string {
  return presenterOf(fingerprint.details.kind).contents(fingerprint);
}

/** Fingerprint details from a snapshot's tags, written before kinds tagged their own. */
export function legacyFingerprintDetails(tags: ReadonlyMap<string, string>) {
  for (const kind of KINDS) {
    const details = kind.legacyDetails(tags);
    if (details) return details;
  }
  return undefined;
}
