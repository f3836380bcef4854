"""The hostile inputs of issue 15 (items 10-14), shared by the focused tests and the fuzz
test's seed corpus: ``name -> (file name, text)``."""

from __future__ import annotations

HEAD = "pipecast: 1\nname: h\n"
STEP = "steps:\n  s: {run: {python: 'm:f'}}\n"


def _timing(field: str, value: str) -> str:
    body = f"retry: {{attempts: 3, delay: {value}}}" if field == "delay" else f"timeout: {value}"
    return HEAD + f"steps:\n  s: {{run: {{python: 'm:f'}}, {body}}}\n"


CASES: dict[str, tuple[str, str]] = {
    "timezone_folder": ("p.yaml", HEAD + "schedule: {cron: '0 * * * *', timezone: Europe}\n" + STEP),
    "timezone_long": ("p.yaml", HEAD + f"schedule: {{cron: '0 * * * *', timezone: '{'A' * 300}'}}\n" + STEP),
    "json_big_int": (
        "p.json",
        '{"pipecast": 1, "name": "h", "params": {"p": {"type": "int", "default": '
        + "9" * 5000
        + '}}, "steps": {"s": {"run": {"python": "m:f"}}}}',
    ),
    "json_deep": (
        "p.json",
        '{"pipecast": 1, "name": "h", "x": ' + "[" * 5000 + "]" * 5000 + ', "steps": {}}',
    ),
    "yaml_big_int": ("p.yaml", HEAD + "params:\n  p: {type: int, default: " + "9" * 5000 + "}\n" + STEP),
    "yaml_deep": ("p.yaml", HEAD + "x: " + "[" * 150 + "]" * 150 + "\n" + STEP),
    **{
        f"{f}_{v}": ("p.yaml", _timing(f, v))
        for f in ("timeout", "delay")
        for v in (".inf", ".nan", "1e308", "-5")
    },
    "delay_huge_string": ("p.yaml", _timing("delay", "100000000000d")),
    "parallelism_huge": (
        "p.yaml",
        HEAD
        + "steps:\n  f:\n    for_each: [1, 2]\n    parallelism: 1e40\n    steps:\n      s: {run: {python: 'm:f'}}\n",
    ),
    "nan_in_list_default": (
        "p.yaml",
        HEAD
        + "params:\n  l: {type: list, default: [1, .nan]}\nsteps:\n  s: {run: {python: 'm:f'}, inputs: {x: '{{ params.l }}'}}\n",
    ),
    "nan_default": (
        "p.yaml",
        HEAD
        + "params:\n  f: {type: float, default: .nan}\nsteps:\n  s: {run: {python: 'm:f'}, inputs: {x: '{{ params.f }}'}}\n",
    ),
    "inf_input": ("p.yaml", HEAD + "steps:\n  s: {run: {python: 'm:f'}, inputs: {x: .inf}}\n"),
    "schedule_required_param": (
        "p.yaml",
        HEAD + "params:\n  req: {type: str}\nschedule: {cron: '0 * * * *'}\n"
        "steps:\n  s: {run: {python: 'm:f'}, inputs: {x: '{{ params.req }}'}}\n",
    ),
}
