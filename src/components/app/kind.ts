// The `app` kind, pure half: the running application, brought back to a release by one of three
// strategies. `nginx-blue-green` starts the target release on the idle colour and switches
// nginx's upstream to it; `symlink` points `current` at `releases/<version>` and reloads;
// `command` runs the manifest's commands for systems rewind does not drive itself (kubectl,
// Argo Rollouts, a PaaS). A snapshot of an app records which release runs (and on which
// colour): the release itself is the deployment's business, not the repository's.
import { z } from 'zod';
import { didYouMean, durationField, localPathField, dependsOnField, hostsField } from '../../manifest/fields';
import type { FingerprintSummary, KindDetails } from '../core';
import type { ComponentKind } from '../kind';

export const APP_STRATEGIES = ['nginx-blue-green', 'symlink', 'command'] as const;
export type AppStrategy = (typeof APP_STRATEGIES)[number];

/** Release names become command arguments and file names: plain ones only. */
export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

const commandField = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .describe(
    'A shell command. {{version}}, {{colour}}, {{address}}, {{host}}, {{port}}, {{component}} and {{environment}} are replaced, shell-quoted; the same values are in REWIND_VERSION, REWIND_COLOUR … in its environment.',
  );

const httpUrl = z.url({ protocol: /^https?$/ });

const healthSchema = z
  .strictObject({
    path: z
      .string()
      .startsWith('/', 'must start with "/"')
      .optional()
      .describe('nginx-blue-green: the path asked of each colour directly, e.g. /healthz.'),
    url: httpUrl.optional().describe('symlink and command: the URL that answers when the release is healthy.'),
    status: z.int().min(100).max(599).default(200).describe('The status a healthy answer has.'),
    body: z.string().min(1).optional().describe('Text a healthy answer contains.'),
    successes: z.int().min(1).max(100).default(3).describe('Healthy answers in a row that make the release healthy.'),
    interval: durationField('10ms', '1m').default('250ms').describe('Pause between attempts.'),
    timeout: durationField('100ms', '1h').default('30s').describe('How long the release has to become healthy.'),
  })
  .describe(
    'How rewind tells that a release is healthy before (blue/green) or after (symlink, command) traffic reaches it.',
  );

export type AppHealth = z.output<typeof healthSchema>;

