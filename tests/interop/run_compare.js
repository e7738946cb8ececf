#!/usr/bin/env node
// Check bnfold's own evaluator (`bnfold run`) against onnxruntime-node on one model.
//
// Usage: node tests/interop/run_compare.js BNFOLD MODEL WORKDIR [SEED [THREADS]]
//
// The inputs are the seeded ones of compare.js (ort_common.js makeFeeds: same
// seed -> same tensors): one per graph input, shapes from onnxruntime's input
// metadata with symbolic or unknown dims -> 1 (symbolic ones are also passed
// to bnfold as --dim NAME=1).  A model with bool inputs is run twice, as in compare.js (bool
// inputs all-false, then all-true), in WORKDIR/bool_false and WORKDIR/bool_true
// instead of WORKDIR.  onnxruntime runs the model on them; each input is written as
// WORKDIR/input_<i>.npy (npy v1.0, little-endian, C order, written here) and
//   BNFOLD run MODEL --input NAME=WORKDIR/input_<i>.npy ... \
//                    --output-dir WORKDIR/out --threads THREADS
// writes WORKDIR/out/output_<k>.pb, an ONNX TensorProto per graph output in
// graph-output order, read back here with a minimal protobuf reader.
// An output passes iff the name (when stored) and shape agree with
// onnxruntime's and max|diff| <= REL_TOL * max|ort| (REL_TOL = 1e-4), all
// values finite.  Prints one line per output, then one JSON line.
// Exit: 0 pass, 1 fail (including bnfold/onnxruntime errors; an operator the
// evaluator lacks is reported in "error"), 2 usage.
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { REL_TOL, loadOrt, boolVariants, makeFeeds, diffStats, recordDiff, Verdict, runCheck,
  runMain, halfValue, tensorValues, relTol } = require('./ort_common.js');

// --- .npy writer (format version 1.0) ---------------------------------------
const NPY_DESCR = { float32: '<f4', float64: '<f8', int64: '<i8', int32: '<i4', bool: '|b1',
  uint8: '|u1', int8: '|i1', float16: '<f2' };

function npyBytes(type, shape, data) {
  const descr = NPY_DESCR[type];
  if (!descr) throw new Error(`no .npy dtype for input type ${type}`);
  const shp = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shp}, }`;
  // magic(6) + version(2) + header length(2) + header, padded with spaces to
  // a multiple of 64 bytes and terminated by '\n'
  const pad = (64 - ((10 + header.length + 1) % 64)) % 64;
  header += ' '.repeat(pad) + '\n';
  if (header.length > 0xffff) throw new Error('npy header too long for version 1.0');
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  // typed arrays are in host order; every platform node runs on here is little-endian
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('big-endian host');
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), body]);
}

// --- minimal protobuf reader for onnx.TensorProto ----------------------------
class Reader {
  constructor(buf) { this.buf = buf; this.pos = 0; }
  eof() { return this.pos >= this.buf.length; }
  varint() {                       // BigInt, up to 64 bits
    let v = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      const b = this.buf[this.pos++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return BigInt.asUintN(64, v);
      shift += 7n;
    }
    throw new Error('varint longer than 10 bytes');
  }
  int64() { return Number(BigInt.asIntN(64, this.varint())); }
  bytes() {
    const n = Number(this.varint());
    if (this.pos + n > this.buf.length) throw new Error('length-delimited field runs past the end');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  skip(wt) {
    if (wt === 0) this.varint();
    else if (wt === 1) this.pos += 8;
    else if (wt === 2) this.bytes();
    else if (wt === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wt}`);
    if (this.pos > this.buf.length) throw new Error('field runs past the end');
  }
}

const DT = { 1: 'float32', 6: 'int32', 7: 'int64', 9: 'bool', 10: 'float16', 11: 'float64' };

