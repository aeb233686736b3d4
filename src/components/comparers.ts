// The component kinds' drift comparisons, by kind name: the control worker compares two agents'
// answers with these. Kept apart from the registry because comparing reads config parsers and
// hashes (node modules), and the registry must load in the workflow sandbox. The mapped type
// makes a kind registered without a comparison a compile error.
import type { DriftQuestion, KindDrift, PreviousDifference } from './drift';
import { appDrift } from './app/drift';
import { filesDrift } from './files/drift';
import { comparePostgres, firstPostgresQuestion, postgresSyncOverwrites } from './postgres/drift';
import type { Component, ComponentOf, KindName } from './registry';

const COMPARISONS: { [K in KindName]: KindDrift<ComponentOf<K>> } = {
  files: filesDrift,
  postgres: { firstQuestion: firstPostgresQuestion, compare: comparePostgres, syncOverwrites: postgresSyncOverwrites },
  app: appDrift,
};

export function driftOf(component: Component): KindDrift<Component> {
  return COMPARISONS[component.kind];
}

export function firstDriftQuestion(component: Component, previous: readonly PreviousDifference[] = []): DriftQuestion {
  return driftOf(component).firstQuestion(component, previous);
}