const colourSchema = z.strictObject({
  address: z
    .string()
    .regex(/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:9001')
    .describe('Where this colour listens; nginx proxies to it when it is active.'),
});

const blueGreenSchema = z
  .strictObject({
    upstreamFile: localPathField
      .optional()
      .describe(
        "switch by reload: the file included inside nginx's upstream block; rewind rewrites it with the active colour's server line, runs nginx -t and reloads nginx.",
      ),
    marker: localPathField
      .optional()
      .describe(
        'switch without reload: a folder holding one empty file named after the active colour; rewind renames it, nginx tests it per request (if (-f …)). No reload, so no keep-alive connection is closed.',
      ),
    nginx: z
      .array(z.string().min(1))
      .min(1)
      .default(['nginx'])
      .describe(
        'The nginx command and its options (e.g. ["nginx", "-c", "/etc/nginx/nginx.conf"]); rewind adds -t and -s reload.',
      ),
    url: httpUrl.describe('Where clients reach the application through nginx: the switch is confirmed there.'),
    colours: z
      .record(z.string().regex(/^[a-z][a-z0-9-]{0,19}$/, 'must be a short lowercase name'), colourSchema)
      .refine((c) => Object.keys(c).length === 2, 'must name exactly two colours, e.g. blue and green')
      .refine(
        (c) => new Set(Object.values(c).map((v) => v.address)).size === Object.keys(c).length,
        'each colour needs its own address',
      ),
    start: commandField.describe(
      'Starts {{version}} on the idle {{colour}} at {{address}} and returns (detach the server, e.g. systemctl start app@{{colour}}).',
    ),
    keepPrevious: durationField('0s', '30d')
      .default('15m')
      .describe('How long the previous colour keeps running after a switch, so that switching back is instant.'),
    stop: commandField
      .optional()
      .describe(
        'Stops the previous {{colour}} (which ran {{version}}) once keepPrevious has passed after a completed rollback, unless traffic is back on it. Without it, rewind leaves it running.',
      ),
  })
  .refine((b) => (b.upstreamFile === undefined) !== (b.marker === undefined), {
    message: 'set exactly one of upstreamFile (switch by reload) or marker (switch without reload)',
  })
  .describe('nginx-blue-green: two colours, nginx sends traffic to one.');

const symlinkSchema = z
  .strictObject({
    releases: localPathField.describe('The folder of releases, one folder per version: releases/<version>.'),
    current: localPathField.describe('The symbolic link that names the running release; replaced atomically.'),
    reload: commandField.optional().describe('Run after the link changes, e.g. systemctl reload app.'),
  })
  .describe('symlink: current → releases/<version>.');

const commandsSchema = z
  .strictObject({
    status: commandField.describe('Prints the running version (first line, or JSON with `field`).'),
    field: z.string().min(1).optional().describe('The dotted JSON field of the status output that holds the version.'),
    fingerprint: commandField
      .optional()
      .describe(
        'Prints what identifies the running system beyond its version (an image digest, a rendered spec). rewind keeps its SHA-256 in the fingerprint: verify and "already at target" compare it with the target snapshot\'s.',
      ),
    switch: commandField.describe('Brings the system to {{version}}; rewind then reads status until it says so.'),
    rollback: commandField
      .optional()
      .describe(
        'Used instead of switch for a rollback step (e.g. kubectl rollout undo deploy/app); status must then report the target.',
      ),
    retryExitCodes: z
      .array(z.int().min(1).max(255))
      .default([])
      .describe('Exit codes that mean "try again later"; any other non-zero exit code fails the step at once.'),
  })
  .describe('command: the system is driven by your commands.');

export const appComponentSchema = z
  .strictObject({
    kind: z.literal('app'),
    strategy: z.enum(APP_STRATEGIES).describe('How the application is switched between releases.'),
    blueGreen: blueGreenSchema.optional(),
    symlink: symlinkSchema.optional(),
    commands: commandsSchema.optional(),
    version: z
      .strictObject({
        path: z.string().startsWith('/', 'must start with "/"').default('/version'),
        field: z.string().min(1).optional().describe('The dotted JSON field that holds the version.'),
      })
      .optional()
      .describe(
        'nginx-blue-green: where each colour answers the version it runs (text, or JSON with `field`); default /version.',
      ),
    health: healthSchema.optional(),
    timeout: durationField('1s', '1h')
      .default('2m')
      .describe('How long one command (start, reload, switch, status) may run before it is stopped.'),
    dependsOn: dependsOnField,
    hosts: hostsField,
    description: z.string().optional(),
  })
  .superRefine((c, ctx) => {
    const section = { 'nginx-blue-green': 'blueGreen', symlink: 'symlink', command: 'commands' } as const;
    const wanted = section[c.strategy];
    if (c[wanted] === undefined)
      ctx.addIssue({ code: 'custom', path: [wanted], message: `strategy ${c.strategy} needs a ${wanted} section` });
    for (const other of Object.values(section))
      if (other !== wanted && c[other] !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: [other],
          message: `belongs to another strategy; strategy ${c.strategy} reads ${wanted}`,
        });
    if (c.strategy === 'nginx-blue-green') {
      if (c.health?.url !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['health', 'url'],
          message: 'nginx-blue-green checks each colour directly: give health.path, not health.url',
        });
      if (c.health === undefined || c.health.path === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['health'],
          message: 'nginx-blue-green needs health.path: the idle colour must prove healthy before traffic moves to it',
        });
    } else if (c.version !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['version'],
        message: `only nginx-blue-green reads version (the path each colour answers on); strategy ${c.strategy} learns the version from ${c.strategy === 'symlink' ? "the release folder's name" : 'the status command'}`,
      });
    }
    if (c.strategy !== 'nginx-blue-green' && c.health?.path !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['health', 'path'],
        message: `strategy ${c.strategy} takes health.url, not health.path`,
      });
    }
    // A misspelt {{value}} would fail only at execute, after approval: refuse it here.
    for (const [at, template] of commandTemplates(c)) {
      const allowed = TEMPLATE_VALUES[at.join('.')] ?? [];
      for (const [, name] of template.matchAll(TEMPLATE_PATTERN)) {
        const value = name!.trim();
        if (allowed.includes(value)) continue;
        const hint = didYouMean(value, allowed);
        ctx.addIssue({
          code: 'custom',
          path: at,
          message: `uses {{${value}}}, which this command has no value for (it has: ${allowed.map((a) => `{{${a}}}`).join(', ')})`,
          ...(hint ? { params: { hint } } : {}),
        });
      }
    }
  })
  .describe('The running application: blue/green behind nginx, a symlinked release folder, or your own commands.');

export type AppComponent = z.output<typeof appComponentSchema>;

/** What renderCommand replaces (src/components/app/run.ts); other braces, e.g. kubectl's Go templates, stay. */
export const TEMPLATE_PATTERN = /\{\{\s*([a-z]+)\s*\}\}/g;
const EVERY_COMMAND = ['component', 'environment'];
/** The values each command is given (src/components/app/strategies.ts), by its key. */
const TEMPLATE_VALUES: Record<string, string[]> = {
  'blueGreen.start': [...EVERY_COMMAND, 'version', 'colour', 'address', 'host', 'port'],
  'blueGreen.stop': [...EVERY_COMMAND, 'version', 'colour', 'address', 'host', 'port'],
  'symlink.reload': [...EVERY_COMMAND, 'version'],
  'commands.status': EVERY_COMMAND,
  'commands.fingerprint': EVERY_COMMAND,
  'commands.switch': [...EVERY_COMMAND, 'version', 'from'],
  'commands.rollback': [...EVERY_COMMAND, 'version', 'from'],
};

