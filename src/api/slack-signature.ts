// Slack's request signing (https://api.slack.com/authentication/verifying-requests-from-slack):
// `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:<timestamp>:<raw body>")>`, with
// `X-Slack-Request-Timestamp` within five minutes. A signature seen before within that window
// is a replay: refused, so that a captured click cannot be sent again.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SLACK_WINDOW_SECONDS = 5 * 60;

export function slackSignature(secret: string, timestamp: string, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

/** The headers Slack sends with a signed interaction (the body form-encoded), as of `ageSeconds` ago. */
export function signedSlackHeaders(secret: string, body: string, ageSeconds = 0): Record<string, string> {
  const timestamp = String(Math.floor(Date.now() / 1000) - ageSeconds);
  return {
    'content-type': 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': timestamp,
    'x-slack-signature': slackSignature(secret, timestamp, body),
  };
}

/** Signatures already accepted, kept as long as their timestamp is inside the window. */
export class SeenSignatures {
  private readonly seen = new Map<string, number>();

  /** True the first time; false for a signature seen within the window. */
  remember(signature: string, timestampSeconds: number, nowSeconds: number): boolean {
    for (const [sig, ts] of this.seen) if (nowSeconds - ts > SLACK_WINDOW_SECONDS) this.seen.delete(sig);
    if (this.seen.has(signature)) return false;
    this.seen.set(signature, timestampSeconds);
    return true;
  }
}

/** Undefined when the request is Slack's, else why not. */
export function slackRequestRefusal(args: {
  secret: string;
  timestamp: string | undefined;
  signature: string | undefined;
  body: string;
  seen: SeenSignatures;
  nowSeconds?: number;
}): string | undefined {
  const now = args.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (!args.timestamp || !args.signature)
    return 'not signed by Slack (no X-Slack-Signature or X-Slack-Request-Timestamp)';
  if (!/^\d{1,12}$/.test(args.timestamp)) return 'X-Slack-Request-Timestamp is not a number of seconds';
  const ts = Number(args.timestamp);
  if (Math.abs(now - ts) > SLACK_WINDOW_SECONDS)
    return `the request is ${Math.abs(now - ts)} s from now; Slack's are within ${SLACK_WINDOW_SECONDS} s (a replay, or a clock off)`;
  const expected = Buffer.from(slackSignature(args.secret, args.timestamp, args.body));
  const given = Buffer.from(args.signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return 'the Slack signature does not match';
  if (!args.seen.remember(args.signature, ts, now)) return 'this exact request was already received (a replay)';
  return undefined;
}
