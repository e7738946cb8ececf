"""Reports: typed objects over the JSON documents libbnfold writes.

The library makes each document (bnf_report_to_json, bnf_verify_to_json); these
classes only give its documented fields (docs/contract.md,
docs/report.schema.json) as attributes.  ``report.json`` is the whole document
as a dict, ``report.to_json()`` the text the library wrote.
"""
from __future__ import annotations

import json as _json
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple


@dataclass(frozen=True)
class Finding:
    """A health finding on one BatchNormalization (docs/contract.md, "Health finding codes")."""

    code: str
    """``BN_NEG_VAR``, ``BN_TINY_VAR``, ..."""
    severity: str
    """``"error"``, ``"warning"`` or ``"info"``"""
    node: str
    """the BatchNormalization's name"""
    graph: str
    """``""`` for the main graph, else the subgraph or function holding the node"""
    n_channels: int
    """channels affected (0: the BN as a whole)"""
    channels: Tuple[int, ...]
    """the first (up to 16) of them"""
    message: str

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "Finding":
        return cls(d["code"], d["severity"], d["node"], d["graph"], d["n_channels"],
                   tuple(d["channels"]), d["message"])


@dataclass(frozen=True)
class BatchNorm:
    """One BatchNormalization of the input model and its fate."""

    name: str
    """the node's name (``""`` when it has none)"""
    output: str
    """its Y output"""
    decision: str
    """``"fold"`` (folded, or would be for inspect and check), ``"lower"`` (rewritten as
    Mul + Add, ``lower_standalone``) or ``"skip"``"""
    reason_code: Optional[str]
    """why it is not folded: a stable code (``LAYER_MULTI_CONSUMER``, ``NO_LAYER``, ...;
    docs/contract.md), None when folded"""
    reason: Optional[str]
    """the same in words, naming the nodes concerned"""
    layer: Optional[str]
    """the node it folds (or would fold) into, or the node its input comes from"""
    layer_op: Optional[str]
    position: str
    """``"after"`` (layer -> BN) or ``"before"`` (BN -> layer)"""
    graph: str
    """``""`` for the main graph, else the subgraph or function holding it"""
    assumed_inference: bool
    channels: Optional[int]
    epsilon: Optional[float]
    min_var: Optional[float]
    """smallest running variance (None when not readable)"""
    max_abs_scale: Optional[float]
    """largest ``|gamma / sqrt(var + eps)|``"""
    local_rel_err: Optional[float]
    """fold only: the check of this fold on its own (max |diff| / max |out|)"""
    findings: Tuple[Finding, ...]
    """the health findings on this BN"""

    @property
    def folded(self) -> bool:
        """Whether it was (or would be) folded into a layer."""
        return self.decision == "fold"

    @classmethod
    def _from(cls, d: Mapping[str, Any], findings: Tuple[Finding, ...]) -> "BatchNorm":
        return cls(d["name"], d["output"], d["decision"], d["reason_code"], d["reason"],
                   d["layer"], d["layer_op"], d["position"], d["graph"],
                   d["assumed_inference"], d["channels"], d["epsilon"], d["min_var"],
                   d["max_abs_scale"], d.get("local_rel_err"), findings)


@dataclass(frozen=True)
class Action:
    """One fold done: a BatchNormalization (or a Mul / Add by constants) merged into a layer."""

    op: str
    """``"BatchNormalization"``, ``"Mul"`` or ``"Add"``"""
    node: str
    """the node folded away"""
    position: str
    layer: str
    """the layer that absorbed it"""
    layer_op: str
    """its op type before the fold (a MatMul becomes a Gemm)"""
    weight: Optional[str]
    """the new weight tensor"""
    bias: Optional[str]
    """the new bias tensor"""
    local_rel_err: Optional[float]

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "Action":
        return cls(d["op"], d["node"], d["position"], d["layer"], d["layer_op"], d["weight"],
                   d["bias"], d["local_rel_err"])