function commandTemplates(c: {
  blueGreen?: { start: string; stop?: string | undefined } | undefined;
  symlink?: { reload?: string | undefined } | undefined;
  commands?: Record<string, unknown> | undefined;
}): [string[], string][] {
  const found: [string[], string][] = [];
  const add = (at: string[], value: unknown) => {
    if (typeof value === 'string') found.push([at, value]);
  };
  add(['blueGreen', 'start'], c.blueGreen?.start);
  add(['blueGreen', 'stop'], c.blueGreen?.stop);
  add(['symlink', 'reload'], c.symlink?.reload);
  for (const key of ['status', 'fingerprint', 'switch', 'rollback']) add(['commands', key], c.commands?.[key]);
  return found;
}

/** The fingerprint's details: the release that runs, and where. */
export interface AppFingerprintDetails extends KindDetails {
  kind: 'app';
  strategy: AppStrategy;
  /** The running release; absent when nothing answers. */
  version?: string;
  /** nginx-blue-green: the colour that receives traffic. */
  colour?: string;
  /** command: the SHA-256 of the fingerprint command's output. */
  identity?: string;
}

export interface AppRestoreDetails extends KindDetails {
  kind: 'app';
  strategy: AppStrategy;
  from: { version?: string; colour?: string };
  to: { version: string; colour?: string };
  /** blue/green: the target release was started on the idle colour first. */
  started?: boolean;
  /** How long the switch itself took (upstream rewrite to confirmed, link rename to healthy). */
  switchMs: number;
  /** blue/green: until when the previous colour keeps running (then `stop` runs, if set). */
  previousKeptUntil?: string;
}

/** What a completed blue/green rollback leaves for later: the colour to stop. */
export interface AppFollowUpDetails extends KindDetails {
  kind: 'app';
  colour: string;
  version?: string;
}

export function appDetailsOf<D extends KindDetails>(value: { details?: KindDetails | undefined }): D | undefined {
  return value.details?.kind === 'app' ? (value.details as D) : undefined;
}

const place = (d: { version?: string | undefined; colour?: string | undefined }) =>
  `${d.version ?? 'nothing'}${d.colour ? ` on ${d.colour}` : ''}`;

function location(c: AppComponent): string {
  switch (c.strategy) {
    case 'nginx-blue-green':
      return `${c.blueGreen!.url} (nginx ${Object.keys(c.blueGreen!.colours).join('/')})`;
    case 'symlink':
      return c.symlink!.current;
    case 'command':
      return `commands (${c.commands!.status.split(/\s/)[0]} …)`;
  }
}

export const appKind = {
  name: 'app',
  schema: appComponentSchema,
  // The state is which release runs: read live, it is exactly what the safety snapshot records.
  plansFromLiveState: true,
  strategies: [],
  driftAspects: ['version'],
  location,
  resolvePaths: (c, resolve) => ({
    ...c,
    ...(c.blueGreen
      ? {
          blueGreen: {
            ...c.blueGreen,
            ...(c.blueGreen.upstreamFile ? { upstreamFile: resolve(c.blueGreen.upstreamFile) } : {}),
            ...(c.blueGreen.marker ? { marker: resolve(c.blueGreen.marker) } : {}),
          },
        }
      : {}),
    ...(c.symlink
      ? { symlink: { ...c.symlink, releases: resolve(c.symlink.releases), current: resolve(c.symlink.current) } }
      : {}),
  }),
  localFolders: (c) => [
    ...(c.symlink ? [{ key: 'symlink.releases', dir: c.symlink.releases, written: false }] : []),
    ...(c.blueGreen?.marker ? [{ key: 'blueGreen.marker', dir: c.blueGreen.marker, written: false }] : []),
    // The upstream file is rewritten by rename inside its folder: the folder must be there.
    ...(c.blueGreen?.upstreamFile
      ? [
          {
            key: 'blueGreen.upstreamFile',
            dir: c.blueGreen.upstreamFile.slice(0, c.blueGreen.upstreamFile.lastIndexOf('/')) || '/',
            written: false,
          },
        ]
      : []),
  ],
  refuse: () => undefined,
  stepOptions: () => ({}),
  legacyDetails: () => undefined,
  present: {
    contents(fingerprint: FingerprintSummary) {
      const d = appDetailsOf<AppFingerprintDetails>(fingerprint);
      return d ? `release ${place(d)}` : 'release unknown';
    },
    planCounts: () => '',
    outcome(outcome) {
      const d = appDetailsOf<AppRestoreDetails>(outcome);
      const note = outcome.note ? `: ${outcome.note}` : '';
      if (!d) return `switched${note}`;
      const started = d.started ? `, started ${d.to.version} on ${d.to.colour} first` : '';
      const kept = d.previousKeptUntil ? `, ${d.from.colour} kept running until ${d.previousKeptUntil}` : '';
      return `switched ${place(d.from)} → ${place(d.to)} in ${d.switchMs} ms${started}${kept}${note}`;
    },
  },
} satisfies ComponentKind<AppComponent>;