// returns { name, dims, dataType, type, values (Float64Array-like numbers) }
function parseTensorProto(buf) {
  const r = new Reader(buf);
  const t = { name: null, dims: [], dataType: 0, raw: null, floatData: [], doubleData: [],
    int64Data: [], int32Data: [] };
  // a repeated scalar field: packed (wire type 2) or one value per tag
  const repeated = (wt, scalarWt, one, into) => {
    if (wt === 2) {
      const sub = new Reader(r.bytes());
      while (!sub.eof()) into.push(one(sub));
    } else if (wt === scalarWt) {
      into.push(one(r));
    } else {
      throw new Error(`unexpected wire type ${wt} for a repeated field`);
    }
  };
  const f32 = (rd) => { const v = rd.buf.readFloatLE(rd.pos); rd.pos += 4; return v; };
  const f64 = (rd) => { const v = rd.buf.readDoubleLE(rd.pos); rd.pos += 8; return v; };
  while (!r.eof()) {
    const key = Number(r.varint());
    const field = key >>> 3;
    const wt = key & 7;
    switch (field) {
      case 1: repeated(wt, 0, (rd) => rd.int64(), t.dims); break;
      case 2: if (wt !== 0) throw new Error('data_type: wrong wire type'); t.dataType = r.int64(); break;
      case 4: repeated(wt, 5, f32, t.floatData); break;
      case 5: repeated(wt, 0, (rd) => Number(BigInt.asIntN(32, rd.varint())), t.int32Data); break;
      case 7: repeated(wt, 0, (rd) => rd.int64(), t.int64Data); break;
      case 8: if (wt !== 2) throw new Error('name: wrong wire type'); t.name = r.bytes().toString('utf8'); break;
      case 9: if (wt !== 2) throw new Error('raw_data: wrong wire type'); t.raw = r.bytes(); break;
      case 10: repeated(wt, 1, f64, t.doubleData); break;
      case 13: throw new Error('tensor uses external_data');
      default: r.skip(wt);
    }
  }
  if (r.pos !== buf.length) throw new Error('truncated message');
  const n = t.dims.reduce((a, b) => a * b, 1);
  const type = DT[t.dataType];
  if (!type) throw new Error(`unsupported data_type ${t.dataType}`);
  let values;
  if (t.raw) {
    const width = { float32: 4, int32: 4, int64: 8, bool: 1, float64: 8, float16: 2 }[type];
    if (t.raw.length !== n * width) {
      throw new Error(`raw_data has ${t.raw.length} bytes, dims [${t.dims}] of ${type} need ${n * width}`);
    }
    values = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const o = k * width;
      switch (type) {
        case 'float32': values[k] = t.raw.readFloatLE(o); break;
        case 'float64': values[k] = t.raw.readDoubleLE(o); break;
        case 'int32': values[k] = t.raw.readInt32LE(o); break;
        case 'int64': values[k] = Number(t.raw.readBigInt64LE(o)); break;
        case 'bool': values[k] = t.raw[o]; break;
        case 'float16': values[k] = halfValue(t.raw.readUInt16LE(o)); break;
        default: break;
      }
    }
  } else {
    const src = { float32: t.floatData, float64: t.doubleData, int64: t.int64Data,
      int32: t.int32Data, bool: t.int32Data, float16: t.int32Data }[type];
    if (src.length !== n) throw new Error(`${src.length} typed values, dims [${t.dims}] need ${n}`);
    values = type === 'float16' ? Float64Array.from(src, halfValue) : Float64Array.from(src);
  }
  return { name: t.name, dims: t.dims, type, values };
}