@dataclass(frozen=True)
class ModelInfo:
    """What the model is: format, producer, size."""

    ir_version: int
    opsets: Dict[str, int]
    """domain (``""`` is ai.onnx) -> version"""
    producer: str
    nodes: int
    """nodes of the main graph"""
    op_counts: Dict[str, int]
    initializers: int
    initializer_bytes: int

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "ModelInfo":
        return cls(d["ir_version"], {o["domain"]: o["version"] for o in d["opsets"]},
                   d["producer"], d["nodes"], dict(d["op_counts"]), d["initializers"],
                   d["initializer_bytes"])


@dataclass(frozen=True)
class Summary:
    """The counts of a report."""

    batchnorms: int
    folded: int
    skipped: int
    lowered: int
    batchnorms_after: int
    """BN nodes left in the model after folding (all graphs)"""
    frozen_inputs: int
    findings: Dict[str, int]
    """severity -> findings"""

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "Summary":
        return cls(d["batchnorms"], d["folded"], d["skipped"], d["lowered"],
                   d["batchnorms_after"], d["frozen_inputs"], dict(d["findings"]))


@dataclass(frozen=True)
class LocalCheck:
    """Each fold checked on its own (layer + BN against the folded layer)."""

    checked: int
    passed: bool
    worst_rel_err: Optional[float]


@dataclass(frozen=True)
class EndToEnd:
    """The folded model against the original on seeded random inputs."""

    ran: bool
    passed: bool
    """False also when it could not run (``reason`` says why)"""
    input_sets: int = 0
    outputs: int = 0
    values: int = 0
    """intermediate values compared per input set"""
    worst_abs_err: Optional[float] = None
    worst_rel_err: Optional[float] = None
    worst_output: str = ""
    reason: str = ""
    """when it did not run: why (e.g. an operator the evaluator lacks)"""


@dataclass(frozen=True)
class Verification:
    """How a fold was checked (None parts: not run)."""

    local: Optional[LocalCheck]
    end_to_end: Optional[EndToEnd]

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "Verification":
        loc = d["local"]
        e2e = d["end_to_end"]
        return cls(
            LocalCheck(loc["checked"], loc["pass"], loc["worst_rel_err"]) if loc else None,
            None if e2e is None else
            EndToEnd(True, e2e["pass"], e2e["input_sets"], e2e["outputs"], e2e["values"],
                     e2e["worst_abs_err"], e2e["worst_rel_err"], e2e["worst_output"])
            if e2e["ran"] else EndToEnd(False, False, reason=e2e["reason"]))


@dataclass(frozen=True)
class Gate:
    """The verdict of ``check``."""

    fail_on: str
    passed: bool
    problems: Tuple[Tuple[str, str], ...]
    """(code, node) of every finding and BN that trips the gate"""


def _attach(bns: List[Mapping[str, Any]], findings: Tuple[Finding, ...]) -> List[Tuple[Finding, ...]]:
    """Each BN's findings.  A finding names its BN by (node, graph); the library
    lists findings in the order of the BNs, so among BNs of one name (unnamed
    ones) a finding goes to the first not before the last one matched."""
    per: List[List[Finding]] = [[] for _ in bns]
    where: Dict[Tuple[str, str], List[int]] = {}
    for i, b in enumerate(bns):
        where.setdefault((b["name"], b["graph"]), []).append(i)
    last: Dict[Tuple[str, str], int] = {}
    for f in findings:
        key = (f.node, f.graph)
        cands = where.get(key)
        if not cands:
            continue
        at = next((i for i in cands if i >= last.get(key, -1)), cands[-1])
        last[key] = at
        per[at].append(f)
    return [tuple(p) for p in per]


class _Document:
    """A JSON document of the library: ``json`` (dict) and ``to_json()`` (its text)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self.json: Dict[str, Any] = _json.loads(text)
        """the whole document, every field (docs/report.schema.json)"""
        self.version: str = self.json["version"]
        """the library's version"""
        self.schema_version: int = self.json["schema_version"]
        self.command: str = self.json["command"]

    def to_json(self) -> str:
        """The document as the library wrote it."""
        return self._text


