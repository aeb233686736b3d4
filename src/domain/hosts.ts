// Hosts of one component. A component that runs on several hosts (`hosts:` in the manifest) is
// expanded when the manifest is loaded into one component per host, named `<component>@<host>`;
// each is served by the agent started on that host (`rewind agent --env E --host H`), which
// listens on the environment's task queue plus `@<host>`. Everything downstream (cross-sections,
// plans, steps, waves, compensation, drift) sees ordinary components. Pure: workflows import it.

export const HOST_SEPARATOR = '@';

/** Host names: what `hostname -s` usually prints, lowercase. */
export const HOST_PATTERN = /^[a-z0-9][a-z0-9.-]{0,62}$/;

/** `app@web1` → `{ component: 'app', host: 'web1' }`; `app` → `{ component: 'app' }`. */
export function splitHost(name: string): { component: string; host?: string } {
  const at = name.indexOf(HOST_SEPARATOR);
  return at < 0 ? { component: name } : { component: name.slice(0, at), host: name.slice(at + 1) };
}

export function hostMember(component: string, host: string): string {
  return `${component}${HOST_SEPARATOR}${host}`;
}

/** The task queue of a host's agent: the environment's, plus `@host`; the environment's own without a host. */
export function hostTaskQueue(envTaskQueue: string, host: string | undefined): string {
  return host === undefined ? envTaskQueue : `${envTaskQueue}${HOST_SEPARATOR}${host}`;
}

/** The task queue whose agent runs a component's steps: its host's, or the environment's. */
export function componentTaskQueue(envTaskQueue: string, component: string): string {
  return hostTaskQueue(envTaskQueue, splitHost(component).host);
}

/** The hosts that components (by name, `component@host`) run on, sorted. */
export function hostsAmong(componentNames: Iterable<string>): string[] {
  return [...new Set([...componentNames].flatMap((n) => splitHost(n).host ?? []))].sort();
}
