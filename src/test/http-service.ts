/**
 * A small but real HTTP service for supervisor/monitor tests: it listens on AMI_STREAMS_TEST_SERVICE_PORT and
 * answers /health, /metrics (Prometheus text) and /_ami/stats like every ami-streams service must. Its feature
 * joins a run through $AMI_STREAMS_FEATURES (src/test/cli.ts sets it), never through the built-in list.
 */

import { defineFeature } from "../core/feature.ts";
import { createHttpListener } from "../core/http/server.ts";
import type { ServiceDef } from "../core/service.ts";

const port = () => Number(process.env.AMI_STREAMS_TEST_SERVICE_PORT);

export const testHttpService: ServiceDef = {
  name: "testsvc",
  summary: "Test HTTP service (a test feature: $AMI_STREAMS_FEATURES names this file)",
  enabled: () => true,
  baseUrl: () => `http://127.0.0.1:${port()}`,
  describe: () => [`testsvc: http://127.0.0.1:${port()}`],
  async start(_config, { log }) {
    let requests = 0;
    const started = Date.now();
    const listener = createHttpListener({
      name: "testsvc",
      log,
      handler(_req, res, target) {
        requests++;
        const body = (type: string, text: string) => {
          res.writeHead(200, { "content-type": type });
          res.end(text);
        };
        const path = target.pathname;
        if (path === "/health") return body("application/json", '{"ok":true}');
        if (path === "/_ami/stats") {
          const up = (Date.now() - started) / 1000;
          return body(
            "application/json",
            JSON.stringify({ requests_total: requests, requests_per_sec: requests / up }),
          );
        }
        if (path === "/metrics") {
          return body(
            "text/plain; version=0.0.4",
            `# TYPE testsvc_requests_total counter\ntestsvc_requests_total ${requests}\n`,
          );
        }
        res.writeHead(404).end();
      },
    });
    await listener.listen(port(), "127.0.0.1");
    log.info("testsvc listening", { port: port() });
    return {
      url: `http://127.0.0.1:${port()}`,
      close: () => listener.close(),
    };
  },
};

export const feature = defineFeature({
  name: "testsvc",
  summary: "A small real HTTP service for tests",
  services: [testHttpService],
});
