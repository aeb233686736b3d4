// rewind's view of the restic repository: cross-sections made of one data snapshot and one
// listing snapshot per component, found by their tags.
import { groupCrossSections, type ComponentSnapshot, type CrossSection } from '../domain/cross-section';
import type { RollbackTarget } from '../domain/rollback';
import { parseListing, type ListingEntry } from '../components/files/listing';
import { readInlineListing } from './inline-listing';
import type { ResticRepository } from './restic';

/** Name of the listing file inside a listing snapshot. */
export const LISTING_FILE = '.rewind-listing.json';
/** The only file of the data snapshot of an empty component (restic stores no empty trees). */
export const EMPTY_MARKER_FILE = '.rewind-empty';
/** restic refuses an empty stdin, so the marker says what it is. */
export const EMPTY_MARKER_TEXT = 'rewind: this component was empty when this snapshot was taken\n';

export class SnapshotStore {
  constructor(readonly restic: ResticRepository) {}

  async crossSections(environment: string): Promise<CrossSection[]> {
    await this.restic.ensureInitialized();
    return groupCrossSections(await this.restic.snapshots(['rewind', `env=${environment}`]));
  }

  /** One cross-section by its id, in whichever environment it was taken. */
  async crossSectionById(id: string): Promise<CrossSection | undefined> {
    await this.restic.ensureInitialized();
    return groupCrossSections(await this.restic.snapshots(['rewind', `xs=${id}`]))[0];
  }

  /** The cross-section a rollback target names: newest complete one with the version, or the id. */
  async findTarget(environment: string, target: RollbackTarget): Promise<CrossSection | undefined> {
    const sections = await this.crossSections(environment);
    if (target.kind === 'cross-section') return sections.find((s) => s.id === target.id);
    if (target.kind === 'time') {
      const at = Date.parse(target.time);
      return sections.find(
        (s) => s.complete && s.origin !== 'safety' && s.origin !== 'dry-run' && Date.parse(s.time) <= at,
      );
    }
    return (
      sections.find((s) => s.version === target.version && s.origin !== 'safety' && s.complete) ??
      sections.find((s) => s.version === target.version && s.origin !== 'safety')
    );
  }

  /** Snapshots already taken for this component of this cross-section (a retried step). */
  async componentSnapshots(environment: string, component: string, crossSectionId: string) {
    await this.restic.ensureInitialized();
    return this.restic.snapshots(['rewind', `env=${environment}`, `component=${component}`, `xs=${crossSectionId}`]);
  }

  async completeComponentSnapshot(
    environment: string,
    component: string,
    crossSectionId: string,
  ): Promise<{ found?: ComponentSnapshot; partial: string[] }> {
    const snaps = await this.componentSnapshots(environment, component, crossSectionId);
    const found = groupCrossSections(snaps)[0]?.components[component];
    return found ? { found, partial: [] } : { partial: snaps.map((s) => s.id) };
  }

  /**
   * The listing document stored beside a data snapshot, as text (its format is the kind's): from
   * the snapshot's own tags when it carries it (inline-listing.ts), else from its listing snapshot.
   */
  async readListingText(listingSnapshotId: string): Promise<string> {
    const tagged = (await this.restic.snapshots(['rewind'])).find((s) => s.id === listingSnapshotId);
    if (tagged?.labels.inlineListing !== undefined) return readInlineListing(tagged.labels.inlineListing);
    return this.restic.dump(listingSnapshotId, `/${LISTING_FILE}`);
  }

  async readListing(listingSnapshotId: string): Promise<ListingEntry[]> {
    return parseListing(await this.readListingText(listingSnapshotId));
  }

  /** Reads a snapshot's whole tree and checks it holds as many entries as its listing says. */
  async confirmReadable(snapshot: ComponentSnapshot): Promise<void> {
    const nodes = await this.restic.countNodes(snapshot.snapshotId);
    // Fingerprints recorded before `entries` existed (old runs' histories) expect nothing.
    const expected = snapshot.fingerprint.entries ?? 0;
    if (nodes < expected) {
      throw new Error(
        `snapshot ${snapshot.snapshotId.slice(0, 8)} of ${snapshot.component} lists ${nodes} entries, expected ${expected}`,
      );
    }
  }
}