// --- main ----------------------------------------------------------------------
async function main() {
  const args = process.argv.slice(2);
  if (args.length < 3 || args.length > 5) {
    console.error('usage: run_compare.js BNFOLD MODEL WORKDIR [SEED [THREADS]]');
    return 2;
  }
  const [bnfold, model, workdir] = args;
  const seed = args.length >= 4 ? Number.parseInt(args[3], 10) : 1234;
  const threads = args.length >= 5 ? Number.parseInt(args[4], 10) : 2;
  if (!Number.isFinite(seed) || !Number.isFinite(threads)) {
    console.error('run_compare.js: SEED and THREADS must be integers');
    return 2;
  }

  const result = { model, bnfold, seed, threads, rel_tol: REL_TOL, pass: false, inputs: [],
    runs: [], outputs: [], worst_rel: null, run_ms: null, ort_ms: null, unsupported: null,
    error: null };
  return runCheck(result, async () => {
    const ort = loadOrt();
    const sess = await ort.InferenceSession.create(model);
    const variants = boolVariants(sess);
    const names = sess.outputNames;
    const verdict = new Verdict();
    result.run_ms = 0;
    result.ort_ms = 0;
    for (const bv of variants) {
      const dir = bv === null ? workdir : path.join(workdir, `bool_${bv}`);
      const tag = bv === null ? '' : `[bool inputs ${bv}] `;
      const { feeds, desc } = makeFeeds(ort, sess, seed, bv);
      if (result.inputs.length === 0) result.inputs = desc;
      let t0 = process.hrtime.bigint();
      const ref = await sess.run(feeds);
      result.ort_ms += Number(process.hrtime.bigint() - t0) / 1e6;

      fs.mkdirSync(dir, { recursive: true });
      const outDir = path.join(dir, 'out');
      fs.rmSync(outDir, { recursive: true, force: true });
      fs.mkdirSync(outDir);
      const cmd = ['run', model];
      const symbolic = new Set();
      desc.forEach((d, i) => {
        const file = path.join(dir, `input_${i}.npy`);
        const t = feeds[d.name];
        fs.writeFileSync(file, npyBytes(t.type, d.shape, t.data));
        cmd.push('--input', `${d.name}=${file}`);
        (d.declared_shape || []).forEach((s) => { if (typeof s === 'string' && s) symbolic.add(s); });
      });
      for (const s of symbolic) cmd.push('--dim', `${s}=1`);
      cmd.push('--output-dir', outDir, '--threads', String(threads));
      const command = [bnfold, ...cmd].join(' ');
      if (bv === null) result.command = command;
      else result.runs.push({ bool: bv, command });

      t0 = process.hrtime.bigint();
      const p = spawnSync(bnfold, cmd, { encoding: 'utf8', maxBuffer: 16 << 20 });
      result.run_ms += Number(process.hrtime.bigint() - t0) / 1e6;
      if (p.error) throw new Error(`cannot start ${bnfold}: ${p.error.message}`);
      const stderr = (p.stderr || '').trim();
      if (p.status !== 0) {
        const m = /the evaluator does not implement[^\n]*/.exec(stderr);
        if (m) result.unsupported = m[0];
        const msg = stderr.split('\n').filter((l) => l).slice(-3).join(' | ').slice(0, 300);
        throw new Error(`${tag}bnfold run exited ${p.status === null ? 'by signal ' + p.signal : p.status}: ${msg}`);
      }

      const extra = fs.readdirSync(outDir).filter((f) => {
        const m = /^output_(\d+)\.pb$/.exec(f);
        return !m || Number(m[1]) >= names.length;
      });
      if (extra.length) {
        verdict.pass = false;
        result.extra_files = (result.extra_files || []).concat(extra);
      }
      names.forEach((name, k) => {
        const a = ref[name];
        const rec = { name, index: k, shape: Array.from(a.dims), max_abs_ort: null, max_abs_diff: null,
          rel: null, pass: false, problem: null };
        if (bv !== null) rec.bool = bv;
        let shown = null;
        try {
          const file = path.join(outDir, `output_${k}.pb`);
          if (!fs.existsSync(file)) throw new Error(`${file} not written`);
          const b = parseTensorProto(fs.readFileSync(file));
          if (b.name !== null && b.name !== name) throw new Error(`output_${k}.pb is named '${b.name}'`);
          if (b.dims.length !== a.dims.length || b.dims.some((d, i) => d !== Number(a.dims[i]))) {
            throw new Error(`shape differs: bnfold [${b.dims.join('x')}]`);
          }
          // bnfold's evaluator computes float16 in float32 and writes float32
          if (b.type !== a.type && !(a.type === 'float16' && b.type === 'float32')) {
            throw new Error(`type differs: ort ${a.type}, bnfold ${b.type}`);
          }
          const st = diffStats(tensorValues(a), b.values, relTol(a.type));
          shown = st.maxDiff;
          recordDiff(rec, st, 'max_abs_ort', 'onnxruntime', 'bnfold');
        } catch (e) {
          rec.problem = String(e.message || e);
        }
        verdict.add(tag, rec, 'ort', rec.max_abs_ort, shown);
        result.outputs.push(rec);
      });
      if (extra.length) console.log(`FAIL: unexpected files in ${outDir}: ${extra.join(' ')}`);
    }
    if (names.length === 0) { verdict.pass = false; result.error = 'model has no outputs'; }
    result.worst_rel = verdict.worstRel();
    result.pass = verdict.pass;
    console.log(`bnfold run ${result.run_ms.toFixed(0)} ms (process${variants.length > 1 ? 'es' : ''}, ` +
      `--threads ${threads}), onnxruntime ${result.ort_ms.toFixed(0)} ms`);
    await sess.release();
  });
}

module.exports = { npyBytes, parseTensorProto };

runMain(module, main);
