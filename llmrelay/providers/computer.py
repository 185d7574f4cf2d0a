"""Computer-use actions: OpenAI's `computer_call` actions <-> Anthropic's computer tool.

| OpenAI action                           | Anthropic computer tool input                        |
|-----------------------------------------|------------------------------------------------------|
| screenshot                              | {action: screenshot}                                 |
| click {button left/right/wheel, x, y}   | {action: left_click / right_click / middle_click, coordinate: [x, y]} |
| double_click {x, y}                     | {action: double_click, coordinate}                   |
| move {x, y}                             | {action: mouse_move, coordinate}                     |
| drag {path: [{x, y}, ..., {x, y}]}      | {action: left_click_drag, start_coordinate, coordinate} |
| scroll {x, y, scroll_x, scroll_y} (px)  | {action: scroll, coordinate, scroll_direction, scroll_amount} (1 = 100 px) |
| type {text}                             | {action: type, text}                                 |
| keypress {keys: ["CTRL", "C"]}          | {action: key, text: "ctrl+c"}                        |
| wait                                    | {action: wait, duration: 1}                          |
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
SCROLL_STEP = 100  # pixels per Anthropic scroll "click"
_BUTTON = {"left_click": "left", "right_click": "right", "middle_click": "wheel"}
_CLICK = {v: k for k, v in _BUTTON.items()}
_KEYS = {"ctrl": "CTRL", "control": "CTRL", "alt": "ALT", "shift": "SHIFT", "cmd": "CMD", "super": "META",
         "return": "ENTER", "enter": "ENTER", "escape": "ESC", "esc": "ESC", "tab": "TAB", "space": "SPACE",
         "backspace": "BACKSPACE", "delete": "DELETE"}  # fmt: skip
_XDOTOOL = {v: k for k, v in _KEYS.items() if k not in ("control", "return", "escape")}


def from_anthropic(tool_input: Json) -> Json:
    """An Anthropic computer tool_use input as an OpenAI computer_call action."""
    action = tool_input.get("action", "")
    x, y = (tool_input.get("coordinate") or [0, 0])[:2]
    if action == "screenshot":
        return {"type": "screenshot"}
    if action in _BUTTON:
        return {"type": "click", "button": _BUTTON[action], "x": x, "y": y}
    if action in ("double_click", "triple_click"):
        return {"type": "double_click", "x": x, "y": y}
    if action == "mouse_move":
        return {"type": "move", "x": x, "y": y}
    if action == "left_click_drag":
        sx, sy = (tool_input.get("start_coordinate") or [x, y])[:2]
        return {"type": "drag", "path": [{"x": sx, "y": sy}, {"x": x, "y": y}]}
    if action == "scroll":
        amount = int(tool_input.get("scroll_amount") or 1) * SCROLL_STEP
        direction = tool_input.get("scroll_direction", "down")
        dx = {"left": -amount, "right": amount}.get(direction, 0)
        dy = {"up": -amount, "down": amount}.get(direction, 0)
        return {"type": "scroll", "x": x, "y": y, "scroll_x": dx, "scroll_y": dy}
    if action == "type":
        return {"type": "type", "text": tool_input.get("text", "")}
    if action == "key":
        keys = [_KEYS.get(k.lower(), k.upper()) for k in str(tool_input.get("text", "")).split("+") if k]
        return {"type": "keypress", "keys": keys}
    if action == "wait":
        return {"type": "wait"}
    return {"type": action, **{k: v for k, v in tool_input.items() if k != "action"}}


def to_anthropic(action: Json) -> Json:
    """An OpenAI computer_call action as Anthropic computer tool input (for replay)."""
    kind = action.get("type")
    at = [action.get("x", 0), action.get("y", 0)]
    if kind == "screenshot":
        return {"action": "screenshot"}
    if kind == "click":
        return {"action": _CLICK.get(action.get("button", "left"), "left_click"), "coordinate": at}
    if kind == "double_click":
        return {"action": "double_click", "coordinate": at}
    if kind == "move":
        return {"action": "mouse_move", "coordinate": at}
    if kind == "drag":
        path = action.get("path") or [{"x": 0, "y": 0}]
        start, end = path[0], path[-1]
        return {"action": "left_click_drag", "start_coordinate": [start["x"], start["y"]],
                "coordinate": [end["x"], end["y"]]}  # fmt: skip
    if kind == "scroll":
        dx, dy = action.get("scroll_x", 0), action.get("scroll_y", 0)
        if abs(dx) > abs(dy):
            direction, amount = ("right" if dx > 0 else "left"), abs(dx)
        else:
            direction, amount = ("down" if dy >= 0 else "up"), abs(dy)
        return {"action": "scroll", "coordinate": at, "scroll_direction": direction,
                "scroll_amount": max(1, round(amount / SCROLL_STEP))}  # fmt: skip
    if kind == "type":
        return {"action": "type", "text": action.get("text", "")}
    if kind == "keypress":
        return {"action": "key", "text": "+".join(_XDOTOOL.get(k.upper(), k.lower()) for k in action.get("keys", []))}
    if kind == "wait":
        return {"action": "wait", "duration": 1}
    return {"action": kind, **{k: v for k, v in action.items() if k != "type"}}
