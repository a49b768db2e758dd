// A loopback OTLP/HTTP (JSON) receiver for trace tests: what an OpenTelemetry Collector would receive from Kaon's
// processes. The collector is outside Kaon, so tests play it.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Span {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  service: string;
}

/** Collects every span posted to `<url>/v1/traces`. */
export async function otlpReceiver(): Promise<{ url: string; spans: Span[]; close(): Promise<void> }> {
  const spans: Span[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      assert.equal(req.url, '/v1/traces');
      assert.match(req.headers['content-type'] ?? '', /application\/json/);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: Omit<Span, 'service'>[] }[] }[];
      };
      for (const rs of body.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ traceId: s.traceId, spanId: s.spanId, ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}), name: s.name, service });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, close: () => new Promise((r) => server.close(() => r())) };
}

/** The trace holding the span `rootOf` picks, once it has the workflow span, `steps` step spans and `attempts` attempt spans. */
export async function traceOf(spans: Span[], rootOf: (s: Span) => boolean, steps: number, attempts: number, timeoutMs = 60_000): Promise<Span[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const root = spans.find(rootOf);
    const trace = root ? spans.filter((s) => s.traceId === root.traceId) : [];
    const count = (prefix: string) => trace.filter((s) => s.name.startsWith(prefix)).length;
    if (root && count('RunWorkflow:') >= 1 && count('StartActivity:') >= steps && count('RunActivity:') >= attempts) {
      await new Promise((r) => setTimeout(r, 1500)); // late duplicates, if any, would show now
      return spans.filter((s) => s.traceId === root.traceId);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for the run's spans; got:\n${spans.map((s) => `${s.traceId} ${s.name}`).join('\n')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

