// A burst of requests about one thing reads it once (src/api/server.ts).
/**
 * Answers kept for a few seconds, so that a burst of requests about one thing (an alert group's
 * deliveries, clicks on one run) reads it once; a failed read is not kept. Past a thousand keys the
 * expired ones go, so the map stays small.
 */
export class Recent<V> {
  private readonly kept = new Map<string, { at: number; value: Promise<V> }>();

  constructor(private readonly ttlMs: number) {}

  get(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.kept.get(key);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.value;
    const value = load();
    this.set(key, value);
    value.catch(() => {
      if (this.kept.get(key)?.value === value) this.kept.delete(key);
    });
    return value;
  }

  set(key: string, value: Promise<V>): void {
    if (this.kept.size >= 1_000)
      for (const [k, kept] of this.kept) if (Date.now() - kept.at >= this.ttlMs) this.kept.delete(k);
    this.kept.set(key, { at: Date.now(), value });
  }
}
