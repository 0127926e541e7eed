"""Collect the proof suite's figures into docs/proof/report.md, with one PNG per fault.

`python -m bench.proof_report [--data .data/proof] [--docs docs/proof]` reads chaos.json
(bench.loadgen_chaos --out), schemathesis-<service>.json, authorization.json and hostile.json
(written by tests/proof), and plots throughput and latency over time during each fault.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def plot(result: dict[str, Any], out: Path) -> None:
    """Throughput (2xx a second) and p50/p95 latency a second, with the fault marks."""
    points = result["timeline"]
    t = [p["t"] for p in points]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    top.plot(t, [p["ok_per_s"] for p in points], label="2xx / s")
    top.bar(t, [p["failed"] for p in points], color="tab:red", alpha=0.5, label="failed / s")
    top.set_ylabel("answers / s")
    top.legend(loc="upper right", fontsize=8)
    bottom.plot(t, [p["p50_ms"] for p in points], label="p50")
    bottom.plot(t, [p["p95_ms"] for p in points], label="p95")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since the load began")
    bottom.legend(loc="upper right", fontsize=8)
    for at, what in result["faults"]:
        for ax in (top, bottom):
            ax.axvline(at, color="grey", linestyle="--", linewidth=0.8)
        top.annotate(what, (at, top.get_ylim()[1]), rotation=90, fontsize=6, va="top")
    fig.suptitle(f"{result['scenario']}: {result['rate']}/s for {result['seconds']} s")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _seconds(t: float | None) -> str:
    return "not within a minute" if t is None else str(t)


def chaos_section(results: list[dict[str, Any]], docs: Path) -> list[str]:
    lines = [
        "## Faults under load",
        "",
        "| scenario | acknowledged | in log | lost | duplicates applied | 500s"
        " | read-model differences | p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lost = len(r.get("lost", []))
        dup = r.get("duplicates", 0) + r.get("duplicates_applied_by_consumers", 0)
        p95 = r.get("load", {}).get("p95_ms", "")
        lines.append(
            f"| {r['scenario']} | {r.get('acknowledged')} | {r.get('in_log')} | {lost} | {dup}"
            f" | {r.get('answers_500')} | {r.get('read_model_differences')} | {p95} |"
        )
    lines.append("")
    for r in results:
        if "heal_seconds" in r:  # kill-each-child: `make run` and its supervisor
            lines += [
                f"`make run` healing itself ({r['scenario']}): each kind of child SIGKILLed"
                " under the load, its supervisor restarting it. Seconds until every API is"
                " ready and every worker answers again on the URLs printed at start-up, and"
                " until every consumer applied every event logged until then"
                f" (acknowledged writes lost: {len(r['lost'])}).",
                "",
                "| child killed | answering again (s) | consumers caught up (s) |",
                "|---|---|---|",
            ]
            lines += [
                f"| {kind} | {_seconds(t['answering'])} | {_seconds(t['caught_up'])} |"
                for kind, t in r["heal_seconds"].items()
            ]
            lines.append("")
    for r in results:
        png = f"chaos-{r['scenario']}.png"
        plot(r, docs / png)
        lines += [f"### {r['scenario']}", "", f"![{r['scenario']}]({png})", ""]
        lines += [f"- {at:.1f} s: {what}" for at, what in r["faults"]] + [""]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.proof_report", description=__doc__)
    p.add_argument("--data", default=".data/proof")
    p.add_argument("--docs", default="docs/proof")
    args = p.parse_args()
    data, docs = Path(args.data), Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    lines = ["# Proof under load, faults and hostile input", "", "Written by `make proof`.", ""]
    chaos = _load(data / "chaos.json")
    if chaos:
        lines += chaos_section(chaos, docs)
    lines += ["## Schemathesis", "", "| service | cases | statuses | 5xx or non-problem 4xx |"]
    lines.append("|---|---|---|---|")
    for service in ("registry", "pledges", "shipments"):
        s = _load(data / f"schemathesis-{service}.json")
        if s:
            statuses = ", ".join(f"{k}: {v}" for k, v in s["statuses"].items())
            lines.append(f"| {service} | {s['cases']} | {statuses} | {len(s['failures'])} |")
            lines += [f"|  | `{f.splitlines()[0][:150]}` | | |" for f in s["failures"][:5]]
    auth = _load(data / "authorization.json")
    if auth:
        lines += [
            "",
            "## Authorization matrix",
            "",
            f"{auth['endpoints']} write endpoints, {auth['calls']} calls, {auth['accepted']}"
            f" accepted, {len(auth['violations'])} violations. Table:"
            " [authorization-matrix.md](authorization-matrix.md).",
        ]
    hostile = _load(data / "hostile.json")
    if hostile:
        lines += ["", "## Hostile input", "", "| attempt | answer |", "|---|---|"]
        lines += [f"| `{k}` | {v} |" for k, v in sorted(hostile.items())]
    (docs / "report.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {docs / 'report.md'}")


if __name__ == "__main__":
    main()
