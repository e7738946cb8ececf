// What the onnxruntime-node scripts share: tests/interop/compare.js and
// run_compare.js (the interoperability check), bench/ort_time.js,
// ort_profile.js and ort_optimize.js (the benchmarks).
//
//   loadOrt, ortVersion   onnxruntime-node, looked up with require() (so
//                         NODE_PATH works), then in build/node/node_modules
//   makeFeeds, boolVariants  the seeded inputs of a session: the same seed
//                         gives every script the same tensors
//   diffStats, recordDiff, Verdict  outputs against their references
//   runCheck, runMain     a check's JSON result line and exit code
'use strict';

const path = require('path');

// An output passes iff max|diff| <= REL_TOL * max|reference|.
const REL_TOL = 1e-4;
// float16 outputs: each side rounds to 11 significant bits (bnfold's own checks
// widen their tolerance 50 times for float16 too)
const REL_TOL_F16 = 5e-3;
function relTol(type) { return type === 'float16' ? REL_TOL_F16 : REL_TOL; }

const ORT_FALLBACK = path.resolve(__dirname, '..', '..', 'build', 'node', 'node_modules',
  'onnxruntime-node');

function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    return require(ORT_FALLBACK);
  }
}

function ortVersion() {
  try {
    return require('onnxruntime-node/package.json').version;
  } catch (e) {
    try {
      return require(path.join(ORT_FALLBACK, 'package.json')).version;
    } catch (e2) { return null; }
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

// seeded standard normal numbers (mulberry32 + Box-Muller)
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

// IEEE half precision: the bits of float x rounded to nearest even, and a
// half's bits as a number (onnxruntime-node holds float16 data as Uint16Array)
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
function halfBits(x) {
  f32buf[0] = x;
  const b = u32buf[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);    // inf, NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;                             // overflow
  if (e <= 0) {                                                    // subnormal or zero
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}
function halfValue(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}
// an output's values as numbers (float16 bits decoded)
function tensorValues(t) {
  return t.type === 'float16' ? Float64Array.from(t.data, halfValue) : t.data;
}

// symbolic or unknown dims -> 1
function concreteShape(shape) {
  return shape.map((d) => (typeof d === 'number' && Number.isInteger(d) && d > 0 ? d : 1));
}

// the metadata of input i of a session (an array or a map, by onnxruntime version)
function inputMeta(session, i) {
  const meta = session.inputMetadata;
  if (!meta) return null;
  return Array.isArray(meta) ? meta[i] : meta[session.inputNames[i]];
}

// The values bool inputs take, one run each: [null] when the model has none
// (one run), else [false, true].
function boolVariants(session) {
  const hasBool = session.inputNames.some((name, i) => {
    const md = inputMeta(session, i);
    return md && md.type === 'bool';
  });
  return hasBool ? [false, true] : [null];
}

// One tensor per graph input: float32/float64 standard normal (input i seeded
// with seed + 7919 i), integers zero (indices, sizes), every bool boolValue
// (false when omitted).  Returns { feeds, desc: [{name, type, declared_shape,
// shape}] }.
function makeFeeds(ort, session, seed, boolValue) {
  const feeds = {};
  const desc = [];
  session.inputNames.forEach((name, i) => {
    const md = inputMeta(session, i);
    if (!md || md.isTensor === false) throw new Error(`input ${name}: not a tensor (or no metadata)`);
    const shape = concreteShape(md.shape || []);
    const n = shape.reduce((a, b) => a * b, 1);
    const rnd = normalFiller((seed + 7919 * i) >>> 0);
    let data;
    switch (md.type) {
      case 'float32': data = new Float32Array(n); for (let k = 0; k < n; k++) data[k] = rnd(); break;
      case 'float64': data = new Float64Array(n); for (let k = 0; k < n; k++) data[k] = rnd(); break;
      case 'float16': data = new Uint16Array(n); for (let k = 0; k < n; k++) data[k] = halfBits(rnd()); break;
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

// diffStats(ref, got): two equally long arrays (any numeric type), element by
// element.  maxRef: the largest finite |ref|; maxDiff: the largest |ref - got|
// (Infinity when got has a non-finite value where ref's is finite); rel =
// maxDiff / maxRef; refBad, gotBad: the non-finite values of each (skipped);
// pass: all finite and maxDiff <= REL_TOL * maxRef.
function diffStats(ref, got, tol = REL_TOL) {
  let maxRef = 0;
  let maxDiff = 0;
  let refBad = 0;
  let gotBad = 0;
  for (let k = 0; k < ref.length; k++) {
    const r = Number(ref[k]);
    const g = Number(got[k]);
    if (!Number.isFinite(r)) { refBad++; continue; }
    if (!Number.isFinite(g)) { gotBad++; continue; }
    const ar = Math.abs(r);
    if (ar > maxRef) maxRef = ar;
    const d = Math.abs(r - g);
    if (d > maxDiff) maxDiff = d;
  }
  if (gotBad) maxDiff = Infinity;
  const rel = maxRef > 0 ? maxDiff / maxRef : (maxDiff === 0 ? 0 : Infinity);
  return { maxRef, maxDiff, rel, refBad, gotBad, pass: !refBad && !gotBad && maxDiff <= tol * maxRef };
}

// recordDiff(rec, st, refKey, refWhat, gotWhat): the diffStats st of an
// output into its record: rec[refKey] = max|reference|, max_abs_diff (null
// when infinite), rel, pass, and the problem of non-finite values (refWhat,
// gotWhat name the two sides)
function recordDiff(rec, st, refKey, refWhat, gotWhat) {
  rec[refKey] = st.maxRef;
  rec.max_abs_diff = Number.isFinite(st.maxDiff) ? st.maxDiff : null;
  rec.rel = st.rel;
  if (st.refBad) rec.problem = `${st.refBad} non-finite values in ${refWhat} output`;
  else if (st.gotBad) rec.problem = `${st.gotBad} non-finite values in ${gotWhat} output`;
  rec.pass = st.pass;
}

// The verdict over a check's outputs: pass (every one passed) and worst (the
// largest rel; Infinity once an output has none).
class Verdict {
  constructor() { this.pass = true; this.worst = 0; }

  // add(tag, rec, refLabel, maxRef, maxDiff): one output record {name, shape,
  // rel, pass, problem}: counted, its line printed, its rel made fit for JSON
  // (no Infinity)
  add(tag, rec, refLabel, maxRef, maxDiff) {
    if (rec.rel !== null && Number.isFinite(rec.rel)) this.worst = Math.max(this.worst, rec.rel);
    else this.worst = Infinity;
    if (!rec.pass) this.pass = false;
    console.log(`${tag}output ${rec.name} [${rec.shape ? rec.shape.join('x') : '?'}] ` +
      `max|${refLabel}|=${fmt(maxRef)} max|diff|=${fmt(maxDiff)} ` +
      `rel=${fmt(rec.rel)} ${rec.pass ? 'PASS' : 'FAIL'}${rec.problem ? ' (' + rec.problem + ')' : ''}`);
    if (rec.rel === Infinity) rec.rel = null;
  }

  worstRel() { return Number.isFinite(this.worst) ? this.worst : null; }
}

// runCheck(result, body): awaits body(); an exception becomes result.error
// (and a line "error: ..."), and the check fails.  Prints result as the last
// line (one JSON document) and returns the exit code: 0 pass, 1 fail.
async function runCheck(result, body) {
  try {
    await body();
  } catch (e) {
    result.error = String(e && e.message ? e.message : e);
    console.log(`error: ${result.error}`);
    result.pass = false;
  }
  console.log(JSON.stringify(result));
  return result.pass ? 0 : 1;
}

// runMain(module, main): when module is the script node runs, runs main()
// and exits with the code it returns (1 on an exception)
function runMain(mod, main) {
  if (require.main !== mod) return;
  main().then((code) => { process.exitCode = code; },
    (e) => { console.error(e); process.exitCode = 1; });
}

module.exports = { REL_TOL, loadOrt, ortVersion, mulberry32, normalFiller, concreteShape, inputMeta,
  halfBits, halfValue, tensorValues, relTol,
  boolVariants, makeFeeds, fmt, diffStats, recordDiff, Verdict, runCheck, runMain };
