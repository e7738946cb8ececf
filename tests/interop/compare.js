#!/usr/bin/env node
// Compare an ONNX model with its bnfold-folded version under onnxruntime-node.
//
// Usage: node tests/interop/compare.js ORIG FOLDED [SEED]
//
// Both models get the same seeded float32 normal input(s); shapes come from the
// original session's input metadata (symbolic or unknown dims -> 1).  Integer
// inputs are zeros.  A model with bool inputs (an If's condition) is run twice,
// every bool input all-false then all-true, and every output is compared in
// both runs.  For every output of the original model: max|diff| and max|orig|.
// An output passes iff max|diff| <= REL_TOL * max|orig| (REL_TOL = 1e-4), with
// equal shapes and finite values.  Prints one line per output (and run), then
// one JSON line.
// Exit: 0 pass, 1 fail (including load/run errors), 2 usage.
//
// onnxruntime-node is looked up with require() (so NODE_PATH works), then in
// build/node/node_modules of the repository.
'use strict';

const path = require('path');

const REL_TOL = 1e-4;

function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    const alt = path.resolve(__dirname, '..', '..', 'build', 'node', 'node_modules', 'onnxruntime-node');
    return require(alt);
  }
}

// mulberry32: small seeded PRNG, uniform in [0, 1)
function mulberry32(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normalFiller(seed) {
  const u = mulberry32(seed);
  let spare = null;
  return function () {
    if (spare !== null) { const s = spare; spare = null; return s; }
    let u1 = u();
    while (u1 <= 1e-12) u1 = u();
    const r = Math.sqrt(-2 * Math.log(u1));
    const th = 2 * Math.PI * u();
    spare = r * Math.sin(th);
    return r * Math.cos(th);
  };
}

function concreteShape(shape) {
  return shape.map((d) => (typeof d === 'number' && Number.isInteger(d) && d > 0 ? d : 1));
}

// The values bool inputs take, one run each: [null] when the model has none
// (one run), else [false, true].
function boolVariants(session) {
  const meta = session.inputMetadata;
  const hasBool = session.inputNames.some((name, i) => {
    const md = meta ? (Array.isArray(meta) ? meta[i] : meta[name]) : null;
    return md && md.type === 'bool';
  });
  return hasBool ? [false, true] : [null];
}

// boolValue: what every bool input holds (false when omitted)
function makeFeeds(ort, session, seed, boolValue) {
  const feeds = {};
  const desc = [];
  const meta = session.inputMetadata;
  session.inputNames.forEach((name, i) => {
    const md = meta ? (Array.isArray(meta) ? meta[i] : meta[name]) : null;
    if (!md || md.isTensor === false) throw new Error(`input ${name}: not a tensor (or no metadata)`);
    const shape = concreteShape(md.shape || []);
    const n = shape.reduce((a, b) => a * b, 1);
    const rnd = normalFiller((seed + 7919 * i) >>> 0);
    let data;
    switch (md.type) {
      case 'float32': data = new Float32Array(n); for (let k = 0; k < n; k++) data[k] = rnd(); break;
      case 'float64': data = new Float64Array(n); for (let k = 0; k < n; k++) data[k] = rnd(); break;
      case 'int64': data = new BigInt64Array(n); break;       // zeros: indices/sizes-like
      case 'int32': data = new Int32Array(n); break;
      case 'bool': data = new Uint8Array(n).fill(boolValue ? 1 : 0); break;
      default: throw new Error(`input ${name}: unsupported input type ${md.type}`);
    }
    feeds[name] = new ort.Tensor(md.type, data, shape);
    desc.push({ name, type: md.type, declared_shape: md.shape, shape });
  });
  return { feeds, desc };
}

function fmt(x) {
  if (!Number.isFinite(x)) return String(x);
  return x.toExponential(3);
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length < 2 || args.length > 3) {
    console.error('usage: compare.js ORIG FOLDED [SEED]');
    return 2;
  }
  const [origPath, foldPath] = args;
  const seed = args.length === 3 ? Number.parseInt(args[2], 10) : 1234;
  if (!Number.isFinite(seed)) { console.error('compare.js: SEED must be an integer'); return 2; }

  const result = { orig: origPath, folded: foldPath, seed, rel_tol: REL_TOL, pass: false,
    inputs: [], runs: [], outputs: [], worst_rel: null, refused: null, error: null };
  try {
    const ort = loadOrt();
    // which model onnxruntime refuses to load, if any ("orig" / "folded")
    let so;
    let sf;
    try { so = await ort.InferenceSession.create(origPath); } catch (e) { result.refused = 'orig'; throw e; }
    try { sf = await ort.InferenceSession.create(foldPath); } catch (e) { result.refused = 'folded'; throw e; }

    // the folded model must have the same interface
    const fIn = [...sf.inputNames].sort().join(',');
    const oIn = [...so.inputNames].sort().join(',');
    if (fIn !== oIn) throw new Error(`input names differ: orig [${oIn}] folded [${fIn}]`);

    const variants = boolVariants(so);
    let pass = true;
    let worst = 0;
    for (const bv of variants) {
      const { feeds, desc } = makeFeeds(ort, so, seed, bv);
      if (result.inputs.length === 0) result.inputs = desc;
      if (bv !== null) result.runs.push({ bool: bv });
      const tag = bv === null ? '' : `[bool inputs ${bv}] `;

      const ro = await so.run(feeds);
      const rf = await sf.run(feeds);

      for (const name of so.outputNames) {
        const a = ro[name];
        const b = rf[name];
        const rec = { name, shape: a ? Array.from(a.dims) : null, max_abs_orig: null,
          max_abs_diff: null, rel: null, pass: false, problem: null };
        if (bv !== null) rec.bool = bv;
        if (!b) {
          rec.problem = 'missing in folded model';
        } else if (a.dims.length !== b.dims.length || a.dims.some((d, k) => d !== b.dims[k])) {
          rec.problem = `shape differs: folded [${Array.from(b.dims)}]`;
        } else if (a.type !== b.type) {
          rec.problem = `type differs: ${a.type} vs ${b.type}`;
        } else {
          const x = a.data;
          const y = b.data;
          let maxOrig = 0;
          let maxDiff = 0;
          let origNonFinite = 0;
          let foldNonFinite = 0;
          for (let k = 0; k < x.length; k++) {
            const xo = Number(x[k]);
            const yf = Number(y[k]);
            if (!Number.isFinite(xo)) { origNonFinite++; continue; }
            if (!Number.isFinite(yf)) { foldNonFinite++; continue; }
            const ax = Math.abs(xo);
            if (ax > maxOrig) maxOrig = ax;
            const d = Math.abs(xo - yf);
            if (d > maxDiff) maxDiff = d;
          }
          if (foldNonFinite) maxDiff = Infinity;
          rec.max_abs_orig = maxOrig;
          rec.max_abs_diff = Number.isFinite(maxDiff) ? maxDiff : null;
          rec.diffShown = maxDiff;
          rec.rel = maxOrig > 0 ? maxDiff / maxOrig : (maxDiff === 0 ? 0 : Infinity);
          if (origNonFinite) rec.problem = `${origNonFinite} non-finite values in original output`;
          else if (foldNonFinite) rec.problem = `${foldNonFinite} non-finite values in folded output`;
          else rec.pass = maxDiff <= REL_TOL * maxOrig;
        }
        if (rec.rel !== null && Number.isFinite(rec.rel)) worst = Math.max(worst, rec.rel);
        else if (rec.rel !== null || rec.problem) worst = Infinity;
        if (!rec.pass) pass = false;
        console.log(`${tag}output ${name} [${rec.shape ? rec.shape.join('x') : '?'}] ` +
          `max|orig|=${fmt(rec.max_abs_orig)} max|diff|=${fmt(rec.diffShown)} ` +
          `rel=${fmt(rec.rel)} ${rec.pass ? 'PASS' : 'FAIL'}${rec.problem ? ' (' + rec.problem + ')' : ''}`);
        if (rec.rel === Infinity) rec.rel = null;   // JSON has no Infinity
        delete rec.diffShown;
        result.outputs.push(rec);
      }
    }
    if (so.outputNames.length === 0) { pass = false; result.error = 'model has no outputs'; }
    result.worst_rel = Number.isFinite(worst) ? worst : null;
    result.pass = pass;
    await so.release();
    await sf.release();
  } catch (e) {
    result.error = String(e && e.message ? e.message : e);
    console.log(`error: ${result.error}`);
    result.pass = false;
  }
  console.log(JSON.stringify(result));
  return result.pass ? 0 : 1;
}

// run_compare.js reuses the input generation, so both checks see the same inputs
module.exports = { REL_TOL, loadOrt, mulberry32, normalFiller, concreteShape, boolVariants, makeFeeds,
  fmt };

if (require.main === module) {
  main().then((code) => { process.exitCode = code; },
    (e) => { console.error(e); process.exitCode = 1; });
}
