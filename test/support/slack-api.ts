// A local stand-in for Slack's Web API: it records each call and answers as the real API does
// (`{ ok: true, … }` JSON; `invalid_auth` without a bearer token), so the real @slack/web-api
// client talks to it unchanged through its `slackApiUrl` option. Loopback only.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlackCall {
  method: string;
  token: string | undefined;
  /** The form or JSON body, with `blocks` and `attachments` parsed back from their JSON strings. */
  body: Record<string, unknown>;
  raw: string;
}

export interface SlackApi {
  /** Base URL for `slackApiUrl`: `http://127.0.0.1:PORT/api/`. */
  url: string;
  /** A response_url as Slack hands one to an interaction: replies to it are recorded as `response_url`. */
  responseUrl: string;
  calls: SlackCall[];
  close(): Promise<void>;
}

function read(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (data += c));
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

export async function startSlackApi(): Promise<SlackApi> {
  const calls: SlackCall[] = [];
  let ts = 1_700_000_000;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const raw = await read(req);
      // Interaction replies go to the response_url Slack gave: /response/<anything>, answered "ok".
      if ((req.url ?? '').startsWith('/response/')) {
        calls.push({
          method: 'response_url',
          token: undefined,
          body: JSON.parse(raw || '{}') as Record<string, unknown>,
          raw,
        });
        res.setHeader('content-type', 'text/plain');
        res.end('ok');
        return;
      }
      const method = (req.url ?? '').replace(/^\/api\//, '').split('?')[0]!;
      const type = req.headers['content-type'] ?? '';
      const body: Record<string, unknown> = type.includes('application/json')
        ? (JSON.parse(raw || '{}') as Record<string, unknown>)
        : Object.fromEntries(new URLSearchParams(raw));
      for (const key of ['blocks', 'attachments']) {
        if (typeof body[key] === 'string') body[key] = JSON.parse(body[key]);
      }
      const auth = req.headers.authorization;
      const token = auth?.startsWith('Bearer ') ? auth.slice(7) : (body.token as string | undefined);
      calls.push({ method, token, body, raw });
      res.setHeader('content-type', 'application/json; charset=utf-8');
      if (!token) {
        res.end(JSON.stringify({ ok: false, error: 'not_authed' }));
        return;
      }
      if (method === 'chat.postMessage' || method === 'chat.update') {
        // An update keeps the message's ts; a new message gets the next one.
        const messageTs = method === 'chat.update' ? String(body.ts) : `${++ts}.000100`;
        res.end(
          JSON.stringify({
            ok: true,
            channel: body.channel ?? 'C0000000001',
            ts: messageTs,
            message: { type: 'message', text: body.text, ts: messageTs },
          }),
        );
        return;
      }
      res.end(JSON.stringify({ ok: false, error: 'unknown_method' }));
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/`,
    responseUrl: `http://127.0.0.1:${port}/response/T000/1234/abcd`,
    calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
