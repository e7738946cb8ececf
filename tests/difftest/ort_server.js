#!/usr/bin/env node
// The onnxruntime side of the differential test (tests/difftest/): one
// long-lived process per worker, so that onnxruntime-node is loaded once.
//
// Protocol: one JSON request per line on stdin, one JSON answer per line on
// stdout.
//   {"model": PATH, "inputs": {NAME: NPY_PATH, ...}, "outdir": DIR}
//     -> {"ok": true, "outputs": [{"name", "file", "type", "dims"}]}
//        each output k written as DIR/ort_<k>.npy (float16 as '<f2',
//        bfloat16 as its bit patterns '<u2', with "type": "bfloat16")
//     -> {"ok": false, "stage": "load" | "run", "error": "..."}
//   {"quit": true} -> exits
// A crash of onnxruntime (a signal) ends the process: the caller sees EOF and
// starts a new one.
//
// onnxruntime-node is found as tests/interop/ort_common.js finds it
// (loadOrt); the .npy writer is run_compare.js's npyBytes.
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');
const { loadOrt } = require('../interop/ort_common.js');
const { npyBytes } = require('../interop/run_compare.js');

const ort = loadOrt();

// --- .npy reader (v1.0 / v2.0, little-endian, C order) ----------------------
const DESCR_TYPE = { '<f4': 'float32', '<f8': 'float64', '<f2': 'float16', '<i8': 'int64',
  '<i4': 'int32', '|b1': 'bool', '|u1': 'uint8', '<u2': 'bfloat16' };
const ARRAY = { float32: Float32Array, float64: Float64Array, float16: Uint16Array,
  bfloat16: Uint16Array, int64: BigInt64Array, int32: Int32Array, bool: Uint8Array,
  uint8: Uint8Array };

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim())
    .filter((s) => s).map(Number);
  const type = DESCR_TYPE[descr];
  if (!type) throw new Error(`${file}: dtype ${descr} not supported`);
  const body = buf.subarray(hstart + hlen);
  const A = ARRAY[type];
  const n = shape.reduce((a, b) => a * b, 1);
  const copy = new Uint8Array(n * A.BYTES_PER_ELEMENT);
  copy.set(body.subarray(0, copy.length));
  return { type, shape, data: new A(copy.buffer) };
}

function tensorFor(t) {
  if (t.type === 'bfloat16') throw new Error('bfloat16 inputs are not supported by onnxruntime-node');
  const data = t.type === 'bool' ? Uint8Array.from(t.data) : t.data;
  return new ort.Tensor(t.type, data, t.shape);
}

function npyOut(t) {
  // the writer of run_compare.js knows float32/float64/ints/bool; float16 as '<f2'
  if (t.type === 'float16' || t.type === 'bfloat16') {
    const u16 = t.data instanceof Uint16Array ? t.data : new Uint16Array(t.data.buffer);
    const descr = t.type === 'float16' ? '<f2' : '<u2';
    const shp = t.dims.length === 1 ? `(${t.dims[0]},)` : `(${t.dims.join(', ')})`;
    let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shp}, }`;
    const pad = (64 - ((10 + header.length + 1) % 64)) % 64;
    header += ' '.repeat(pad) + '\n';
    const pre = Buffer.alloc(10);
    pre.write('\x93NUMPY', 0, 'latin1');
    pre[6] = 1;
    pre.writeUInt16LE(header.length, 8);
    return Buffer.concat([pre, Buffer.from(header, 'latin1'),
      Buffer.from(u16.buffer, u16.byteOffset, u16.byteLength)]);
  }
  return npyBytes(t.type, t.dims, t.data);
}

async function handle(req) {
  let sess;
  try {
    sess = await ort.InferenceSession.create(req.model, { graphOptimizationLevel: 'disabled',
      intraOpNumThreads: 1, interOpNumThreads: 1 });
  } catch (e) {
    return { ok: false, stage: 'load', error: String(e && e.message ? e.message : e) };
  }
  try {
    const feeds = {};
    for (const [name, file] of Object.entries(req.inputs || {})) feeds[name] = tensorFor(readNpy(file));
    const res = await sess.run(feeds);
    const outputs = [];
    fs.mkdirSync(req.outdir, { recursive: true });
    sess.outputNames.forEach((name, k) => {
      const t = res[name];
      const file = path.join(req.outdir, `ort_${k}.npy`);
      fs.writeFileSync(file, npyOut(t));
      outputs.push({ name, file, type: t.type, dims: Array.from(t.dims) });
    });
    return { ok: true, outputs };
  } catch (e) {
    return { ok: false, stage: 'run', error: String(e && e.message ? e.message : e) };
  } finally {
    try { await sess.release(); } catch (e) { /* ignore */ }
  }
}

async function main() {
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let req;
    try { req = JSON.parse(line); } catch (e) {
      process.stdout.write(JSON.stringify({ ok: false, stage: 'protocol', error: 'bad JSON' }) + '\n');
      continue;
    }
    if (req.quit) break;
    const ans = await handle(req);
    process.stdout.write(JSON.stringify(ans) + '\n');
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
