// What the CLI's `db` commands use of the postgres kind: the component by name, its Flyway
// migrator on an open connection, and turning on WAL archiving. The CLI goes through here, so
// the kind's internals can change without it.
import type { Manifest } from '../../manifest/schema';
import { componentUrl, describeTarget, withPostgres } from './connect';
import { readMigrations } from './flyway';
import type { PostgresComponent } from './kind';
import { Migrator } from './migrator';
import { ManagedCluster } from './pitr';
import { pgBin } from './tools';

export { Migrator };

/** A request the postgres kind cannot serve (wrong kind, missing section): say what and where. */
export class DatabaseRequestError extends Error {
  override name = 'DatabaseRequestError';
}

/** The postgres component `environment/name` of the manifest, or a clear refusal. */
export function postgresComponent(manifest: Manifest, environment: string, name: string): PostgresComponent {
  const component = manifest.environments[environment]?.components[name];
  if (!component) throw new DatabaseRequestError(`environment "${environment}" has no component "${name}"`);
  if (component.kind !== 'postgres')
    throw new DatabaseRequestError(`${environment}/${name} is a ${component.kind} component, not postgres`);
  return component;
}

function urlOf(component: PostgresComponent, what: string, env: NodeJS.ProcessEnv): string {
  try {
    return componentUrl(component, env, what);
  } catch (err) {
    throw new DatabaseRequestError((err as Error).message);
  }
}

/** Runs `fn` with the component's migrator on an open connection; `where` names the database, password hidden. */
export async function withMigrator<T>(
  component: PostgresComponent,
  at: { environment: string; name: string },
  fn: (migrator: Migrator, where: string) => Promise<T>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<T> {
  if (!component.migrations) {
    throw new DatabaseRequestError(
      `${at.environment}/${at.name} has no migrations folder (environments.${at.environment}.components.${at.name}.migrations)`,
    );
  }
  const url = urlOf(component, `${at.environment}/${at.name}`, env);
  const migrations = await readMigrations(component.migrations);
  return withPostgres(url, (client) =>
    fn(
      new Migrator(client, { schema: component.schema, table: component.historyTable, migrations }),
      describeTarget(url),
    ),
  );
}

/** Turns on WAL archiving into the component's archive folder, restarting the cluster if needed. */
export async function enablePointInTimeRecovery(
  component: PostgresComponent,
  at: { environment: string; name: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ archiveDir: string; restarted: boolean }> {
  if (!component.pitr) {
    throw new DatabaseRequestError(
      `${at.environment}/${at.name} has no pitr section (environments.${at.environment}.components.${at.name}.pitr)`,
    );
  }
  const url = urlOf(component, `${at.environment}/${at.name}`, env);
  const major = await withPostgres(url, async (c) =>
    Math.floor(
      Number((await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v) / 10_000,
    ),
  );
  const result = await new ManagedCluster(component.pitr, url, pgBin(major, env)).enableArchiving();
  return { archiveDir: component.pitr.archiveDir, ...result };
}
