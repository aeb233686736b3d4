// Logs as Elasticsearch reads them: JSON lines with Elastic Common Schema field names, secrets
// redacted, errors as error.*; and the shipped Filebeat input reads them as JSON from where
// `rewind start` writes them.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { parse } from 'yaml';
import { createLogger, sdkLogger } from '../src/platform/logger';
import { REPO_ROOT } from './support/harness';

function captured(level = 'info') {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger('rewind-worker', level, sink), lines };
}

describe('logs', () => {
  it('are JSON lines with ECS field names', () => {
    const { logger, lines } = captured();
    logger.info({ workflowId: 'rollback-production-1' }, 'rollback finished');
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(line).toMatchObject({
      'log.level': 'info',
      message: 'rollback finished',
      'service.name': 'rewind-worker',
      'event.dataset': 'rewind-worker',
      'process.pid': process.pid,
      workflowId: 'rollback-production-1',
    });
    expect(line!['ecs.version']).toMatch(/^\d+\.\d+\.\d+$/);
    expect(new Date(line!['@timestamp'] as string).toISOString()).toBe(line!['@timestamp']);
    // pino's own names are gone: Elasticsearch would map them as unknown fields.
    for (const key of ['msg', 'level', 'time', 'pid', 'name']) expect(line).not.toHaveProperty([key]);
  });

  it('put errors under error.* and never write a secret', () => {
    const { logger, lines } = captured();
    const err = new Error('restic: wrong password');
    logger.error({ err, password: 'hunter2', connection: { token: 'xoxb-secret' } }, 'could not open the repository');
    const [line] = lines;
    expect(line).toMatchObject({
      'log.level': 'error',
      error: { type: 'Error', message: 'restic: wrong password' },
      password: '[redacted]',
      connection: { token: '[redacted]' },
    });
    expect((line!.error as { stack_trace: string }).stack_trace).toContain('logging.test.ts');
    expect(JSON.stringify(lines)).not.toMatch(/hunter2|xoxb-secret/);
  });

  it("carry the Temporal SDK's lines without terminal colour codes", () => {
    const { logger, lines } = captured();
    sdkLogger(logger).warn('\u001b[33mWARN\u001b[0m worker poll failed', { taskQueue: 'rewind' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ message: 'WARN worker poll failed', taskQueue: 'rewind', sdk: true });
  });

  it('respect the level', () => {
    const { logger, lines } = captured('warn');
    logger.info('not written');
    logger.warn('written');
    expect(lines.map((l) => l.message)).toEqual(['written']);
  });

  it('ship through the Filebeat input as JSON, dotted keys expanded, from the stack log folder', () => {
    const config = parse(readFileSync(path.join(REPO_ROOT, 'deploy/logging/filebeat.yml'), 'utf8')) as {
      'filebeat.inputs': { type: string; paths: string[]; parsers: { ndjson?: Record<string, unknown> }[] }[];
      'output.elasticsearch': { password: string };
    };
    const [input] = config['filebeat.inputs'];
    expect(input!.type).toBe('filestream');
    expect(input!.paths.every((p) => p.endsWith('/.data/logs/*.log'))).toBe(true);
    expect(input!.parsers.find((p) => p.ndjson)?.ndjson).toMatchObject({ target: '', expand_keys: true });
    // No inline secret: the keystore supplies it.
    expect(config['output.elasticsearch'].password).toBe('${ES_PASSWORD}');
  });
});
