"""Gemini's computer-use functions <-> OpenAI `computer_call` actions.

Gemini acts on a 1000 x 1000 grid; actions are scaled to the display size the
`computer_use_preview` tool declared, and back. Each call_id carries the Gemini function and
call id (`gcu_<function>_<id>`), so outputs and replays find their way back to it.

| Gemini function                             | OpenAI action(s)                                  |
|---------------------------------------------|---------------------------------------------------|
| open_web_browser                            | screenshot                                        |
| click_at {x, y}                             | click (left)                                      |
| hover_at {x, y}                             | move                                              |
| type_text_at {x, y, text, press_enter}      | click at (x, y), then type (text + "\\n" on enter) |
| key_combination {keys: "Control+C"}         | keypress ["CTRL", "C"]                            |
| scroll_document / scroll_at {direction, magnitude} | scroll (magnitude in grid units, scaled)   |
| drag_and_drop {x, y, destination_x, destination_y} | drag                                       |
| wait_5_seconds                              | wait                                              |
| go_back / go_forward                        | keypress ["ALT", "LEFT"] / ["ALT", "RIGHT"]       |
| navigate, search                            | excluded from the tool: no OpenAI action matches  |
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
GRID = 1000
PREFIX = "gcu_"
EXCLUDED = ["navigate", "search"]
FUNCTIONS = frozenset(
    {"open_web_browser", "click_at", "hover_at", "type_text_at", "key_combination", "scroll_document", "scroll_at",
     "drag_and_drop", "wait_5_seconds", "go_back", "go_forward"}
)  # fmt: skip
_KEYS = {"control": "CTRL", "ctrl": "CTRL", "alt": "ALT", "shift": "SHIFT", "meta": "META", "command": "CMD",
         "enter": "ENTER", "return": "ENTER", "escape": "ESC", "tab": "TAB", "backspace": "BACKSPACE"}  # fmt: skip
_NAMES = {v: k.capitalize() for k, v in _KEYS.items() if k not in ("ctrl", "return", "command")}


def tool(spec: Json) -> Json:
    environment = (
        "ENVIRONMENT_BROWSER" if spec.get("environment", "browser") == "browser" else "ENVIRONMENT_UNSPECIFIED"
    )
    return {"computerUse": {"environment": environment, "excludedPredefinedFunctions": EXCLUDED}}


def to_openai(name: str, args: Json, call_id: str, size: tuple[int, int]) -> list[Json]:
    """A Gemini function call as computer_call items (type_text_at needs two actions)."""
    w, h = size

    def at(xk: str = "x", yk: str = "y") -> Json:
        return {"x": round(args.get(xk, 0) * w / GRID), "y": round(args.get(yk, 0) * h / GRID)}

    base = f"{PREFIX}{name}_{call_id}"
    if name == "type_text_at":
        text = str(args.get("text", "")) + ("\n" if args.get("press_enter") else "")
        actions = [(base + "_click", {"type": "click", "button": "left", **at()}),
                   (base + "_type", {"type": "type", "text": text})]  # fmt: skip
    else:
        actions = [(base, _single(name, args, at, (w, h)))]
    checks = []
    if (decision := args.get("safety_decision")) and decision.get("decision") == "require_confirmation":
        checks = [{"id": f"gsc_{call_id}", "code": "require_confirmation", "message": decision.get("explanation", "")}]
    return [{"type": "computer_call", "call_id": cid, "action": action, "pending_safety_checks": checks,
             "status": "completed"} for cid, action in actions]  # fmt: skip


def _single(name: str, args: Json, at: Any, size: tuple[int, int]) -> Json:
    if name == "click_at":
        return {"type": "click", "button": "left", **at()}
    if name == "hover_at":
        return {"type": "move", **at()}
    if name == "key_combination":
        return {
            "type": "keypress",
            "keys": [_KEYS.get(k.lower(), k.upper()) for k in str(args.get("keys", "")).split("+")],
        }
    if name in ("scroll_document", "scroll_at"):
        amount = round(args.get("magnitude", 800) * size[1] / GRID)
        dx = {"left": -amount, "right": amount}.get(args.get("direction", "down"), 0)
        dy = {"up": -amount, "down": amount}.get(args.get("direction", "down"), 0)
        where = at() if name == "scroll_at" else {"x": size[0] // 2, "y": size[1] // 2}
        return {"type": "scroll", **where, "scroll_x": dx, "scroll_y": dy}
    if name == "drag_and_drop":
        return {"type": "drag", "path": [at(), at("destination_x", "destination_y")]}
    if name == "wait_5_seconds":
        return {"type": "wait"}
    if name in ("go_back", "go_forward"):
        return {"type": "keypress", "keys": ["ALT", "LEFT" if name == "go_back" else "RIGHT"]}
    return {"type": "screenshot"}  # open_web_browser: the browser is there; show it


def parse_call_id(call_id: str) -> tuple[str, str, str] | None:
    """`gcu_<function>_<id>[_click|_type]` -> (function, Gemini call id, step)."""
    if not call_id.startswith(PREFIX):
        return None
    rest = call_id.removeprefix(PREFIX)
    step = ""
    for suffix in ("_click", "_type"):
        if rest.endswith(suffix):
            rest, step = rest.removesuffix(suffix), suffix[1:]
    for name in sorted(FUNCTIONS, key=len, reverse=True):
        if rest.startswith(name + "_"):
            return name, rest.removeprefix(name + "_"), step
    return None


def to_gemini_args(name: str, actions: list[Json], size: tuple[int, int]) -> Json:
    """The Gemini args a replayed computer_call (or the pair of a type_text_at) came from."""
    w, h = size

    def grid(a: Json) -> Json:
        return {"x": round(a.get("x", 0) * GRID / w), "y": round(a.get("y", 0) * GRID / h)}

    first = actions[0]
    if name == "type_text_at":
        typed = actions[-1].get("text", "")
        return {**grid(first), "text": typed.removesuffix("\n"), "press_enter": typed.endswith("\n")}
    if name in ("click_at", "hover_at", "scroll_at"):
        return grid(first)
    if name == "key_combination":
        return {"keys": "+".join(_NAMES.get(k, k.capitalize()) for k in first.get("keys", []))}
    if name == "drag_and_drop":
        start, end = grid(first["path"][0]), grid(first["path"][-1])
        return {**start, "destination_x": end["x"], "destination_y": end["y"]}
    return {}
