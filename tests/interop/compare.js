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
// onnxruntime-node, the inputs and the comparison: ort_common.js.
'use strict';

const { REL_TOL, loadOrt, boolVariants, makeFeeds, diffStats, recordDiff, Verdict, runCheck,
  runMain, tensorValues, relTol } = require('./ort_common.js');

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
  return runCheck(result, async () => {
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
    const verdict = new Verdict();
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
        let shown;
        if (!b) {
          rec.problem = 'missing in folded model';
        } else if (a.dims.length !== b.dims.length || a.dims.some((d, k) => d !== b.dims[k])) {
          rec.problem = `shape differs: folded [${Array.from(b.dims)}]`;
        } else if (a.type !== b.type) {
          rec.problem = `type differs: ${a.type} vs ${b.type}`;
        } else {
          const st = diffStats(tensorValues(a), tensorValues(b), relTol(a.type));
          shown = st.maxDiff;
          recordDiff(rec, st, 'max_abs_orig', 'original', 'folded');
        }
        verdict.add(tag, rec, 'orig', rec.max_abs_orig, shown);
        result.outputs.push(rec);
      }
    }
    if (so.outputNames.length === 0) { verdict.pass = false; result.error = 'model has no outputs'; }
    result.worst_rel = verdict.worstRel();
    result.pass = verdict.pass;
    await so.release();
    await sf.release();
  });
}

runMain(module, main);
