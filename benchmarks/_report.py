"""The benchmark output format of DESIGN.md: a readable table, and the same figures as JSON.

Each figure stands beside its reference measured in the same run; ``ratio`` is oriented so that
higher is better (ours / reference for a rate, reference / ours for a time).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def report(name: str, rows: list[dict[str, object]], context: dict[str, object]) -> None:
    print(f"# {name}  ({', '.join(f'{k}={v}' for k, v in context.items())})")
    print(f"{'figure':<34} {'ours':>12} {'reference':>12} {'ratio':>7} {'target':>7}  reference is")
    for r in rows:
        print(
            f"{r['figure']:<34} {r['ours']:>12.4g} {r['reference']:>12.4g} {r['ratio']:>7.3f} "
            f"{r['target']:>7.2f}  {r['reference_is']}"
        )
    RESULTS.mkdir(exist_ok=True)
    payload = {"benchmark": name, "machine": platform.platform(), "context": context, "figures": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2))
