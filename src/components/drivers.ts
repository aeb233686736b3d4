// The component kinds' I/O halves, by kind name: what an agent uses to snapshot, restore,
// assess and verify a component. The mapped type makes a kind registered in registry.ts
// without a driver here a compile error.
import type { ComponentDriver } from './driver';
import { createAppDriver } from './app/driver';
import { createFilesDriver } from './files/driver';
import { createPostgresDriver } from './postgres/driver';
import type { Component, ComponentOf, KindName } from './registry';

export interface DriverDeps {
  /** The agent's environment variables (database URLs, sample keys). */
  env: NodeJS.ProcessEnv;
}

const FACTORIES: { [K in KindName]: (deps: DriverDeps) => ComponentDriver<ComponentOf<K>> } = {
  files: () => createFilesDriver(),
  postgres: (deps) => createPostgresDriver({ env: deps.env }),
  app: () => createAppDriver(),
};

/** One driver per kind, made once per agent (drivers keep caches, such as file hashes). */
export function createDrivers(deps: DriverDeps): (component: Component) => ComponentDriver<Component> {
  const drivers = new Map<string, ComponentDriver<Component>>();
  return (component) => {
    let driver = drivers.get(component.kind);
    if (!driver) {
      driver = FACTORIES[component.kind](deps);
      drivers.set(component.kind, driver);
    }
    return driver;
  };
}
