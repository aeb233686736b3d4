// Cross-sections (断面): snapshots of several components of one environment taken together.
// Each component's snapshot is one restic snapshot; these labels travel as its restic tags.
import type { FingerprintSummary, KindDetails } from '../components/core';
import { legacyFingerprintDetails } from '../components/registry';

export type { FingerprintSummary };

export type SnapshotOrigin = 'manual' | 'safety' | 'schedule' | 'dry-run';
export type SnapshotRole = 'data' | 'listing';

export interface SnapshotLabels {
  environment: string;
  component: string;
  crossSectionId: string;
  role: SnapshotRole;
  origin: SnapshotOrigin;
  /** Every component of the cross-section, so an incomplete one is recognisable. */
  members: string[];
  version?: string;
  reason?: string;
  /** The workflow that took it. */
  workflowId?: string;
  fingerprint?: FingerprintSummary;
  /**
   * A small listing stored in the data snapshot's own tags (compressed, base64url; see
   * snapshots/inline-listing.ts) instead of a listing snapshot of its own: one restic run less.
   */
  inlineListing?: string;
}

export interface ComponentSnapshot {
  component: string;
  snapshotId: string;
  listingSnapshotId: string;
  fingerprint: FingerprintSummary;
}

export interface CrossSection {
  id: string;
  environment: string;
  time: string;
  origin: SnapshotOrigin;
  version?: string;
  reason?: string;
  workflowId?: string;
  members: string[];
  components: Record<string, ComponentSnapshot>;
  /** Every member has its data and listing snapshot. */
  complete: boolean;
}

const TAG_MARK = 'rewind';

/** restic splits tags on commas; values are percent-encoded so any text survives. */
export function encodeTags(labels: SnapshotLabels): string[] {
  const tags = [
    TAG_MARK,
    `env=${labels.environment}`,
    `component=${labels.component}`,
    `xs=${labels.crossSectionId}`,
    `role=${labels.role}`,
    `origin=${labels.origin}`,
    `members=${labels.members.join('+')}`,
  ];
  if (labels.version !== undefined) tags.push(`version=${encodeURIComponent(labels.version)}`);
  if (labels.reason !== undefined) tags.push(`reason=${encodeURIComponent(labels.reason)}`);
  if (labels.workflowId !== undefined) tags.push(`wf=${encodeURIComponent(labels.workflowId)}`);
  if (labels.fingerprint) {
    const f = labels.fingerprint;
    tags.push(
      `fp=${f.digest}`,
      `fpsize=${f.bytes}.${f.entries}`,
      `fpd=${encodeURIComponent(JSON.stringify(f.details))}`,
    );
  }
  if (labels.inlineListing !== undefined) tags.push(`listing=${labels.inlineListing}`);
  return tags;
}

export function decodeTags(tags: readonly string[]): SnapshotLabels | undefined {
  if (!tags.includes(TAG_MARK)) return undefined;
  const values = new Map<string, string>();
  for (const tag of tags) {
    const eq = tag.indexOf('=');
    if (eq > 0) values.set(tag.slice(0, eq), tag.slice(eq + 1));
  }
  const environment = values.get('env');
  const component = values.get('component');
  const crossSectionId = values.get('xs');
  const role = values.get('role') as SnapshotRole | undefined;
  if (!environment || !component || !crossSectionId || (role !== 'data' && role !== 'listing')) return undefined;
  const labels: SnapshotLabels = {
    environment,
    component,
    crossSectionId,
    role,
    origin: (values.get('origin') as SnapshotOrigin | undefined) ?? 'manual',
    members: (values.get('members') ?? component).split('+').filter(Boolean),
  };
  const decode = (key: string) => {
    const v = values.get(key);
    return v === undefined ? undefined : decodeURIComponent(v);
  };
  const version = decode('version');
  const reason = decode('reason');
  const workflowId = decode('wf');
  if (version !== undefined) labels.version = version;
  if (reason !== undefined) labels.reason = reason;
  if (workflowId !== undefined) labels.workflowId = workflowId;
  const inlineListing = values.get('listing');
  if (inlineListing !== undefined) labels.inlineListing = inlineListing;
  const digest = values.get('fp');
  if (digest) {
    const fingerprint = decodeFingerprint(digest, values);
    if (fingerprint) labels.fingerprint = fingerprint;
  }
  return labels;
}

