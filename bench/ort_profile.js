#!/usr/bin/env node
// Per-node times of onnxruntime-node on one model, for bench/op_profile.py.
//
// Usage: node bench/ort_profile.js MODEL THREADS REPEAT [SEED]
//
// Same session settings and input as bench/ort_time.js (intraOpNumThreads=
// THREADS, interOpNumThreads=1, default graph optimisations, so the nodes are
// onnxruntime's optimised ones: Conv with BatchNormalization and activation
// fused in, NCHWc layouts, ...), with onnxruntime's profiler on.  One warm-up
// run, then REPEAT runs; for every node onnxruntime ran, the median of its
// kernel time over the REPEAT runs.  Prints one JSON document:
//   {"median_ms": whole-run median, "nodes": [{"name", "op", "ms", "inputs": [shapes],
//    "outputs": [shapes]}, ...]}   (nodes in execution order)
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { loadOrt, makeFeeds } = require('../tests/interop/ort_common.js');

function median(a) {
  const s = a.slice().sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

async function main() {
  const argv = process.argv.slice(2);
  const threads = Number(argv[1]), repeat = Number(argv[2]);
  const seed = argv.length > 3 ? Number(argv[3]) : 1;
  if (argv.length < 3 || !(threads > 0) || !(repeat > 0)) {
    process.stderr.write('usage: node bench/ort_profile.js MODEL THREADS REPEAT [SEED]\n');
    return 2;
  }
  const ort = loadOrt();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortprof-'));
  const session = await ort.InferenceSession.create(argv[0], {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    enableProfiling: true,
    profileFilePrefix: path.join(dir, 'p'),
  });
  const { feeds } = makeFeeds(ort, session, seed);
  const times = [];
  await session.run(feeds);                 // warm-up
  for (let r = 0; r < repeat; r++) {
    const a = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  session.endProfiling();
  const file = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => path.join(dir, f))[0];
  const events = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.rmSync(dir, { recursive: true, force: true });

  // model_run events delimit the runs; kernel events of run 0 (warm-up) are dropped
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((x, y) => x.ts - y.ts);
  const kernels = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
  const byName = new Map();
  for (const e of kernels) {
    const run = runs.findIndex((r) => e.ts >= r.ts && e.ts <= r.ts + r.dur);
    if (run <= 0) continue;
    const name = e.name.slice(0, -'_kernel_time'.length);
    if (!byName.has(name)) {
      const shapes = (l) => (l || []).map((o) => Object.values(o)[0]);
      byName.set(name, { name, op: e.args.op_name, durs: [], ts: e.ts - runs[run].ts,
                         inputs: shapes(e.args.input_type_shape), outputs: shapes(e.args.output_type_shape) });
    }
    byName.get(name).durs.push(e.dur / 1000);
  }
  const nodes = [...byName.values()].sort((x, y) => x.ts - y.ts).map((n) => ({
    name: n.name, op: n.op, ms: Math.round(median(n.durs) * 1e4) / 1e4, inputs: n.inputs, outputs: n.outputs,
  }));
  process.stdout.write(JSON.stringify({ median_ms: Math.round(median(times) * 1000) / 1000, nodes }) + '\n');
  return 0;
}

main().then((rc) => { process.exitCode = rc; }, (e) => {
  process.stderr.write(`ort_profile: ${e && e.stack ? e.stack : e}\n`);
  process.exitCode = 1;
});
