import assert from "node:assert/strict";
import { test } from "node:test";
import { parsePrometheusText, sumSamples } from "./prom-text.ts";

// The example from the format's documentation (exposition_formats.md, "Text format example").
const SPEC_EXAMPLE = `# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="0.5"} 129389
http_request_duration_seconds_bucket{le="1"} 133988
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.05"} 3272
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.9"} 9001
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
`;

test("parses the format documentation's example", () => {
  const fams = parsePrometheusText(SPEC_EXAMPLE);
  assert.deepEqual(
    fams.map((f) => [f.name, f.type]),
    [
      ["http_requests_total", "counter"],
      ["msdos_file_access_time_seconds", "untyped"],
      ["metric_without_timestamp_and_labels", "untyped"],
      ["something_weird", "untyped"],
      ["http_request_duration_seconds", "histogram"],
      ["rpc_duration_seconds", "summary"],
    ],
  );
  assert.equal(fams[0].help, "The total number of HTTP requests.");
  assert.deepEqual(fams[0].samples[1], {
    name: "http_requests_total",
    labels: { method: "post", code: "400" },
    value: 3,
    timestampMs: 1395066363000,
  });
  assert.deepEqual(fams[1].samples[0].labels, { path: "C:\\DIR\\FILE.TXT", error: 'Cannot find file:\n"FILE.TXT"' });
  assert.equal(fams[1].samples[0].value, 1.458255915e9);
  assert.equal(fams[3].samples[0].value, Number.POSITIVE_INFINITY);
  assert.equal(fams[3].samples[0].timestampMs, -3982045);
  assert.equal(fams[4].samples.length, 8);
  assert.equal(fams[5].samples.at(-2)?.value, 1.7560473e7);
  assert.equal(sumSamples(fams, "http_requests_total", { code: /^4/ }), 3);
  assert.equal(sumSamples(fams, "http_requests_total"), 1030);
});

test("rejects what the format forbids, naming the line", () => {
  const bad: [string, RegExp][] = [
    ["a 1", /end with a newline/],
    ['a{b="c} 1\n', /unterminated/],
    ['a{b="\\x"} 1\n', /bad escape/],
    ["a{b=c} 1\n", /must be quoted/],
    ['a{1b="c"} 1\n', /bad label name/],
    ["a one\n", /bad value/],
    ["a 1 2 3\n", /trailing text/],
    ["a 1 1.5\n", /bad timestamp/],
    ["# TYPE a counter\n# TYPE a gauge\na 1\n", /second TYPE/],
    ["# TYPE a flubber\n", /bad type/],
    ["a 1\n# TYPE a counter\n", /after its samples/],
    ['a 1\nb 1\na{x="1"} 2\n', /not together/],
    ["a 1\na 2\n", /duplicate sample/],
    ["# TYPE h histogram\nh_bucket 1\n", /without an 'le'/],
    ['a{b="1",b="2"} 1\n', /given twice/],
    ["0a 1\n", /bad sample line/],
  ];
  for (const [text, re] of bad) assert.throws(() => parsePrometheusText(text), re, JSON.stringify(text));
  assert.throws(() => parsePrometheusText("x 1\ny oops\n"), /line 2/);
});
