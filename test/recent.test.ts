// The API's short-lived answers (src/api/recent.ts): a burst reads once, a failure is not kept,
// and an answer older than its time is read again.
import { Recent } from '../src/api/recent';

describe('Recent', () => {
  afterEach(() => jest.useRealTimers());

  it('reads once for a burst, and again once the answer is older than its time', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const recent = new Recent<number>(2_000);
    let reads = 0;
    const load = () => Promise.resolve(++reads);
    const burst = await Promise.all(Array.from({ length: 50 }, () => recent.get('run-1', load)));
    expect(new Set(burst)).toEqual(new Set([1]));
    expect(await recent.get('run-2', load)).toBe(2);
    jest.setSystemTime(1_000_000 + 1_999);
    expect(await recent.get('run-1', load)).toBe(1);
    jest.setSystemTime(1_000_000 + 2_000);
    expect(await recent.get('run-1', load)).toBe(3);
    expect(reads).toBe(3);
  });

  it('does not keep a failed read: the next request reads again', async () => {
    const recent = new Recent<string>(60_000);
    await expect(recent.get('k', () => Promise.reject(new Error('store down')))).rejects.toThrow('store down');
    await expect(recent.get('k', () => Promise.resolve('read again'))).resolves.toBe('read again');
  });

  it('keeps an answer set from outside, and drops expired keys once it holds a thousand', async () => {
    jest.useFakeTimers({ now: 5_000_000 });
    const recent = new Recent<string>(1_000);
    recent.set('group', Promise.resolve('just started'));
    await expect(recent.get('group', () => Promise.resolve('from the store'))).resolves.toBe('just started');
    for (let i = 0; i < 1_000; i++) void recent.get(`old-${i}`, () => Promise.resolve('old'));
    jest.setSystemTime(5_000_000 + 1_000);
    void recent.get('new', () => Promise.resolve('new'));
    expect((recent as unknown as { kept: Map<string, unknown> }).kept.size).toBe(1);
  });
});
