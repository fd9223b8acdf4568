// An instrumented "order service" that loads order items one query at a time
// (an N+1), exported with the OpenTelemetry JavaScript SDK's OTLP/HTTP JSON
// exporter. A local HTTP server stands in for the collector and writes the
// request body it receives to the file named on the command line.
//
// Usage: node n_plus_one_app.js OUT.json
'use strict';

const http = require('node:http');
const fs = require('node:fs');
const { trace, context } = require('@opentelemetry/api');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const out = process.argv[2];
if (!out) {
  console.error('usage: node n_plus_one_app.js OUT.json');
  process.exit(2);
}

const bodies = [];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    bodies.push({ type: req.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
});

server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  const exporter = new OTLPTraceExporter({ url: `http://127.0.0.1:${port}/v1/traces` });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'order-svc' }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('order-repository', '1.0.0');

  const root = tracer.startSpan('POST /api/orders/{id}/submit', {
    attributes: { 'http.route': 'POST /api/orders/{id}/submit', 'http.request.method': 'POST' },
  });
  const ctx = trace.setSpan(context.active(), root);
  for (let id = 1; id <= 6; id++) {
    const span = tracer.startSpan(
      'SELECT order_item',
      {
        attributes: {
          'db.system': 'postgresql',
          'db.query.text': `SELECT * FROM order_item WHERE order_id = ${id}`,
          'code.function.name': 'com.example.OrderItemRepository.findByOrderId',
          'code.file.path': 'src/repository/order_item.js',
          'code.line.number': 42,
        },
      },
      ctx,
    );
    await new Promise((r) => setTimeout(r, 2));
    span.end();
  }
  root.end();
  await provider.forceFlush();
  await provider.shutdown();
  server.close();
  const json = bodies.filter((b) => (b.type || '').startsWith('application/json'));
  if (json.length === 0) {
    console.error(`no OTLP/JSON request received (got ${bodies.length} requests)`);
    process.exit(1);
  }
  // One ExportTraceServiceRequest per line, as the Collector's file exporter writes.
  fs.writeFileSync(out, json.map((b) => b.body.replace(/\n/g, '')).join('\n') + '\n');
});