function decodeFingerprint(digest: string, values: ReadonlyMap<string, string>): FingerprintSummary | undefined {
  const encoded = values.get('fpd');
  if (encoded !== undefined) {
    const [bytes, entries] = (values.get('fpsize') ?? '').split('.').map(Number);
    try {
      const details = JSON.parse(decodeURIComponent(encoded)) as KindDetails;
      if (Number.isFinite(bytes) && Number.isFinite(entries) && typeof details.kind === 'string')
        return { digest, bytes: bytes!, entries: entries!, details };
    } catch {
      return undefined;
    }
    return undefined;
  }
  // Snapshots taken before the kinds tagged their own details: `fpstats=files.dirs.links.bytes`.
  const stats = (values.get('fpstats') ?? '').split('.').map(Number);
  const details = legacyFingerprintDetails(values);
  if (!details || stats.length !== 4 || !stats.every(Number.isFinite)) return undefined;
  return { digest, bytes: stats[3]!, entries: stats[0]! + stats[1]! + stats[2]!, details };
}

export interface TaggedSnapshot {
  id: string;
  time: string;
  labels: SnapshotLabels;
}

/** Groups component snapshots into cross-sections, newest first. */
export function groupCrossSections(snapshots: readonly TaggedSnapshot[]): CrossSection[] {
  const byId = new Map<string, { data: Map<string, TaggedSnapshot>; listing: Map<string, TaggedSnapshot> }>();
  for (const s of snapshots) {
    const key = `${s.labels.environment}\0${s.labels.crossSectionId}`;
    let group = byId.get(key);
    if (!group) byId.set(key, (group = { data: new Map(), listing: new Map() }));
    group[s.labels.role].set(s.labels.component, s);
  }
  const sections: CrossSection[] = [];
  for (const { data, listing } of byId.values()) {
    const first = [...data.values(), ...listing.values()][0];
    if (!first) continue;
    const components: Record<string, ComponentSnapshot> = {};
    for (const [name, snap] of data) {
      // A data snapshot that carries its listing is its own listing snapshot.
      const list = snap.labels.inlineListing !== undefined ? snap : listing.get(name);
      if (list && snap.labels.fingerprint) {
        components[name] = {
          component: name,
          snapshotId: snap.id,
          listingSnapshotId: list.id,
          fingerprint: snap.labels.fingerprint,
        };
      }
    }
    const times = [...data.values()].map((s) => s.time).sort();
    const section: CrossSection = {
      id: first.labels.crossSectionId,
      environment: first.labels.environment,
      time: times[0] ?? first.time,
      origin: first.labels.origin,
      members: first.labels.members,
      components,
      complete: first.labels.members.every((m) => m in components),
    };
    if (first.labels.version !== undefined) section.version = first.labels.version;
    if (first.labels.reason !== undefined) section.reason = first.labels.reason;
    if (first.labels.workflowId !== undefined) section.workflowId = first.labels.workflowId;
    sections.push(section);
  }
  return sections.sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : a.id < b.id ? 1 : -1));
}

/** `xs-20261128-130641-a1b2`: sortable by time, short enough to type during an incident. */
export function crossSectionId(at: Date, random: string): string {
  const iso = at.toISOString();
  return `xs-${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}-${random.replace(/-/g, '').slice(0, 4)}`;
}

export const CROSS_SECTION_ID_PATTERN = /^xs-\d{8}-\d{6}-[0-9a-f]{4}$/;