class Report(_Document):
    """What ``fold``, ``inspect`` or ``check`` found and did (docs/contract.md).

    Attributes: ``command`` (``"fold"``, ``"inspect"`` or ``"check"``), ``input`` and
    ``output`` (paths; None for a model in memory), ``model`` (``ModelInfo``),
    ``batchnorms`` (every BN of the input model: ``BatchNorm`` with its decision,
    reason code and findings), ``findings`` (all of them), ``actions`` (fold: the folds
    done), ``verification`` (fold: how it was checked), ``summary`` (``Summary``),
    ``gate`` (check: ``Gate``), ``passed`` (check: whether the gate passed), ``json``
    (the whole document).
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        d = self.json
        self.input: Optional[str] = d.get("input")
        self.output: Optional[str] = d.get("output")
        self.model: ModelInfo = ModelInfo._from(d["model"])
        self.findings: Tuple[Finding, ...] = tuple(Finding._from(f) for f in d["findings"])
        per = _attach(d["batchnorms"], self.findings)
        self.batchnorms: Tuple[BatchNorm, ...] = tuple(
            BatchNorm._from(b, f) for b, f in zip(d["batchnorms"], per))
        self.actions: Tuple[Action, ...] = tuple(Action._from(a) for a in d.get("actions", ()))
        self.verification: Optional[Verification] = (
            Verification._from(d["verification"]) if "verification" in d else None)
        self.summary: Summary = Summary._from(d["summary"])
        g = d.get("check")
        self.gate: Optional[Gate] = (
            Gate(g["fail_on"], g["pass"], tuple((p["code"], p["node"]) for p in g["problems"]))
            if g else None)

    @property
    def passed(self) -> Optional[bool]:
        """check: whether the gate passed (None for fold and inspect reports)."""
        return self.gate.passed if self.gate else None

    def __repr__(self) -> str:
        s = self.summary
        tail = ""
        if self.gate:
            tail = f"; fail_on {self.gate.fail_on}: {'passed' if self.gate.passed else 'FAILED'}"
        return (f"<bnfold.Report {self.command}: {s.batchnorms} BatchNormalization, "
                f"{s.folded} folded, {s.lowered} lowered, {s.skipped} skipped, "
                f"{s.batchnorms_after} left; {len(self.findings)} finding(s){tail}>")


class VerifyReport(_Document):
    """The comparison of two models by ``verify``.

    ``models`` (the two, as named), ``equivalent``, ``input_sets``, ``outputs``,
    ``values`` (intermediate values compared per set), ``rtol``, ``atol``,
    ``worst_abs_err``, ``worst_rel_err``, ``worst_output``, ``worst_element`` and
    ``message`` (what differs and where; ``""`` when equivalent).
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        d = self.json
        self.models: Tuple[str, str] = tuple(d["models"])  # type: ignore[assignment]
        self.equivalent: bool = d["equivalent"]
        self.input_sets: int = d["input_sets"]
        self.outputs: int = d["outputs"]
        self.values: int = d["values"]
        self.rtol: float = d["rtol"]
        self.atol: float = d["atol"]
        self.worst_abs_err: Optional[float] = d["worst_abs_err"]
        self.worst_rel_err: Optional[float] = d["worst_rel_err"]
        self.worst_output: str = d["worst_output"]
        self.worst_element: str = d["worst_element"]
        self.message: str = d["message"]

    def __repr__(self) -> str:
        if self.equivalent:
            return (f"<bnfold.VerifyReport equivalent: {self.input_sets} input sets, "
                    f"{self.outputs} outputs, {self.values} values; worst rel err "
                    f"{self.worst_rel_err:.3g} at '{self.worst_output}'>")
        return f"<bnfold.VerifyReport NOT equivalent: {self.message}>"
