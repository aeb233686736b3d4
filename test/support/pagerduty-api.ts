// A local stand-in for PagerDuty's Events API v2 (POST /v2/enqueue over HTTPS, as the real one
// and its client insist), with a self-signed certificate made by openssl for 127.0.0.1; the
// client trusts it through `pagerduty.caFile`. It records each event and answers as PagerDuty
// does: 202 `{ status: 'success', message: 'Event processed', dedup_key }`. Loopback only.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface PagerDutyEvent {
  routing_key: string;
  event_action: 'trigger' | 'acknowledge' | 'resolve';
  dedup_key?: string;
  payload?: { summary: string; severity: string; source: string; custom_details?: Record<string, unknown> };
  links?: { href: string; text?: string }[];
}

export interface PagerDutyApi {
  /** `127.0.0.1:PORT`, for `pagerduty.server`. */
  server: string;
  caFile: string;
  events: PagerDutyEvent[];
  close(): Promise<void>;
}

export async function startPagerDutyApi(dir: string): Promise<PagerDutyApi> {
  const key = path.join(dir, 'pagerduty.key');
  const cert = path.join(dir, 'pagerduty.crt');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  const events: PagerDutyEvent[] = [];
  const server: Server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.method !== 'POST' || req.url !== '/v2/enqueue') {
        res.statusCode = 404;
        res.end(JSON.stringify({ status: 'invalid', message: 'not found' }));
        return;
      }
      const body = JSON.parse(raw || '{}') as PagerDutyEvent;
      if (!body.routing_key || !['trigger', 'acknowledge', 'resolve'].includes(body.event_action)) {
        res.statusCode = 400;
        res.end(
          JSON.stringify({
            status: 'invalid event',
            message: 'Event object is invalid',
            errors: ['routing_key or event_action'],
          }),
        );
        return;
      }
      events.push(body);
      res.statusCode = 202;
      res.end(
        JSON.stringify({ status: 'success', message: 'Event processed', dedup_key: body.dedup_key ?? 'generated' }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server: `127.0.0.1:${port}`,
    caFile: cert,
    events,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
