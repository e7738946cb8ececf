#!/usr/bin/env node
// Time one ONNX model under onnxruntime-node, for the evaluator benchmark.
//
// Usage: node bench/ort_time.js MODEL THREADS REPEAT [SEED]
//
// One session (CPU execution provider, intraOpNumThreads=THREADS,
// interOpNumThreads=1, graph optimisations at onnxruntime's default), one
// warm-up run, then REPEAT timed session.run() calls on one fixed seeded
// random input (standard normal float32; symbolic dims -> 1).  Session
// creation and the warm-up are not timed.  The median is the same statistic
// as `bnfold run --repeat`: the element at index floor(REPEAT/2) of the sorted
// times (the upper median when REPEAT is even).
//
// Prints one JSON line: {"median_ms", "runs", "min_ms", "max_ms",
// "session_ms", "threads", "ort_version"}.  Exit 0 ok, 1 error, 2 usage.
//
// onnxruntime-node and the input: tests/interop/ort_common.js, as for the
// interoperability check (with a bool input all false).
'use strict';

const { loadOrt, ortVersion, makeFeeds } = require('../tests/interop/ort_common.js');

function posInt(s) {
  return /^[0-9]+$/.test(s || '') && Number(s) > 0 ? Number(s) : null;
}

async function main() {
  const argv = process.argv.slice(2);
  const threads = posInt(argv[1]);
  const repeat = posInt(argv[2]);
  const seed = argv.length > 3 ? Number(argv[3]) : 1;
  if (argv.length < 3 || argv.length > 4 || !threads || !repeat || !Number.isInteger(seed)) {
    process.stderr.write('usage: node bench/ort_time.js MODEL THREADS REPEAT [SEED]\n');
    return 2;
  }
  const ort = loadOrt();
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(argv[0], {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  const sessionMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const { feeds } = makeFeeds(ort, session, seed);

  let out = await session.run(feeds);          // warm-up, not timed
  const times = [];
  for (let r = 0; r < repeat; r++) {
    for (const k of Object.keys(out)) if (out[k] && out[k].dispose) out[k].dispose();
    const a = process.hrtime.bigint();
    out = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  const sorted = times.slice().sort((x, y) => x - y);
  const r3 = (v) => Math.round(v * 1000) / 1000;
  process.stdout.write(JSON.stringify({
    median_ms: r3(sorted[Math.floor(repeat / 2)]),
    runs: repeat,
    min_ms: r3(sorted[0]),
    max_ms: r3(sorted[repeat - 1]),
    session_ms: r3(sessionMs),
    threads,
    ort_version: ortVersion(),
  }) + '\n');
  if (session.release) await session.release();
  return 0;
}

if (require.main === module) {
  main().then((rc) => { process.exitCode = rc; }, (e) => {
    process.stderr.write(`ort_time: ${e && e.stack ? e.stack : e}\n`);
    process.exitCode = 1;
  });
}
