#!/usr/bin/env node
// onnxruntime's offline optimisation of one model, for the model I/O benchmark
// (bench/io.sh): the thing bnfold's `fold` is compared with.
//
// Usage: node bench/ort_optimize.js MODEL OUT [DATA_NAME]
//
// Creates one InferenceSession (CPU execution provider) with
//   graphOptimizationLevel: 'basic'   (constant folding and the basic rewrites,
//                                     Conv + BatchNormalization fusion among them)
//   optimizedModelFilePath: OUT       (onnxruntime writes the optimised model there)
// which is what `python -m onnxruntime.tools.optimize_model` style offline
// optimisation does.  With DATA_NAME (for a model whose weights are external
// data), the session config entries
//   session.optimized_model_external_initializers_file_name = DATA_NAME
//   session.optimized_model_external_initializers_min_size_in_bytes = 1024
// make onnxruntime write the initializers to DATA_NAME next to OUT (it cannot
// write a model over 2 GiB as one protobuf).  bench/io.sh times the whole node
// process (start-up, session creation, writing OUT); nothing is run.
//
// Prints one JSON line: {"session_ms", "out_bytes", "data_bytes", "ort_version"}.
// Exit 0 ok, 1 error (message on stderr), 2 usage.
//
// onnxruntime-node is looked up by tests/interop/ort_common.js: require() (so
// NODE_PATH works), then build/node/node_modules of the repository.
'use strict';

const fs = require('fs');
const path = require('path');
const { loadOrt, ortVersion } = require('../tests/interop/ort_common.js');

async function main() {
  const argv = process.argv.slice(2);
  if (argv.length < 2 || argv.length > 3) {
    process.stderr.write('usage: node bench/ort_optimize.js MODEL OUT [DATA_NAME]\n');
    return 2;
  }
  const [model, out, dataName] = argv;
  const ort = loadOrt();
  const options = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'basic',
    optimizedModelFilePath: out,
  };
  if (dataName) {
    options.extra = {
      session: {
        optimized_model_external_initializers_file_name: dataName,
        optimized_model_external_initializers_min_size_in_bytes: '1024',
      },
    };
  }
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(model, options);
  const sessionMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (session.release) await session.release();
  let outBytes;
  try {
    outBytes = fs.statSync(out).size;
  } catch (e) {
    throw new Error(`onnxruntime wrote no ${out}`);
  }
  let dataBytes = null;
  if (dataName) {
    try { dataBytes = fs.statSync(path.join(path.dirname(out), dataName)).size; } catch (e) { /* none */ }
  }
  process.stdout.write(JSON.stringify({
    session_ms: Math.round(sessionMs * 1000) / 1000,
    out_bytes: outBytes,
    data_bytes: dataBytes,
    ort_version: ortVersion(),
  }) + '\n');
  return 0;
}

main().then((rc) => { process.exitCode = rc; }, (e) => {
  process.stderr.write(`ort_optimize: ${e && e.message ? e.message : e}\n`);
  process.exitCode = 1;
});
